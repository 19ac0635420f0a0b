"""Whether a device is heard from, judged by the bins it sends rather than by its retained
`status` (which says "online" after a broker restart until the device reconnects, and for
ever if it died meanwhile).

A device sends a bin every `bin_minutes`, zero bins included, so silence longer than one
bin period plus a grace (publishing delay, a short reconnect) means it is not counting or
cannot reach the broker. Pure: times in, a state out.
"""

from __future__ import annotations

ONLINE, OFFLINE, UNKNOWN = "online", "offline", "unknown"


def heard_state(last_bin_utc: float | None, bin_minutes: int | None, grace_s: float, now_utc: float) -> str:
    """'online' when the last bin arrived within a bin period plus `grace_s`, else
    'offline'; 'unknown' for a device that never sent a bin."""
    if last_bin_utc is None or not bin_minutes:
        return UNKNOWN
    return ONLINE if now_utc - last_bin_utc <= bin_minutes * 60 + grace_s else OFFLINE
