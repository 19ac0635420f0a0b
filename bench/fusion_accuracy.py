"""Fused counting accuracy against one ground truth: beams alone, camera alone, fused.

`python -m bench.fusion_accuracy [scenario ...] [--people N] [--cache DIR]` draws each scenario's
crowd (`simulator.people`), then runs both real sensing paths on it:

* beams: the simulated beam edges after the firmware's debounce, decoded by the agent's
  `BeamDecoder` (as `bench.beam_accuracy` does);
* camera: the same people rendered by `simulator.camera` (composed scenes of real
  walkers, `walkers_from_crowd`) at 10 fps, through the shipped ONNX detector, the
  tracker and the counting line (`CameraPipeline`). Frames in which no walker is in view
  are skipped (an empty plaza; nothing to detect), which keeps the run short;

and fuses the two streams with `edge.fusion.fuse` (the agent's rule, default
`FusionParams`). Gross accuracy = 1 - (missed + extra) / true per direction, all three
scored against the crowd's truth with the same matcher (`simulator.camera.score_crossings`).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from edge.beam_decoder import BeamDecoder, DecoderConfig, Edge
from edge.crossing import Crossing
from edge.fusion import FusionParams, fuse
from simulator import people
from simulator.scenario import load

DOOR = "door"
TYPES = ("single_file", "pairs_abreast", "trios_abreast", "groups", "abreast_mix")
TOLERANCE_S = 1.5


@dataclass
class Streams:
    """One crowd seen by both sensors, and what truly happened."""

    truth: list[tuple[float, str]]
    beam: list[Crossing]
    camera: list[Crossing]

    def to_json(self) -> dict:
        def rows(cs: list[Crossing]) -> list[list]:
            return [[c.t_utc, c.direction, c.confidence, c.source_ref] for c in cs]

        return {"truth": self.truth, "beam": rows(self.beam), "camera": rows(self.camera)}

    @classmethod
    def from_json(cls, d: dict) -> Streams:
        def cs(rows: list[list], source: str) -> list[Crossing]:
            return [Crossing(t, DOOR, dd, source, conf, ref) for t, dd, conf, ref in rows]  # type: ignore[arg-type]

        return cls([(t, dd) for t, dd in d["truth"]], cs(d["beam"], "beam"), cs(d["camera"], "camera"))


MEAN_GAP_S = 1.5  # a busy door: keeps the rendered video (the slow part) short


def crowd_of(name: str, count: int | None = None, seed: int | None = None,
             mean_gap_s: float | None = MEAN_GAP_S) -> tuple[people.Crowd, object]:
    """The scenario's crowd; `count`, `seed` and the mean gap between arrival units override
    the scenario file (the door is still empty `min_gap_s` between units)."""
    sc = load(name)
    spec = sc.people
    if count is not None:
        spec = replace(spec, count=count)
    if seed is not None:
        spec = replace(spec, seed=seed)
    if mean_gap_s is not None:
        spec = replace(spec, mean_gap_s=mean_gap_s)
    return people.generate(spec), sc


def beam_crossings(crowd: people.Crowd, sc) -> list[Crossing]:
    """The agent's direction decoder on the debounced simulated beams."""
    edges = people.debounce(people.beam_edges(crowd, sc.door), sc.debounce_us / 1e6)
    dec = BeamDecoder(DecoderConfig(door=DOOR))
    out: list[Crossing] = []
    for i, (t, beam, e) in enumerate(edges):
        out += dec.feed(Edge(1, i + 1, beam, e, int(round(t * 1e6)), t))
    if edges:
        out += dec.advance(int((edges[-1][0] + 10) * 1e6))
    return out


