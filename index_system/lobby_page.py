"""The lobby and district screen: HTML pages from the index's figures, charts as inline SVG.

Pure: week views (`index_system.week_view`), a day's bins and day summaries in, one HTML
string out; `index_system.lobby_server` serves them. Nothing is fetched from elsewhere (no
CDN, no script): a screen in a center's lobby works without internet, and the page reloads
itself every `refresh_s` seconds.

- The district page ranks the sites by the week's visits, usage rate, gathering rate or
  satisfaction share (`?by=`), with each site's other figures beside.
- A site page shows today's curve (in and out per bin, people inside), today's figures per
  device in the day report's words (`contract.figure_labels`), and the week.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from contract.figure_labels import day_figures, pct

RANKINGS: dict[str, tuple[str, str]] = {  # ?by= -> (week view key, column title)
    "visits": ("visits_week", "visits this week"),
    "usage": ("usage_rate", "usage rate"),
    "gathering": ("gathering_rate", "gathering rate (per 1,000 residents)"),
    "satisfaction": ("satisfaction_share", "satisfaction"),
}
IN_C, OUT_C, OCC_C = "#2e7d32", "#1565c0", "#6a1b9a"

STYLE = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:26px;margin:0 0 4px} h2{font-size:19px;margin:22px 0 8px} .sub{color:#666;margin-bottom:14px}
table{border-collapse:collapse;background:#fff} th,td{padding:6px 12px;border-bottom:1px solid #ddd;text-align:right}
th{background:#eee} td.name,th.name{text-align:left} a{color:#1565c0;text-decoration:none}
th.sorted{background:#cfd8dc} .figs{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0}
.fig{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:150px}
.fig b{display:block;font-size:20px} .fig span{color:#666;font-size:13px} svg{background:#fff;border:1px solid #ddd}
"""


def _num(x: float | int | None, fmt: str = "{:,}") -> str:
    return "-" if x is None else fmt.format(x)


