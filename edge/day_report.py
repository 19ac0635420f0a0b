"""A day's bins as a picture and a table, for technicians and center staff.

The picture is drawn with matplotlib (Agg, no display; aarch64 wheels on PyPI): in/out
bars per bin above, the occupancy curve below with the capacity, hours outside opening
time shaded grey and health gaps shaded red, with axes, a legend and the day summary's
figures in the words the lobby page uses (`contract.figure_labels`). A gap is a bin the
device should have closed and did not (it was off), or closed with a flag; bins before the
device's first bin, or not yet due, are no gaps and are left white. It shows counts only,
never an image of a visitor.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from contract.occupancy import OpeningHours

WIDTH, HEIGHT, DPI = 1200, 760, 100  # pixels of the PNG
IN_C, OUT_C, OCC_C, CAP_C = "#2e7d32", "#1565c0", "#6a1b9a", "#c62828"
CLOSED_C, GAP_C = "#e6e6e6", "#ffb3b3"

State = Literal["bin", "gap", "none"]


@dataclass(frozen=True, slots=True)
class Row:
    """One bin of the day: its content, or None when the device never closed it."""

    start_utc: float
    end_utc: float
    msg: dict[str, Any] | None

    def state(self, first_utc: float | None, due_utc: float | None) -> State:
        """'gap': flagged, or missing although the device was binning (after its first bin,
        before the next bin due); 'none': missing before the device existed or not yet due."""
        if self.msg is not None:
            return "gap" if self.msg["flags"] else "bin"
        if first_utc is not None and due_utc is not None and first_utc <= self.start_utc and self.end_utc <= due_utc:
            return "gap"
        return "none"


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


def draw(rows: Sequence[Row], zone: ZoneInfo, hours: OpeningHours, title: str, capacity: int | None = None,
         figures: Sequence[tuple[str, str]] = (), first_utc: float | None = None,
         due_utc: float | None = None) -> Any:
    """The day's picture as a matplotlib Figure (WIDTH x HEIGHT pixels at DPI); `first_utc`:
    the device's first bin, `due_utc`: the next bin it will close (see Row.state)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    top, low = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2], "hspace": 0.12})
    fig.subplots_adjust(left=0.07, right=0.985, top=0.84, bottom=0.08)
    fig.suptitle(title, x=0.07, ha="left", fontsize=12, fontweight="bold")
    if figures:
        items = [f"{k}: {v}" for k, v in figures]
        half = (len(items) + 1) // 2
        text = "    ".join(items[:half]) + "\n" + "    ".join(items[half:])
        fig.text(0.07, 0.905, text, ha="left", va="top", fontsize=9, linespacing=1.6)
    if not rows:
        return fig
    t0 = rows[0].start_utc

    def h(t: float) -> float:  # hours since local midnight (a DST day has 23 or 25)
        return (t - t0) / 3600

    for r in rows:  # backgrounds: closed hours, then gaps over them
        mid = datetime.fromtimestamp((r.start_utc + r.end_utc) / 2, zone)
        state = r.state(first_utc, due_utc)
        color = GAP_C if state == "gap" else (CLOSED_C if not hours.is_open(mid) else None)
        if color is not None:
            for ax in (top, low):
                ax.axvspan(h(r.start_utc), h(r.end_utc), color=color, lw=0, zorder=0)

    present = [r for r in rows if r.msg is not None]
    width = (rows[0].end_utc - rows[0].start_utc) / 3600 * 0.85
    xs = [h(r.start_utc) + width / 2 / 0.85 for r in present]
    top.bar(xs, [r.msg["total"]["in"] for r in present], width, color=IN_C, label="in", zorder=2)  # type: ignore[index]
    top.bar(xs, [-r.msg["total"]["out"] for r in present], width, color=OUT_C, label="out", zorder=2)  # type: ignore[index]
    top.axhline(0, color="black", lw=0.8, zorder=3)
    top.yaxis.set_major_locator(MaxNLocator(integer=True, symmetric=True))
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(int(v))}"))
    minutes = round((rows[0].end_utc - rows[0].start_utc) / 60)
    top.set_ylabel(f"people per {minutes} min\n(in up, out down)")

    # the occupancy curve breaks over missing bins
    seg_x: list[float] = []
    seg_y: list[float] = []
    for r in rows + [Row(rows[-1].end_utc, rows[-1].end_utc, None)]:
        if r.msg is None:
            if seg_x:
                low.step(seg_x, seg_y, where="post", color=OCC_C, lw=1.8, zorder=2,
                         label="occupancy" if "occupancy" not in [ln.get_label() for ln in low.lines] else None)
            seg_x, seg_y = [], []
            continue
        seg_x += [h(r.start_utc), h(r.end_utc)]
        seg_y += [r.msg["occupancy"]["end"]] * 2
    if capacity:
        low.axhline(capacity, color=CAP_C, ls="--", lw=1, label=f"capacity {capacity}", zorder=2)
    low.set_ylim(bottom=0)
    low.yaxis.set_major_locator(MaxNLocator(integer=True))
    low.set_ylabel("people inside")
    ticks = [(h(r.start_utc), datetime.fromtimestamp(r.start_utc, zone)) for r in rows]
    ticks = [(x, t) for x, t in ticks if t.minute == 0 and t.hour % 2 == 0]
    low.set_xticks([x for x, _ in ticks], [f"{t:%H}:00" for _, t in ticks])
    low.set_xlim(0, h(rows[-1].end_utc))
    low.set_xlabel(f"local time ({zone.key})")
    for ax in (top, low):
        ax.grid(axis="y", color="#dddddd", lw=0.6, zorder=1)
    handles, labels = top.get_legend_handles_labels()
    handles += [Patch(color=GAP_C, label="health gap"), Patch(color=CLOSED_C, label="closed")]
    top.legend(handles=handles, loc="upper right", ncols=4, fontsize=8, framealpha=0.9)
    low.legend(loc="upper right", fontsize=8, framealpha=0.9)
    return fig


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes (Agg, no display)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()