def camera_crossings(crowd: people.Crowd, detector, bank, fps: float = 10.0, seed: int = 0,
                     geometry: str = "door", night: bool = False, window_s: float = 15.0) -> list[Crossing]:
    """The real camera path on the crowd rendered as a composed scene (one truth).

    ``door``: the camera looks along the walking direction at the door (the mount the
    product is installed with, docs/camera.md); ``oblique``: a side view of a walkway.
    ``night``: the grey, grainy infrared picture (`simulator.camera.Conditions`).
    ``window_s``: frames are run only while a walker in view is within this many seconds
    of its crossing (the demo narrows it to spend the detector on the approach to the line)."""
    from edge.camera_pipeline import CameraPipeline, roi_around_lines
    from edge.counting import CountingLine
    from edge.video_source import Frame
    from simulator.camera import Conditions, Scene, SceneRenderer, position, walkers_from_crowd

    walkers = walkers_from_crowd(crowd, seed=seed)
    end = max((w.t_cross for w in walkers), default=0.0) + 8.0
    scene = Scene("crowd", walkers, duration_s=end, fps=fps, geometry=geometry, conditions=Conditions(night=night))
    line = CountingLine(DOOR, scene.line[:2], scene.line[2:], scene.inside)
    pipe = CameraPipeline(detector, [line], run_id="sim", roi=roi_around_lines([line], scene.width, scene.height))
    renderer = SceneRenderer(scene, bank, seed=seed)
    out: list[Crossing] = []
    ordered = sorted(walkers, key=lambda w: w.t_cross)
    lo = 0
    for i in range(int(end * fps)):
        t = i / fps
        # walkers are in view for a few seconds around their crossing: skip empty frames
        while lo < len(ordered) and ordered[lo].t_cross < t - window_s:
            lo += 1
        visible = False
        for w in ordered[lo:]:
            if w.t_cross > t + window_s:
                break
            x, feet, h = position(scene, w, t)
            if -h < x < scene.width + h and 0 < feet < scene.height + h:
                visible = True
                break
        if not visible:
            continue
        out += [c.crossing for c in pipe.process(Frame(renderer.render(t), i, t, t))]
    return out + [c.crossing for c in pipe.flush()]


def sprite_bank():
    """The composed scenes' walkers (the same bank as bench/camera_bench)."""
    from bench.sprite_bank import detector_gated_bank

    return detector_gated_bank()


def streams_for(name: str, count: int | None = None, seed: int | None = None, threads: int = 2,
                cache: Path | None = None, geometry: str = "door", night: bool = False) -> Streams:
    """Both sensors' crossings for a scenario (cached as JSON when `cache` is a folder)."""
    key = f"{name}-{count}-{seed}-{MEAN_GAP_S}-{geometry}{'-night' if night else ''}.json"
    if cache is not None and (cache / key).exists():
        return Streams.from_json(json.loads((cache / key).read_text()))
    from edge.detector import OnnxDetector

    crowd, sc = crowd_of(name, count, seed)
    truth = [(t, d) for t, d, _ in crowd.truth()]
    det = OnnxDetector("ssdlite_person", threads=threads)
    s = Streams(truth, beam_crossings(crowd, sc), camera_crossings(crowd, det, sprite_bank(), geometry=geometry, night=night))
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / key).write_text(json.dumps(s.to_json()))
    return s


def scores(s: Streams, params: FusionParams | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Per source (beam, camera, fused) and direction: true, counted, missed, extra, gross accuracy."""
    from simulator.camera import score_crossings

    fused = fuse(s.beam, s.camera, params or FusionParams(), door=DOOR)
    out = {}
    for label, cs in (("beam", s.beam), ("camera", s.camera), ("fused", fused)):
        out[label] = score_crossings(s.truth, [(c.t_utc, c.direction) for c in cs], tolerance_s=TOLERANCE_S)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fusion_accuracy", description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", default=list(TYPES))
    ap.add_argument("--people", type=int, default=150, help="passers per scenario (default 150)")
    ap.add_argument("--seed", type=int, default=None, help="crowd seed (default: the scenario's)")
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    ap.add_argument("--geometry", choices=("door", "oblique"), default="door",
                    help="simulated camera mount (default door: looking along the walking direction)")
    ap.add_argument("--night", action="store_true", help="the camera sees the night's infrared picture")
    ap.add_argument("--camera-alone", action="store_true",
                    help="fuse with camera_alone on (count camera crossings the healthy beams saw nothing of)")
    ap.add_argument("--cache", type=Path, default=None, help="folder to keep both sensors' crossings in (re-fuse without re-rendering)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    table = {}
    if not args.json:
        print(f"{'scenario':<15} {'dir':<4} {'true':>5} | {'beam':>7} {'camera':>7} {'fused':>7}   (gross accuracy)")
    for name in args.scenarios:
        t0 = time.perf_counter()
        sc = scores(streams_for(name, args.people, args.seed, args.threads, args.cache, args.geometry, args.night),
                    FusionParams(camera_alone=args.camera_alone))
        table[name] = sc
        if not args.json:
            for d in ("in", "out"):
                acc = [sc[k][d]["gross_accuracy"] for k in ("beam", "camera", "fused")]
                print(f"{name:<15} {d:<4} {sc['beam'][d]['true']:>5} | " + " ".join(f"{a:>7.3f}" for a in acc)
                      + f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    if args.json:
        print(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
