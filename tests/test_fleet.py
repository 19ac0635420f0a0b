"""CI's fleet run: 50 simulated devices (the agent's real binner, outbox, journal writer and
publisher each) publish a simulated hour of 1-minute bins through a real Mosquitto to two
`footfall index run` processes sharing one PostgreSQL; every bin arrives once (bench/fleet.py,
docs/FLEET.md)."""

from __future__ import annotations

from bench.fleet import run


def test_fifty_devices_for_a_simulated_hour_into_postgresql_once_each(pg_url):
    out = run(devices=50, hours=1.0, speed=360.0, instances=2, db=pg_url, timeout_s=45.0)
    assert out["expected_messages"] == 50 * 60 == out["expected_bins"]
    assert out["missing"] == 0 and out["stored_messages"] == out["expected_messages"]
    assert out["bins_rows"] == 3000 and out["devices_with_all_bins"] == 50
    assert out["stored_in"] == out["truth_in"] > 0  # every entry drawn, counted once at the index
    assert out["latency_p50_s"] is not None and out["throughput_msg_s"] > 0
