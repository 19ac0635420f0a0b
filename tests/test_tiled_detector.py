"""The tiled front-end: which tiles, how their boxes merge, and quiet tiles costing nothing."""

from __future__ import annotations

import numpy as np
import pytest

from edge.counting import CountingLine
from edge.tiled_detector import TiledDetector, merge_tiles, tile_rects

try:
    from tests.camera_data import needs_vtest, read_vtest_frames
except ImportError:  # pragma: no cover
    from camera_data import needs_vtest, read_vtest_frames

LINES = {
    "spanning": CountingLine("a", (0, 300), (768, 300), (10, 500)),
    "diagonal": CountingLine("b", (700, 120), (100, 500), (700, 500)),
    "short": CountingLine("c", (210, 140), (210, 300), (400, 220)),
}


@pytest.mark.parametrize("name", sorted(LINES))
def test_every_person_near_the_line_lies_whole_in_some_tile(name: str) -> None:
    line = LINES[name]
    tiles = np.array(tile_rects([line], 768, 576, tile=300, overlap=120, reach=150))
    assert ((tiles[:, 2] - tiles[:, 0]) == 300).all() and (tiles[:, :2] >= 0).all()
    assert (tiles[:, 2] <= 768).all() and (tiles[:, 3] <= 576).all()
    rng = np.random.default_rng(7)
    (x1, y1), (x2, y2) = line.p1, line.p2
    for _ in range(300):  # a person up to 110 px tall standing within 40 px of the line
        u = rng.uniform()
        cx = x1 + (x2 - x1) * u + rng.uniform(-40, 40)
        cy = y1 + (y2 - y1) * u + rng.uniform(-40, 40)
        h = rng.uniform(20, 110)
        box = np.clip([cx - h / 4, cy - h / 2, cx + h / 4, cy + h / 2], 0, [768, 576, 768, 576])
        inside = ((tiles[:, 0] <= box[0]) & (tiles[:, 1] <= box[1]) & (tiles[:, 2] >= box[2]) & (tiles[:, 3] >= box[3]))
        assert inside.any(), (name, box)


def test_a_short_line_needs_few_tiles_and_a_small_frame_is_one_tile() -> None:
    assert len(tile_rects([LINES["short"]], 768, 576)) <= 2
    assert tile_rects([CountingLine("s", (10, 50), (200, 50), (100, 150))], 240, 200) == [(0, 0, 240, 200)]
    with pytest.raises(ValueError):
        tile_rects([LINES["short"]], 768, 576, tile=100, overlap=100)


def test_merging_keeps_one_box_per_person_across_tiles() -> None:
    boxes = np.array([
        [100, 100, 140, 200],  # person A, whole in tile 1
        [100, 100, 130, 200],  # person A cut by tile 2's left edge
        [300, 100, 340, 200],  # person B, only seen cut (no whole box): kept
        [150, 100, 190, 200],  # person C beside A: kept
        [101, 101, 141, 201],  # person A whole again from tile 3: NMS
    ], np.float32)
    scores = np.array([0.9, 0.95, 0.6, 0.7, 0.8], np.float32)
    cut = np.array([False, True, True, False, False])
    keep = sorted(merge_tiles(boxes, scores, cut, nms_iou=0.5).tolist())
    assert keep == [0, 2, 3]


