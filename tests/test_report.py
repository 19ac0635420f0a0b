"""`footfall report --day`: a real PNG (decoded again with OpenCV) and CSV from an agent's journal."""

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
from edge.day_report import BARS, GAP, HEIGHT, IN_C, LEFT, OCC, OUT_C, RIGHT, WIDTH
from harness import agent_config, agent_toml

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 3, 29)  # a 23-hour day


def make_journal(tmp_path):
    extra = "\n[site]\ncapacity = 25\n[site.opening_hours]\n" + "\n".join(f'{k} = "{v}"' for k, v in HOURS.items()) + "\n"
    cfg_path = agent_toml(tmp_path, 1883, tz="Europe/Berlin", minutes=15, extra=extra)
    cfg = agent_config(tmp_path, 1883, tz="Europe/Berlin", minutes=15, extra=extra)
    start = local_midnight(DAY, BERLIN)
    agent = Agent(cfg, VirtualClock(start))
    agent.open()
    try:
        agent.writer.add_crossings(visitors(DAY, BERLIN, random.Random(2), 150))
        down = start + 12 * 3600 - 3600  # 12:00 CEST (11 hours after 00:00 CET)
        agent.writer.log_health(down, "beam:door-1", False, "link down")
        agent.writer.log_health(down + 3600, "beam:door-1", True, "")
        agent.clock.advance(24 * 3600)
        agent.writer.call(lambda j: agent.binner.tick(agent.clock.wall()))
    finally:
        agent.writer.stop()
    return cfg_path, down


def test_report_png_and_csv(tmp_path, capsys):
    cfg_path, down = make_journal(tmp_path)
    png, table = tmp_path / "day.png", tmp_path / "day.csv"
    assert main(["--config", str(cfg_path), "report", "--day", DAY.isoformat(), "--out", str(png), "--csv", str(table)]) == 0
    text = capsys.readouterr().out
    assert "visits in 150" in text and "4 of 92 bins shaded as health gaps" in text and f"wrote {png}" in text

    img = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert img is not None and img.shape == (HEIGHT, WIDTH, 3) and img.dtype == np.uint8
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def has(color, region):
        return bool(np.all(region == np.array(color, np.uint8), axis=-1).any())

    # the hour the beam was down (12:00-13:00 local) is shaded as a gap in both panels
    t0 = local_midnight(DAY, BERLIN)
    t1 = local_midnight(date(2026, 3, 30), BERLIN)
    x = lambda t: LEFT + int(round((t - t0) / (t1 - t0) * (WIDTH - LEFT - RIGHT)))  # noqa: E731
    gap_x = (x(down) + x(down + 3600)) // 2
    assert has(GAP, img[BARS[0] + 2:BARS[0] + 20, gap_x - 2:gap_x + 2])
    assert has(GAP, img[OCC[1] - 20:OCC[1] - 2, gap_x - 2:gap_x + 2])
    assert not has(GAP, img[:, x(t0 + 8 * 3600):x(t0 + 10 * 3600)])  # healthy morning: no gap shading
    assert has(IN_C, img[BARS[0]:BARS[1]]) and has(OUT_C, img[BARS[0]:BARS[1]])

    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 92  # 23 hours of 15-minute bins
    assert sum(int(r["in"]) for r in rows) == 150
    flagged = [r for r in rows if r["flags"]]
    assert [r["start_local"][11:16] for r in flagged] == ["12:00", "12:15", "12:30", "12:45"]
    assert all(int(r["occupancy"]) >= 0 for r in rows)
    assert rows[0]["start_local"] == "2026-03-29T00:00:00+01:00" and rows[-1]["start_local"] == "2026-03-29T23:45:00+02:00"


def test_report_of_a_day_not_yet_counted_shades_everything_and_bad_paths_are_refused(tmp_path, capsys):
    cfg_path, _ = make_journal(tmp_path)
    png = tmp_path / "empty.png"
    assert main(["--config", str(cfg_path), "report", "--day", "2026-04-02", "--out", str(png)]) == 0
    img = cv2.imread(str(png))
    assert img.shape == (HEIGHT, WIDTH, 3)
    row = img[BARS[0] + 2, LEFT + 2:WIDTH - RIGHT - 2]
    assert np.all(row == np.array(GAP, np.uint8), axis=-1).mean() > 0.9  # all gap, but for the hour grid lines
    capsys.readouterr()
    assert main(["--config", str(cfg_path), "report", "--day", DAY.isoformat(), "--out", str(tmp_path / "no" / "dir.png")]) == 2
    assert "cannot write" in capsys.readouterr().err
