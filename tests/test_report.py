"""`footfall report --day`: a real PNG (matplotlib, decoded again with OpenCV) and CSV from an agent's journal."""

from __future__ import annotations

import csv
import random
from datetime import date
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from day_sim import HOURS, local_midnight, visitors
from edge.agent import Agent
from edge.cli import main
from edge.clock import VirtualClock
from edge.day_report import GAP_C, HEIGHT, IN_C, OUT_C, WIDTH, Row, draw, png_bytes
from harness import agent_config, agent_toml

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 3, 29)  # a 23-hour day


def make_journal(tmp_path, start_hour: float = 0.0, hours: float = 24.0, n: int = 150):
    """An agent's journal of DAY from `start_hour` (local) for `hours`, with a beam outage 12:00-13:00."""
    extra = "\n[site]\ncapacity = 25\nresidents = 9000\n[site.opening_hours]\n" + "\n".join(f'{k} = "{v}"' for k, v in HOURS.items()) + "\n"
    cfg_path = agent_toml(tmp_path, 1883, tz="Europe/Berlin", minutes=15, extra=extra)
    cfg = agent_config(tmp_path, 1883, tz="Europe/Berlin", minutes=15, extra=extra)
    start = local_midnight(DAY, BERLIN)
    agent = Agent(cfg, VirtualClock(start + start_hour * 3600))
    agent.open()
    try:
        agent.writer.add_crossings([c for c in visitors(DAY, BERLIN, random.Random(2), n)
                                    if c.t_utc >= start + start_hour * 3600])
        down = start + 12 * 3600 - 3600  # 12:00 CEST (11 hours after 00:00 CET)
        agent.writer.log_health(down, "beam:door-1", False, "link down")
        agent.writer.log_health(down + 3600, "beam:door-1", True, "")
        agent.clock.advance(hours * 3600)
        agent.writer.call(lambda j: agent.binner.tick(agent.clock.wall()))
    finally:
        agent.writer.stop()
    return cfg_path, down


def rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (5, 3, 1)], np.uint8)  # BGR, as OpenCV reads


def share_of(img: np.ndarray, color: str) -> float:
    return float(np.all(img == rgb(color), axis=-1).mean()) if img.size else 0.0


def pixel_box(fig, ax, x0: float, x1: float) -> tuple[slice, slice]:
    """Rows and columns of the PNG covering hours [x0, x1] of the axes' data (full height)."""
    (a, top), (b, bottom) = ax.transData.transform([(x0, ax.get_ylim()[1]), (x1, ax.get_ylim()[0])])
    h = fig.bbox.height
    return slice(int(h - top) + 2, int(h - bottom) - 2), slice(int(a) + 2, int(b) - 2)


def test_report_png_and_csv(tmp_path, capsys):
    cfg_path, down = make_journal(tmp_path)
    png, table = tmp_path / "day.png", tmp_path / "day.csv"
    assert main(["--config", str(cfg_path), "report", "--day", DAY.isoformat(), "--out", str(png), "--csv", str(table)]) == 0
    text = capsys.readouterr().out
    assert "visits in 150" in text and "4 of 92 bins shaded as health gaps" in text and f"wrote {png}" in text

    img = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (HEIGHT, WIDTH, 3) and img.dtype == np.uint8
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert share_of(img, IN_C) > 0.001 and share_of(img, OUT_C) > 0.001  # the bars of both directions

    # the same picture, drawn again, maps hours to pixels: the hour the beam was down
    # (11:00-12:00 after midnight, 12:00-13:00 CEST) is red in both panels, the morning is not
    rows, fig = redraw(cfg_path)
    t0 = local_midnight(DAY, BERLIN)
    gap0, gap1 = (down - t0) / 3600, (down + 3600 - t0) / 3600
    for ax in fig.axes[:2]:
        assert share_of(img[pixel_box(fig, ax, gap0, gap1)], GAP_C) > 0.2  # bars and the curve cover the rest
        assert share_of(img[pixel_box(fig, ax, 7.5, 9.5)], GAP_C) == 0.0
    top, low = fig.axes[:2]
    labels = [t.get_text() for t in top.get_yticklabels()]
    assert len(set(labels)) > 2 and "0" in labels  # in and out axes labelled with their own counts
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["in", "out", "health gap", "closed"]
    assert [t.get_text() for t in low.get_legend().get_texts()] == ["occupancy", "capacity 25"]
    words = " ".join(t.get_text() for t in fig.texts)
    assert "visits in / out: 150 /" in words and "gathering rate: 16.67 per 1,000 residents" in words
    assert "completeness: 96% (88/92 bins)" in words

    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 92  # 23 hours of 15-minute bins
    assert sum(int(r["in"]) for r in rows) == 150
    flagged = [r for r in rows if r["flags"]]
    assert [r["start_local"][11:16] for r in flagged] == ["12:00", "12:15", "12:30", "12:45"]
    assert all(int(r["occupancy"]) >= 0 for r in rows)
    assert rows[0]["start_local"] == "2026-03-29T00:00:00+01:00" and rows[-1]["start_local"] == "2026-03-29T23:45:00+02:00"


