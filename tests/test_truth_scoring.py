"""The one scorer (contract.crossing_score) and the truth-file boundary (edge.truth_file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract.crossing_score import score_crossings, worst_direction
from edge.errors import UserError
from edge.truth_file import MAX_BYTES, read_truth_csv


def test_matches_within_tolerance_closest_first_and_reports_the_lag() -> None:
    truth = [(10.0, "in"), (12.0, "in"), (20.0, "out")]
    counted = [(10.3, "in"), (11.9, "in"), (25.0, "out"), (30.0, "in")]
    s = score_crossings(truth, counted, tolerance_s=1.0)
    assert (s["in"]["matched"], s["in"]["missed"], s["in"]["extra"]) == (2, 0, 1)
    assert s["in"]["gross_accuracy"] == pytest.approx(0.5)
    assert s["in"]["median_lag_s"] == pytest.approx(0.1)  # lags +0.3 and -0.1
    assert s["in"]["median_abs_lag_s"] == pytest.approx(0.2)
    assert (s["out"]["missed"], s["out"]["extra"], s["out"]["median_lag_s"]) == (1, 1, None)
    assert worst_direction(s) == pytest.approx(-1.0)  # out: one missed and one extra of one


def test_one_count_never_covers_two_people_and_directions_do_not_mix() -> None:
    s = score_crossings([(5.0, "in"), (5.4, "in")], [(5.2, "in"), (5.2, "out")], tolerance_s=1.0)
    assert (s["in"]["matched"], s["in"]["missed"]) == (1, 1)
    assert (s["out"]["true"], s["out"]["extra"], s["out"]["gross_accuracy"]) == (0, 1, 0.0)
    # the tolerance is inclusive and strict beyond it
    assert score_crossings([(1.0, "in")], [(2.0, "in")], 1.0)["in"]["matched"] == 1
    assert score_crossings([(1.0, "in")], [(2.01, "in")], 1.0)["in"]["matched"] == 0
    with pytest.raises(ValueError):
        score_crossings([], [], tolerance_s=-1)


def test_truth_csv_rows_header_comments_and_extra_columns(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("\ufeffframe,direction,who\n# a comment\n181,out,\"blue, hooded\"\n\n303,IN\n")
    assert read_truth_csv(p) == [(181, "out"), (303, "in")]


@pytest.mark.parametrize("text, where", [
    ("frame,direction\n-3,in\n", "row 2"),
    ("12\n", "row 1"),
    ("12,in\nx,out\n", "row 2"),
    ("12,left\n", "row 1"),
])
def test_truth_csv_bad_rows_are_named(tmp_path: Path, text: str, where: str) -> None:
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(UserError, match=where):
        read_truth_csv(p)


def test_truth_csv_bounds_and_unreadable(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_bytes(b"1,in\n" * (MAX_BYTES // 5 + 1))
    with pytest.raises(UserError, match="at most"):
        read_truth_csv(big)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="UTF-8"):
        read_truth_csv(binary)
    with pytest.raises(UserError, match="cannot read"):
        read_truth_csv(tmp_path / "missing.csv")
