"""bench.rss_probe measures what the agent runs: its own camera source with the agent's
defaults (the tiled front-end, cores - 1 inference threads), not a hand-built pipeline."""

from __future__ import annotations

from bench.rss_probe import probe, unit_environment
from edge.detector import default_threads

try:
    from tests.camera_data import needs_vtest
except ImportError:  # pragma: no cover
    from camera_data import needs_vtest


@needs_vtest
def test_the_probe_runs_the_agents_camera_source_with_its_defaults() -> None:
    r = probe(12)
    assert r["frames"] >= 12
    assert r["front_end"] == "TiledDetector"  # CameraSource's default front-end
    assert r["threads"] == default_threads()
    assert 50 < r["VmRSS"] <= r["VmHWM"]


def test_the_unit_environment_is_what_the_probe_copies() -> None:
    env = unit_environment()
    assert env["PYTHONUNBUFFERED"] == "1"  # read from systemd/footfall-agent.service