def redraw(cfg_path):
    """The report's rows and figure, drawn as `footfall report` draws them (the test reads the
    figure's axes to map hours to the PNG's pixels)."""
    from contract.day_summary import day_bounds
    from contract.timebins import bins_between
    from edge import config
    from edge.journal import Journal
    from contract.figure_labels import day_figures
    from edge.summaries import device_summary, offline_binner, profile_of

    cfg = config.load(cfg_path)
    j = Journal(cfg.storage.journal_path)
    try:
        binner = offline_binner(cfg, j.conn)
        start, end = day_bounds(DAY, cfg.zone)
        closed = {r[0] for r in j.conn.execute("SELECT start_utc FROM bin_state")}
        rows = [Row(b.start_utc, b.end_utc, binner.compute(b) if b.start_utc in closed else None)
                for b in bins_between(start, end, 15, cfg.zone)]
        meta = dict(j.conn.execute("SELECT key, value FROM meta"))
        figures = day_figures(device_summary(binner, DAY, profile_of(cfg)))
    finally:
        j.close()
    fig = draw(rows, cfg.zone, profile_of(cfg).hours, "t", 25, figures, float(meta["bins_first_start_utc"]),
               float(meta["bins_next_start_utc"]))
    png_bytes(fig)  # lays the figure out as the PNG was
    return rows, fig


def test_a_day_with_five_closed_bins_shades_no_gap(tmp_path, capsys):
    """Installed at 10:00, five bins closed by 11:15: before 10:00 the device did not exist
    and after 11:15 nothing is due yet: neither is a gap."""
    cfg_path, _ = make_journal(tmp_path, start_hour=9.0, hours=1.25, n=400)  # 10:00 CEST (a 23-hour day)
    png = tmp_path / "today.png"
    assert main(["--config", str(cfg_path), "report", "--day", DAY.isoformat(), "--out", str(png)]) == 0
    text = capsys.readouterr().out
    assert "0 of 92 bins shaded as health gaps" in text
    img = cv2.imread(str(png))
    assert share_of(img, GAP_C) < 0.0005 and share_of(img, IN_C) > 0  # red only in the legend's swatch


def test_report_of_a_day_not_yet_counted_shades_nothing_and_bad_paths_are_refused(tmp_path, capsys):
    cfg_path, _ = make_journal(tmp_path)
    png = tmp_path / "empty.png"
    assert main(["--config", str(cfg_path), "report", "--day", "2026-04-02", "--out", str(png)]) == 0
    assert "0 of 96 bins shaded as health gaps" in capsys.readouterr().out
    img = cv2.imread(str(png))
    assert img.shape == (HEIGHT, WIDTH, 3) and share_of(img, GAP_C) < 0.0005  # red only in the legend's swatch
    assert main(["--config", str(cfg_path), "report", "--day", DAY.isoformat(), "--out", str(tmp_path / "no" / "dir.png")]) == 2
    assert "cannot write" in capsys.readouterr().err
