"""The day summary's figures as people read them: one label and one formatted value each.

One wording for every place that shows a day (the day report PNG, the lobby page, the
demo), so a figure reads the same wherever a person meets it. Pure: a summary in
(`contract.day_summary`), (label, value) pairs out; a figure the summary lacks reads "-".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contract.ratings import bad_share


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def day_figures(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Visits, peak hour, peak occupancy, usage, gathering, satisfaction, bad ratings,
    response rate and completeness of one day summary."""
    v, ph, po, u, c = s["visits"], s["peak_hour"], s["peak_occupancy"], s["usage_rate"], s["completeness"]
    g = s.get("gathering_rate")
    r = s.get("ratings") or {}
    return [
        ("visits in / out", f"{v['in']} / {v['out']}"),
        ("peak hour", "-" if ph is None else f"{ph['start_local'][11:16]} ({ph['in']} in)"),
        ("peak occupancy", f"{po['value']}" + (f" at {po['at_local'][11:16]}" if po["at_local"] else "")),
        ("usage rate", "-" if u is None else f"{u['mean']:.1%} (peak {u['peak']:.0%})"),
        ("gathering rate", "-" if g is None else f"{g['per_1000']:.2f} per 1,000 residents"),
        ("satisfaction", pct(r.get("satisfaction_share"))),
        ("bad ratings", pct(bad_share(r["counts"], r["levels"])) if r else "-"),
        ("response rate", pct(r.get("response_rate"))),
        ("completeness", f"{c['share']:.0%} ({c['healthy_bins']}/{c['expected_bins']} bins)"),
    ]
