"""A person's colours, cheaply: a hue-saturation-value histogram of the torso.

Used to tell two people apart after their boxes merged (`edge.identity_repair`). The
torso is the middle of the box: the head, the legs (often the same dark trousers) and
the background at the box's sides carry little of what tells people apart, clothes on
the upper body do. Hue alone fails on dark clothes (black, navy: hue is noise at low
value), so value has its own bins.
"""

from __future__ import annotations

import cv2
import numpy as np

# Torso window as fractions of the box: x from 25% to 75% of the width (the sides are
# background for a walking person), y from 20% (below the head) to 55% (above the hips).
TORSO_X = (0.25, 0.75)
TORSO_Y = (0.20, 0.55)
# 8 hues x 3 saturations x 3 values: coarse enough for a 20x30 px torso to fill, fine
# enough to part red from navy from black (72 bins).
BINS = (8, 3, 3)
RANGES = [0, 180, 0, 256, 0, 256]
MIN_PIXELS = 24  # a torso smaller than this (a far, tiny person) gives no descriptor


def torso_histograms(image_bgr: np.ndarray, boxes_xyxy: np.ndarray) -> list[np.ndarray | None]:
    """One L1-normalised (72,) float32 histogram per box, or None where the torso is too
    small or outside the frame."""
    h, w = image_bgr.shape[:2]
    out: list[np.ndarray | None] = []
    for x1, y1, x2, y2 in np.asarray(boxes_xyxy, dtype=np.float64).tolist():
        bw, bh = x2 - x1, y2 - y1
        tx1, tx2 = int(max(0, x1 + TORSO_X[0] * bw)), int(min(w, x1 + TORSO_X[1] * bw))
        ty1, ty2 = int(max(0, y1 + TORSO_Y[0] * bh)), int(min(h, y1 + TORSO_Y[1] * bh))
        if (tx2 - tx1) * (ty2 - ty1) < MIN_PIXELS:
            out.append(None)
            continue
        hsv = cv2.cvtColor(image_bgr[ty1:ty2, tx1:tx2], cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, list(BINS), RANGES).ravel()
        out.append(hist / max(float(hist.sum()), 1.0))
    return out


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Hellinger distance between two normalised histograms: 0 same colours, 1 disjoint."""
    bc = float(np.sqrt(np.clip(a, 0, None) * np.clip(b, 0, None)).sum())
    return float(np.sqrt(max(0.0, 1.0 - bc)))
