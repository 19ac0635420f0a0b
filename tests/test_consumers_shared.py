"""Two consumer instances share one MQTT 5 shared subscription and one PostgreSQL: each stores
its share of a device's messages, yet both see the device's whole sequence, the one real hole
is asked for once (not by both, not again each round: no replay storm) and none is missed.
Real Mosquitto, real PostgreSQL, a device's real journal messages with a range held back (as
a broker crash loses messages it acknowledged)."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import date
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt

from day_sim import Device, local_midnight, visitors
from harness import wait_for
from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore


def instance(port: int, pg_url: str, name: str) -> IndexConsumer:
    """One consumer instance of group `index`, with its own client id (a secure broker: its own
    username) and its own connection to the shared store."""
    return IndexConsumer(ConsumerSettings(port=port, client_id=name, replay_after_s=1.0, replay_every_s=60.0),
                         IndexStore(pg_url))


def test_two_instances_split_the_load_and_ask_each_hole_once(broker, tmp_path, pg_url):
    zone = ZoneInfo("Asia/Shanghai")
    day = date(2026, 6, 1)
    dev = Device(tmp_path / "dev.db", zone, local_midnight(day, zone))
    dev.journal.add_crossings(visitors(day, zone, random.Random(5), 60))
    dev.run_until(local_midnight(day, zone) + 14 * 3600)
    msgs = dev.journal.conn.execute("SELECT topic, payload, seq FROM outbox ORDER BY seq").fetchall()
    assert len(msgs) > 40
    held = [m for m in msgs if 20 <= m[2] <= 24]  # lost by the broker: seq 20..24
    consumers = [instance(broker.port, pg_url, f"index-{i}") for i in (1, 2)]
    stop = threading.Event()
    loops = [threading.Thread(target=c.run_forever, args=(stop,), daemon=True) for c in consumers]
    for t in loops:
        t.start()
    asked: list[dict] = []
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fake-device")
    pub.on_message = lambda c, u, m: asked.append(json.loads(m.payload))
    pub.connect("127.0.0.1", broker.port)
    pub.subscribe("footfall/v1/site-1/dev-a/cmd/replay", qos=1)
    pub.loop_start()
    try:
        wait_for(lambda: all(c.connected.is_set() for c in consumers), 10, what="both instances connected")
        time.sleep(0.3)  # SUBACKs follow the CONNACKs
        for topic, payload, seq in msgs:
            if not 20 <= seq <= 24:
                pub.publish(topic, payload, qos=1).wait_for_publish(5)
        wait_for(lambda: sum(c.counts["new"] for c in consumers) == len(msgs) - 5, 20, what="all sent messages stored")
        shares = [c.counts["new"] for c in consumers]
        assert min(shares) > len(msgs) // 4, f"the load is not shared: {shares}"
        # each instance received only its share, yet sees the whole sequence: one hole, the real one
        wait_for(lambda: all(c.store.gaps() == [("dev-a", 1, 20, 24)] for c in consumers), 10,
                 what="both instances seeing exactly the lost range")
        wait_for(lambda: asked, 10, what="the replay request")
        time.sleep(3.5)  # three more rounds of each instance: no second request
        assert asked == [{"epoch": 1, "from_seq": 20, "to_seq": 24}]
        for topic, payload, _ in held:  # the device replays
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
        wait_for(lambda: all(c.store.gaps() == [] for c in consumers), 10, what="the hole closed on both instances")
        assert consumers[0].store.totals()["bins"] == sum(1 for t, _, _ in msgs if t.endswith("/bins"))
        (n,) = consumers[0].store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()
        assert n == len(msgs)
    finally:
        stop.set()
        for t in loops:
            t.join(10)
        pub.loop_stop()
        pub.disconnect()
    assert asked == [{"epoch": 1, "from_seq": 20, "to_seq": 24}]
    assert all(c.counts["callback_error"] == 0 for c in consumers)


def test_a_hole_another_instance_filled_is_not_asked_for(pg_url):
    """Instance A's tracker lags (B stored the message after A's last catch-up, stamped older
    than A's slack reaches): A checks the store before asking and asks nothing."""
    from index_peers import bin_at, topic

    a, b = IndexStore(pg_url), IndexStore(pg_url)
    cons = IndexConsumer(ConsumerSettings(replay_after_s=0.0), a)
    cons.client.publish = lambda *args, **kw: pytest_fail("published a replay request")  # type: ignore[method-assign]
    now = time.time()
    for seq in (1, 3):
        assert a.ingest(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", seq, 10 - seq), "footfall/v1", now) == "new"
    assert a.catch_up(slack_s=10.0) == 2  # its own rows: the cursor is at `now`
    assert b.ingest(topic("site-1", "dev-a", "bins"), bin_at("dev-a", "site-1", 2, 8), "footfall/v1", now - 100) == "new"
    assert a.catch_up(slack_s=10.0) == 2 and a.gaps() == [("dev-a", 1, 2, 2)]  # seq 2 is stamped before the slack reaches
    assert cons.request_replays(now + 60) == 0
    assert a.gaps() == []


def pytest_fail(why: str) -> None:
    import pytest

    pytest.fail(why)
