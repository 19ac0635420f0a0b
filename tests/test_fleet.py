"""CI's fleet run, the same path as the 1,000-device day (bench/fleet.py, docs/FLEET.md): 50
simulated devices (the agent's real binner, outbox, journal writer, publisher and replay
handling each, in two harness processes) publish a simulated hour of 1-minute bins to two
district Mosquitto brokers bridged over TLS (broker/make-district-bridge.py's configuration)
to a central one, where two `footfall index run` instances share the subscription and
store into a PostgreSQL cluster of the test's own; while the bins are in flight a district
broker is SIGKILLed and restarted, a bridge link is cut for ten simulated minutes, a
consumer instance is SIGKILLed and restarted, and PostgreSQL is restarted. The index ends
with every bin of every device once, at its highest revision, and every day summary equal
to the one recomputed from the stored bins."""

from __future__ import annotations

from bench.fleet import ok, run


def test_fifty_devices_for_a_simulated_hour_through_two_districts_with_faults():
    out = run(devices=50, hours=1.0, speed=360.0, faults=True, timeout_s=45.0, replay_after_s=2.0)
    print(out)
    assert len(out["faults"]) >= 7, out["faults"]  # every planned fault struck
    assert out["harness_processes"] == 2 and out["devices_connected_at_start"] == 50
    assert out["expected_messages"] == 50 * 61  # 60 bins and a day summary each
    assert out["lost"] == 0 and out["doubled"] == 0, out["lost_sample"]
    assert out["stored_messages"] == out["expected_messages"]
    assert out["devices_with_wrong_bins"] == 0
    assert out["stored_in"] == out["truth_in"] > 0  # every entry drawn, counted once at the index
    assert out["summaries_sent"] == 50 == out["summaries_equal_recomputed"]
    assert ok(out)
