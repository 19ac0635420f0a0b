"""The real-footage split (tests/data/vtest_lines.json) is what makes a camera figure
"held out": these checks keep the file and the truth behind it consistent, so that a line
cannot drift into the wrong part or carry truth where nobody annotated."""

from __future__ import annotations

import json
from pathlib import Path

from bench.heldout_accuracy import last_frame_of, parts_of
from edge.truth_file import read_truth_csv

DATA = Path(__file__).parent / "data"
SPEC = json.loads((DATA / "vtest_lines.json").read_text())
SPLIT = SPEC["split"]


def test_every_line_is_in_exactly_one_of_dev_and_test() -> None:
    dev, test = set(SPLIT["dev_lines"]), set(SPLIT["test_lines"])
    assert not dev & test
    assert dev | test == set(SPEC["lines"])
    assert set(SPLIT["dev_only_lines"]) <= dev
    assert set(SPLIT["test_only_lines"]) <= test


def test_every_line_has_truth_and_only_on_its_annotated_frames() -> None:
    dev_lo, dev_hi = SPLIT["dev_frames"]
    test_lo, test_hi = SPLIT["test_frames"]
    assert dev_hi + 1 == test_lo
    for name in SPEC["lines"]:
        frames = [f for f, _ in read_truth_csv(DATA / "vtest_truth" / f"{name}.csv")]
        assert all(dev_lo <= f <= test_hi for f in frames), name
        if name in SPLIT["dev_only_lines"]:
            assert all(f <= dev_hi for f in frames), name
        if name in SPLIT["test_only_lines"]:
            assert all(f >= test_lo for f in frames), name


def test_parts_are_labelled_by_the_split() -> None:
    assert parts_of("door", SPLIT) == {"dev (tuned on)": (0, 399), "held out by time only": (400, 794)}
    spent = "test (spent: in-sample)"  # both test parts have been scored and read (spent_note)
    assert SPLIT["test_parts_spent"] is True
    assert parts_of("diag", SPLIT) == {spent: (400, 794), "by line only (read: in-sample)": (0, 399)}
    assert parts_of("diag", {**SPLIT, "test_parts_spent": False})["test (held out)"] == (400, 794)
    assert parts_of("long_470", SPLIT) == {"dev (tuned on)": (0, 399)}
    assert parts_of("x610", SPLIT) == {spent: (400, 794)}
    # a dev-only line is never run on the test frames; a test-only line sees the whole clip
    assert last_frame_of("long_470", SPLIT) == 399
    assert last_frame_of("x610", SPLIT) is None