@needs_vtest
def test_tiles_on_real_frames_map_back_to_the_frame_and_quiet_tiles_reuse_their_boxes() -> None:
    from edge.detector import OnnxDetector

    det = OnnxDetector("ssdlite_person", threads=1)
    line = LINES["spanning"]
    tiles = tile_rects([line], 768, 576)
    tiled = TiledDetector(det, tiles, motion=True, frame_size=(768, 576))
    frame = read_vtest_frames(250, 1)[0]
    first = tiled.detect(frame)
    assert len(first) >= 3 and tiled.inferences == len(tiles)
    # the same person found on the whole frame is found by the tiles, in frame pixels
    whole = det.detect(frame)
    for b in whole.boxes[whole.scores >= 0.6]:
        if b[3] - b[1] < 60 or not (150 <= b[3] <= 450):
            continue
        ix = np.maximum(0, np.minimum(first.boxes[:, 2], b[2]) - np.maximum(first.boxes[:, 0], b[0]))
        iy = np.maximum(0, np.minimum(first.boxes[:, 3], b[3]) - np.maximum(first.boxes[:, 1], b[1]))
        inter = ix * iy
        union = (b[2] - b[0]) * (b[3] - b[1]) + (first.boxes[:, 2] - first.boxes[:, 0]) * (first.boxes[:, 3] - first.boxes[:, 1]) - inter
        assert (inter / union).max() >= 0.5
    for _ in range(6):  # nothing moves: after the gates' hold (5 frames) no inference, same boxes
        again = tiled.detect(frame.copy())
    held = tiled.inferences
    again = tiled.detect(frame.copy())
    assert tiled.inferences == held and np.array_equal(again.boxes, first.boxes)
    moved = read_vtest_frames(262, 1)[0]  # people walked on: the tiles they walk in run again
    tiled.detect(moved)
    assert held < tiled.inferences <= held + len(tiles)


# vtest.avi's perspective as measured for the composed scenes (docs/camera.md, door geometry):
# 72 px tall with feet at row 232, 0.256 px more per row
def _vtest_height(row: float) -> float:
    return 0.256 * (row + 49)


@pytest.mark.parametrize("name", ["corner", "diagonal", "spanning"])
def test_windows_sized_to_the_people_hold_everyone_whole_and_large_enough(name: str) -> None:
    from edge.tiled_detector import MIN_PERSON_PX

    line = {**LINES, "corner": CountingLine("d", (0, 0), (768, 576), (700, 50))}[name]
    rects = np.array(tile_rects([line], 768, 576, person_height=_vtest_height, min_person=MIN_PERSON_PX))
    side = rects[:, 2] - rects[:, 0]
    assert (side == rects[:, 3] - rects[:, 1]).all() and (side >= 300).all()
    assert (rects[:, :2] >= 0).all() and (rects[:, 2] <= 768).all() and (rects[:, 3] <= 576).all()
    rng = np.random.default_rng(11)
    (x1, y1), (x2, y2) = line.p1, line.p2
    for _ in range(400):  # a person of the expected height with feet within 50 px of the line
        u = rng.uniform()
        fx = x1 + (x2 - x1) * u + rng.uniform(-50, 50)
        fy = y1 + (y2 - y1) * u + rng.uniform(-50, 50)
        if not (0 <= fx <= 768 and 0 <= fy <= 576):
            continue
        h = _vtest_height(fy)
        box = np.clip([fx - h / 4, fy - h, fx + h / 4, fy], 0, [768, 576, 768, 576])
        whole = ((rects[:, 0] <= box[0]) & (rects[:, 1] <= box[1]) & (rects[:, 2] >= box[2]) & (rects[:, 3] >= box[3]))
        shown = h * 300 / side  # the person's height at the model's input in each window
        assert (whole & (shown >= min(h, MIN_PERSON_PX) - 0.5)).any(), (name, box)
    # corner to corner took the grid 12 model-sized tiles; sized to the people it takes half
    if name == "corner":
        assert len(tile_rects([line], 768, 576)) == 12 and len(rects) <= 6