def page(title: str, body: str, refresh_s: int) -> str:
    """A whole HTML document that reloads itself."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>")


def district_page(district: str, views: Sequence[Mapping[str, Any]], by: str = "visits", refresh_s: int = 30) -> str:
    """Sites ranked by one of RANKINGS this week (missing figures last), every figure beside."""
    key = RANKINGS[by][0] if by in RANKINGS else "visits_week"
    ranked = sorted(views, key=lambda v: (v[key] is None, -(v[key] or 0), v["site"]))
    week = f"{views[0]['week_start']} .. {views[0]['week_end']}" if views else "no counts yet"
    heads = "".join(f'<th class="{"sorted" if k == by else ""}"><a href="?by={k}">{escape(t)}</a></th>'
                    for k, (_, t) in RANKINGS.items())
    rows = []
    for i, v in enumerate(ranked, 1):
        wow = v["week_over_week"]
        rows.append(
            f'<tr id="site-{escape(v["site"])}"><td>{i}</td>'
            f'<td class="name"><a href="/site/{quote(v["site"])}">{escape(v["site"])}</a></td>'
            f'<td>{_num(v["visits_week"])}</td><td>{pct(v["usage_rate"])}</td>'
            f'<td>{_num(v["gathering_rate"], "{:.2f}")}</td><td>{pct(v["satisfaction_share"])}</td>'
            f'<td>{"-" if wow is None else f"{wow:+.1%}"}</td><td>{pct(v["completeness"])}</td></tr>')
    body = (f"<h1>{escape(district)}: service centers this week</h1>"
            f'<div class="sub">week {escape(week)}; ranked by {escape(RANKINGS.get(by, RANKINGS["visits"])[1])}; '
            f"refreshes every {int(refresh_s)} s</div>"
            f'<table id="ranking"><tr><th>#</th><th class="name">site</th>{heads}'
            f"<th>week over week</th><th>complete</th></tr>{''.join(rows)}</table>")
    return page(f"{district}: this week", body, refresh_s)


def curve_svg(bins: Sequence[Mapping[str, Any]], width: int = 960, height: int = 380) -> str:
    """Today's in (up) and out (down) per bin above, the people inside below, summed over
    the site's devices, on the local hours of the day."""
    per: dict[str, dict[str, Any]] = {}
    for b in bins:
        slot = per.setdefault(b["bin"]["start_local"], {"in": 0, "out": 0, "occ": 0})
        slot["in"] += b["total"]["in"]
        slot["out"] += b["total"]["out"]
        slot["occ"] += b["occupancy"]["end"]
    if not per:
        return f'<svg id="today" width="{width}" height="60"><text x="12" y="36">no bins today yet</text></svg>'
    minutes = bins[0]["bin"]["minutes"]
    left, right, top, zero, occ_top, bottom = 48, 12, 26, 26 + (height - 60) * 0.3, 30 + (height - 60) * 0.62, height - 28
    slots = 24 * 60 // minutes
    step = (width - left - right) / slots
    top_n = max(1, max(max(s["in"], s["out"]) for s in per.values()))
    occ_n = max(1, max(s["occ"] for s in per.values()))
    half = zero - top - 2
    parts = [f'<svg id="today" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-size="11" font-family="DejaVu Sans, Arial, sans-serif">']
    for h in range(0, 25, 2):
        x = left + h * 60 / minutes * step
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#e3e3e3"/>'
                     f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle">{h:02d}:00</text>')
    parts.append(f'<line x1="{left}" y1="{zero:.1f}" x2="{width - right}" y2="{zero:.1f}" stroke="#444"/>'
                 f'<line x1="{left}" y1="{bottom}" x2="{width - right}" y2="{bottom}" stroke="#444"/>')
    points = []
    for start_local, s in sorted(per.items()):
        t = datetime.fromisoformat(start_local)
        x = left + (t.hour * 60 + t.minute) // minutes * step
        for n, sign, color in ((s["in"], -1, IN_C), (s["out"], 1, OUT_C)):
            if n:
                h = n / top_n * half
                y = zero - h if sign < 0 else zero
                parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.85:.1f}" height="{h:.1f}" fill="{color}"/>')
        points.append(f"{x + step:.1f},{bottom - s['occ'] / occ_n * (bottom - occ_top):.1f}")
    parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{OCC_C}" stroke-width="2.5"/>')
    parts.append(f'<text x="4" y="{top + 8}">{top_n}</text><text x="4" y="{zero + 4:.1f}">0</text>'
                 f'<text x="4" y="{2 * zero - top:.1f}">{top_n}</text>'
                 f'<text x="4" y="{occ_top + 8:.1f}">{occ_n}</text><text x="4" y="{bottom}">0</text>')
    for i, (label, color) in enumerate((("in", IN_C), ("out", OUT_C), (f"people inside (max {occ_n})", OCC_C))):
        x = left + 8 + i * 90
        parts.append(f'<rect x="{x}" y="6" width="12" height="10" fill="{color}"/><text x="{x + 16}" y="15">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def week_svg(view: Mapping[str, Any], width: int = 960, height: int = 170) -> str:
    """Visits in per day of the week (a day without bins is left empty, not drawn as zero)."""
    days = view["days"]
    top_n = max([1] + [d["visits_in"] or 0 for d in days])
    col = (width - 40) / len(days)
    parts = [f'<svg id="week" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12" '
             f'font-family="DejaVu Sans, Arial, sans-serif">']
    for i, d in enumerate(days):
        x = 20 + i * col
        parts.append(f'<text x="{x + col / 2:.1f}" y="{height - 8}" text-anchor="middle">{d["date"][5:]}</text>')
        if d["visits_in"] is None:
            parts.append(f'<text x="{x + col / 2:.1f}" y="{height / 2}" text-anchor="middle" fill="#999">no data</text>')
            continue
        h = d["visits_in"] / top_n * (height - 50)
        parts.append(f'<rect x="{x + col * 0.2:.1f}" y="{height - 26 - h:.1f}" width="{col * 0.6:.1f}" height="{h:.1f}" fill="{IN_C}"/>'
                     f'<text x="{x + col / 2:.1f}" y="{height - 30 - h:.1f}" text-anchor="middle">{d["visits_in"]}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _cards(pairs: Sequence[tuple[str, str]], cls: str) -> str:
    return f'<div class="figs {cls}">' + "".join(
        f'<div class="fig"><span>{escape(k)}</span><b>{escape(v)}</b></div>' for k, v in pairs) + "</div>"


def site_page(site: str, day: str, bins: Sequence[Mapping[str, Any]], summaries: Mapping[str, Mapping[str, Any] | None],
              view: Mapping[str, Any] | None, district: str, refresh_s: int = 30) -> str:
    """Today's live curve and figures (per device), and the week, of one site."""
    today = []
    for device, s in sorted(summaries.items()):
        if s is not None:
            today.append(f"<h2>Today, {escape(device)}</h2>" + _cards(day_figures(s), "today"))
    week = ""
    if view is not None:
        wow = view["week_over_week"]
        week = (f"<h2>The week {escape(view['week_start'])} .. {escape(view['week_end'])}</h2>" + _cards([
            ("visits this week", _num(view["visits_week"])),
            ("previous week", _num(view["visits_previous_week"])),
            ("week over week", "-" if wow is None else f"{wow:+.1%}"),
            ("usage rate", pct(view["usage_rate"])),
            ("gathering rate", "-" if view["gathering_rate"] is None else
             f"{view['gathering_rate']:.2f} per 1,000 residents"),
            ("satisfaction", pct(view["satisfaction_share"])),
            ("completeness", pct(view["completeness"])),
            ("peak hours", ", ".join(f"{p['hour']:02d}:00" for p in view["peak_hours"]) or "-"),
        ], "week") + week_svg(view))
    body = (f'<div class="sub"><a href="/">&larr; {escape(district)}</a></div>'
            f"<h1>{escape(site)}</h1><div class=\"sub\">today {escape(day)}: in and out per bin, people inside; "
            f"refreshes every {int(refresh_s)} s</div>{curve_svg(bins)}{''.join(today)}{week}")
    return page(f"{site}: today", body, refresh_s)
