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