def test_the_perspective_is_learnt_from_whole_confident_boxes_and_only_when_enough_is_seen() -> None:
    from edge.tiled_detector import PersonScale

    rng = np.random.default_rng(3)
    scale = PersonScale(576, min_boxes=60)
    feet = rng.uniform(150, 560, 80)
    h = _vtest_height(feet) * rng.uniform(0.9, 1.1, feet.size)
    boxes = np.stack([feet * 0 + 300, feet - h, feet * 0 + 330, feet], axis=1)
    scale.add(boxes[:50], np.full(50, 0.8), np.zeros(50, bool))
    assert scale.fit() is None  # too few yet
    # cut or unsure boxes are not evidence
    scale.add(boxes[50:] * [1, 0.5, 1, 1], np.full(30, 0.8), np.ones(30, bool))
    scale.add(boxes[50:] * [1, 0.5, 1, 1], np.full(30, 0.3), np.zeros(30, bool))
    assert scale.fit() is None
    scale.add(boxes[50:], np.full(30, 0.8), np.zeros(30, bool))
    fit = scale.fit()
    assert fit is not None
    for row in (200.0, 300.0, 450.0):
        assert abs(fit(row) - _vtest_height(row)) < 0.1 * _vtest_height(row)
    assert fit(2000.0) == pytest.approx(fit(float(np.percentile(feet, 95))))  # never larger than seen
    narrow = PersonScale(576, min_boxes=10)  # people seen in a band of rows only: no perspective
    narrow.add(boxes[:40] * [1, 0, 1, 0] + [0, 250, 0, 300], np.full(40, 0.8), np.zeros(40, bool))
    assert narrow.fit() is None


@needs_vtest
def test_a_corner_to_corner_line_is_replanned_to_fewer_windows_on_real_frames() -> None:
    from edge.camera_pipeline import front_end_for
    from edge.detector import OnnxDetector

    det = OnnxDetector("ssdlite_person", threads=1)
    line = CountingLine("d", (0, 0), (768, 576), (700, 50))
    front, _ = front_end_for(det, [line], 768, 576)
    assert isinstance(front, TiledDetector) and len(front.tiles) == 12
    for frame in read_vtest_frames(0, 30):
        front.detect(frame)
        if front.replanned:
            break
    assert front.replanned_at is not None and front.replanned_at <= 30
    assert 3 <= len(front.tiles) <= 6
    sides = sorted(t[2] - t[0] for t in front.tiles)
    assert sides[0] == 300 and sides[-1] > 300  # model-sized far away, larger near the camera
    got = front.detect(read_vtest_frames(40, 1)[0])
    assert len(got) >= 5  # the plaza's people are still found


def test_the_schedule_runs_one_window_per_person_near_the_line_and_lets_the_rest_wait() -> None:
    from edge.detector import OnnxDetector

    line = CountingLine("v", (400, 0), (400, 576), (700, 300))
    tiles = [(0, 0, 300, 300), (180, 0, 480, 300), (300, 200, 600, 500), (468, 0, 768, 300)]
    front = TiledDetector(OnnxDetector("ssdlite_person", threads=1), tiles, frame_size=(768, 576), lines=[line],
                          stride=2)
    empty = (np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), bool))
    near_a = np.array([[370, 100, 400, 180]], np.float32)  # feet 15 px from the line, 80 px tall
    far_b = np.array([[40, 100, 70, 180]], np.float32)  # 345 px away: more than a height
    cut_c = np.array([[560, 400, 598, 497]], np.float32)  # cut, feet 179 px from the line: more than a height
    front._last = [
        (far_b, np.array([0.9], np.float32), np.array([False])),
        (near_a, np.array([0.9], np.float32), np.array([False])),  # window 1 shows A whole
        (cut_c, np.array([0.9], np.float32), np.array([True])),
        empty,
    ]
    front._ran = [True] * 4
    front._plan()
    assert front._needed == [False, True, False, False]
    # A also whole in window 3 (seen a frame apart): one window that shows A whole is enough
    front._last[3] = (near_a + [2, 0, 2, 0], np.array([0.8], np.float32), np.array([False]))
    front._plan()
    assert front._needed == [False, True, False, False]
    # someone near the line seen only cut keeps the window that holds them running
    front._last[2] = (np.array([[380, 300, 420, 497]], np.float32), np.array([0.7], np.float32), np.array([True]))
    front._plan()
    assert front._needed == [False, True, True, False]
    # windows not needed run every other frame, staggered: each frame runs about half of them
    due = [[front._due(k) for k in range(4)] for front.calls in (10, 11)]
    assert due[0][1] and due[1][1] and due[0][2] and due[1][2]
    assert due[0][0] != due[1][0] and due[0][3] != due[1][3] and due[0][0] != due[0][3]
    front.stride = 1  # stride 1: every window every frame (the front-end before the schedule)
    assert all(front._due(k) for k in range(4))
