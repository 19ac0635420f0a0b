"""A day's bins as a picture and a table, for technicians and center staff.

The picture (drawn with OpenCV, already a dependency, so a device needs no plotting
stack): in/out bars per bin above, the occupancy curve below, hours outside opening time
shaded grey and health gaps (bins flagged or never closed) shaded red in both panels. It
shows counts only, never an image of a visitor.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from contract.occupancy import OpeningHours

WIDTH, HEIGHT = 1200, 720
LEFT, RIGHT = 70, 20
BARS = (70, 360)  # y range of the in/out panel
OCC = (420, 670)  # y range of the occupancy panel

# BGR
WHITE, BLACK, GRID = (255, 255, 255), (0, 0, 0), (210, 210, 210)
CLOSED, GAP = (235, 235, 235), (205, 205, 255)
IN_C, OUT_C, OCC_C, CAP_C = (60, 150, 40), (40, 90, 220), (150, 70, 20), (0, 0, 180)


@dataclass(frozen=True, slots=True)
class Row:
    """One bin of the day: its content, or None when the device never closed it."""

    start_utc: float
    end_utc: float
    msg: dict[str, Any] | None

    @property
    def gap(self) -> bool:
        return self.msg is None or bool(self.msg["flags"])


def write_csv(rows: Sequence[Row], zone: ZoneInfo, path: Path) -> None:
    """One line per bin: local and UTC start, in, out, occupancy, flags ('missing' for no bin)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start_local", "start_utc", "in", "out", "occupancy", "drift_removed", "flags"])
        for r in rows:
            local = datetime.fromtimestamp(r.start_utc, zone).isoformat()
            utc = datetime.fromtimestamp(r.start_utc, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
            if r.msg is None:
                w.writerow([local, utc, "", "", "", "", "missing"])
                continue
            occ = r.msg["occupancy"]
            w.writerow([local, utc, r.msg["total"]["in"], r.msg["total"]["out"], occ["end"], occ.get("drift_removed", 0),
                        ";".join(r.msg["flags"])])


def draw(rows: Sequence[Row], zone: ZoneInfo, hours: OpeningHours, title: str, capacity: int | None = None) -> np.ndarray:
    """The day's picture as a BGR image of HEIGHT x WIDTH."""
    import cv2

    img = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    if not rows:
        return img
    t0, t1 = rows[0].start_utc, rows[-1].end_utc
    span = WIDTH - LEFT - RIGHT

    def x(t: float) -> int:
        return LEFT + int(round((t - t0) / (t1 - t0) * span))

    for r in rows:  # backgrounds first: closed hours, then health gaps over them
        mid = datetime.fromtimestamp((r.start_utc + r.end_utc) / 2, zone)
        color = GAP if r.gap else (CLOSED if not hours.is_open(mid) else None)
        if color is not None:
            for top, bottom in (BARS, OCC):
                cv2.rectangle(img, (x(r.start_utc), top), (max(x(r.end_utc) - 1, x(r.start_utc)), bottom), color, -1)

    present = [r for r in rows if r.msg is not None]
    top_n = max([1] + [max(r.msg["total"]["in"], r.msg["total"]["out"]) for r in present])  # type: ignore[index]
    occ_max = max([1, capacity or 0] + [r.msg["occupancy"]["end"] for r in present])  # type: ignore[index]
    zero = (BARS[0] + BARS[1]) // 2
    half = (BARS[1] - BARS[0]) // 2 - 4

    # hour grid and labels (local wall-clock hours; a DST day has 23 or 25 of them)
    for r in rows:
        local = datetime.fromtimestamp(r.start_utc, zone)
        if local.minute == 0:
            gx = x(r.start_utc)
            for top, bottom in (BARS, OCC):
                cv2.line(img, (gx, top), (gx, bottom), GRID, 1)
            if local.hour % 2 == 0:
                cv2.putText(img, f"{local.hour:02d}", (gx - 8, OCC[1] + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, BLACK, 1, cv2.LINE_AA)
    cv2.line(img, (LEFT, zero), (WIDTH - RIGHT, zero), BLACK, 1)

    for r in present:
        a, b = x(r.start_utc), max(x(r.end_utc) - 2, x(r.start_utc))
        n_in, n_out = r.msg["total"]["in"], r.msg["total"]["out"]  # type: ignore[index]
        if n_in:
            cv2.rectangle(img, (a, zero - int(n_in / top_n * half)), (b, zero - 1), IN_C, -1)
        if n_out:
            cv2.rectangle(img, (a, zero + 1), (b, zero + int(n_out / top_n * half)), OUT_C, -1)

    def y_occ(v: float) -> int:
        return OCC[1] - int(round(v / occ_max * (OCC[1] - OCC[0] - 10)))

    if capacity:
        cv2.line(img, (LEFT, y_occ(capacity)), (WIDTH - RIGHT, y_occ(capacity)), CAP_C, 1, cv2.LINE_AA)
        cv2.putText(img, f"capacity {capacity}", (WIDTH - RIGHT - 120, y_occ(capacity) - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, CAP_C, 1, cv2.LINE_AA)
    prev: tuple[int, int] | None = None
    for r in rows:  # the curve breaks over missing bins
        if r.msg is None:
            prev = None
            continue
        pt = (x(r.end_utc), y_occ(r.msg["occupancy"]["end"]))
        if prev is not None:
            cv2.line(img, prev, pt, OCC_C, 2, cv2.LINE_AA)
        prev = pt

    for top, bottom in (BARS, OCC):
        cv2.rectangle(img, (LEFT, top), (WIDTH - RIGHT, bottom), BLACK, 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (LEFT, 30), font, 0.6, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, f"in (up) / out (down) per bin, max {top_n}", (LEFT, BARS[0] - 8), font, 0.45, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, f"occupancy (max shown {occ_max})", (LEFT, OCC[0] - 8), font, 0.45, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, "red: health gap   grey: closed", (WIDTH - RIGHT - 260, BARS[0] - 8), font, 0.45, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, str(top_n), (8, BARS[0] + 12), font, 0.4, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, str(top_n), (8, BARS[1]), font, 0.4, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, str(occ_max), (8, OCC[0] + 16), font, 0.4, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, "0", (8, OCC[1]), font, 0.4, BLACK, 1, cv2.LINE_AA)
    return img
