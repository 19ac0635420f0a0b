"""`footfall index serve`: the lobby and district page, from a consumer store filled by
simulated devices, opened in headless Chromium (DOM dump and screenshot), its figures
checked against the simulator's truth."""

from __future__ import annotations

import random
import re
import subprocess
from collections import Counter
from datetime import date, datetime
from html import unescape
from pathlib import Path
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest

from conftest import require_tool
from day_sim import Device, days, deliver, fast_store, local_midnight, visitors
from index_system.lobby_page import IN_C, OCC_C
from index_system.lobby_server import serve

SHANGHAI = ZoneInfo("Asia/Shanghai")
FIRST, END = date(2026, 6, 1), date(2026, 6, 7)
SITES = {"center-a": (160, 12_000), "center-b": (90, 4_000)}  # visitors a day, residents


@pytest.fixture(scope="module")
def lobby(tmp_path_factory):
    """Two sites' week in a consumer store, served on a free port; with the truth."""
    tmp = tmp_path_factory.mktemp("lobby")
    store = fast_store(tmp / "index.db")
    rng = random.Random(8)
    truth: dict[str, Counter] = {}
    for site, (n, residents) in SITES.items():
        dev = Device(tmp / f"{site}.db", SHANGHAI, local_midnight(FIRST, SHANGHAI), device=f"{site}-door",
                     site=site, capacity=50, residents=residents)
        for d in days(FIRST, 7):
            dev.journal.add_crossings(visitors(d, SHANGHAI, rng, n, tag=site))
        dev.run_until(local_midnight(END, SHANGHAI) + 24 * 3600, step_s=6 * 3600)  # END is the last day with bins
        assert deliver(dev, store).get("rejected", 0) == 0
        truth[site] = Counter()
        for (t,) in dev.journal.conn.execute("SELECT t_utc FROM crossings WHERE direction = 'in'"):
            truth[site][datetime.fromtimestamp(t, SHANGHAI).date()] += 1
    server = serve(store, "127.0.0.1", 0, "Demo District", 30)
    yield f"http://127.0.0.1:{server.server_address[1]}", truth, tmp
    server.shutdown()



def dom(url: str, tmp: Path) -> str:
    done = subprocess.run([require_tool("chromium", "chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp / 'chromium-profile'}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    return unescape(done.stdout)


def week_visits(truth: Counter) -> int:
    return sum(truth[d] for d in days(FIRST, 7))


def test_district_page_ranks_sites_with_the_truths_figures(lobby):
    url, truth, tmp = lobby
    html = dom(url + "/", tmp)
    ranked = re.findall(r'<tr id="site-([^"]+)">', html)
    assert ranked == ["center-a", "center-b"]  # by visits this week
    for site, (_, residents) in SITES.items():
        row = re.search(rf'<tr id="site-{site}">(.*?)</tr>', html, re.S)[1]
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        visits = week_visits(truth[site])
        assert cells[2] == f"{visits:,}"  # visits this week, as the simulator sent them
        assert cells[4] == f"{visits * 1000 / residents:.2f}"  # gathering rate: visits per 1,000 residents
    html = dom(url + "/?by=gathering", tmp)  # fewer visits but far fewer residents: center-b gathers more
    assert re.findall(r'<tr id="site-([^"]+)">', html) == ["center-b", "center-a"]
    assert '<meta http-equiv="refresh" content="30">' in html and "http" not in html.split("<body>")[1].replace(url, "")


def test_site_page_in_chromium_screenshot_and_figures(lobby):
    url, truth, tmp = lobby
    site, (_, residents) = "center-a", SITES["center-a"]
    html = dom(f"{url}/site/{site}", tmp)
    visits = week_visits(truth[site])
    assert f"{visits * 1000 / residents:.2f} per 1,000 residents" in html  # the week's gathering rate
    today = truth[site][END]
    assert f"{today} / " in html  # today's visits in (the day's figures, in the report's words)
    assert f"{today * 1000 / residents:.2f} per 1,000 residents" in html  # today's gathering rate
    assert html.count("<rect") > 20 and '<svg id="today"' in html and '<svg id="week"' in html

    shot = tmp / "site.png"
    done = subprocess.run([require_tool("chromium", "chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", f"--user-data-dir={tmp / 'chromium-profile'}",
                           "--window-size=1280,1000", f"--screenshot={shot}", f"{url}/site/{site}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img.shape == (1000, 1280, 3)

    def share(hex_color: str) -> float:
        bgr = np.array([int(hex_color[i:i + 2], 16) for i in (5, 3, 1)], np.uint8)
        return float(np.all(img == bgr, axis=-1).mean())

    assert share(IN_C) > 0.002 and share(OCC_C) > 0.0005  # the bars and the curve were drawn
    assert (img < 100).all(axis=-1).mean() > 0.001  # and text


def test_unknown_pages_and_bad_days_are_refused(lobby):
    import urllib.error
    import urllib.request

    url, _, _ = lobby
    for path, code in (("/site/nowhere", 404), ("/etc/passwd", 404), ("/?day=yesterday", 400)):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + path, timeout=10)
        assert e.value.code == code
    assert urllib.request.urlopen(url + "/?by=nonsense", timeout=10).status == 200  # falls back to visits


def test_the_serve_command_serves_the_store(lobby):
    import os
    import sys
    import urllib.request

    from simulator.processes import terminate

    _, _, tmp = lobby
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "index", "serve", "--db", str(tmp / "index.db"),
                             "--port", "0", "--district", "Bao'an"], stdout=subprocess.PIPE, text=True, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        line = proc.stdout.readline()
        m = re.match(r"serving (http://127\.0\.0\.1:\d+/)", line)
        assert m, line
        html = urllib.request.urlopen(m[1], timeout=20).read().decode()
        assert "Bao&#x27;an: service centers this week" in html and 'id="site-center-a"' in html
    finally:
        terminate(proc)
