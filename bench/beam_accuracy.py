"""Beam counting accuracy against ground truth, per scenario type and direction.

`python -m bench.beam_accuracy [scenario ...]` decodes each scenario's simulated
beams (after the firmware's debounce) with the agent's decoder and prints gross
accuracy = 1 - (missed + extra) / true per direction. No link here: the link's own
losslessness is the fault day's job; this measures the beams and the decoder.
"""

from __future__ import annotations

import argparse

from edge.beam_decoder import BeamDecoder, DecoderConfig, Edge
from simulator import people
from simulator.scenario import load
from simulator.scoring import DirectionScore, score

TYPES = ("single_file", "pairs_abreast", "groups", "lingering", "turn_backs", "mixed_public")


def evaluate(name: str, cfg: DecoderConfig | None = None) -> tuple[dict[str, DirectionScore], dict[str, int]]:
    sc = load(name)
    crowd = people.generate(sc.people)
    edges = people.debounce(people.beam_edges(crowd, sc.door), sc.debounce_us / 1e6)
    dec = BeamDecoder(cfg or DecoderConfig(door="door"))
    out = []
    for i, (t, beam, e) in enumerate(edges):
        out += dec.feed(Edge(1, i + 1, beam, e, int(round(t * 1e6)), t))
    if edges:
        out += dec.advance(int((edges[-1][0] + 10) * 1e6))
    truth = [(t, d) for t, d, _ in crowd.truth()]
    return score(truth, [(c.t_utc, c.direction) for c in out]), dec.stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", default=list(TYPES))
    args = ap.parse_args()
    print(f"{'scenario':<15} {'dir':<4} {'true':>6} {'counted':>8} {'missed':>7} {'extra':>6} {'gross acc':>10}")
    for name in args.scenarios:
        scores, _ = evaluate(name)
        for d, s in scores.items():
            print(f"{name:<15} {d:<4} {s.true:>6} {s.counted:>8} {s.missed:>7} {s.extra:>6} {s.gross_accuracy:>10.4f}")


if __name__ == "__main__":
    main()
