"""Pairwise overlap of boxes (x1, y1, x2, y2), in the three forms the camera path asks.

One intersection, three denominators: IoU (is it the same box?), the share of a box inside
another (is this box part of that one?), and the share of the smaller of the two (do two
people's boxes merge?). Kept in one place so the tile merge and the swap repair measure
overlap the same way.
"""

from __future__ import annotations

import numpy as np


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection areas of boxes ``a`` (N, 4) and ``b`` (M, 4)."""
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    return iw * ih


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over union."""
    inter = intersection(a, b)
    return inter / np.maximum(_areas(a)[:, None] + _areas(b)[None, :] - inter, 1e-9)


def inside_share(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) share of each box in ``a`` that lies inside each box in ``b``."""
    return intersection(a, b) / np.maximum(_areas(a)[:, None], 1e-9)


def overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) intersection over the smaller box's area (any box shapes, as float64)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return intersection(a, b) / np.maximum(np.minimum(_areas(a)[:, None], _areas(b)[None, :]), 1e-9)
