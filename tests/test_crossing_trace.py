"""bench.crossing_trace: which count matched which true crossing, by the scorer's rule."""

from __future__ import annotations

from bench.crossing_trace import matches
from contract.crossing_score import score_crossings


def test_matches_pairs_like_the_scorer_closest_first_one_to_one() -> None:
    truth = [(10.0, "in"), (10.5, "in"), (20.0, "out"), (30.0, "in")]
    counted = [(10.4, "in"), (19.2, "out"), (25.0, "in"), (20.1, "in")]
    t2c, c2t = matches(truth, counted)
    assert t2c == {1: 0, 2: 1}  # 10.4 goes to the closer 10.5; 20.1 "in" matches no "in"
    assert c2t == {0: 1, 1: 2}
    score = score_crossings(truth, counted, tolerance_s=1.0)
    assert sum(s["matched"] for s in score.values()) == len(t2c)
