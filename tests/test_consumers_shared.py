"""Two consumer instances share one MQTT 5 shared subscription and one PostgreSQL: each stores
its share of a device's messages, yet both see the device's whole sequence, the one real hole
is asked for once (not by both, not again each round: no replay storm) and none is missed.
Real Mosquitto, real PostgreSQL, a device's real journal messages with a range held back (as
a broker crash loses messages it acknowledged)."""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt

from day_sim import morning_outbox
from harness import wait_for
from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore
from simulator.local_broker import SECURE_USERS, SHIPPED_ACL, Broker


HOLE = (20, 24)  # seq 20..24: acknowledged by the broker, then lost (as a broker crash loses them)


def share_the_load_and_ask_once(consumers: list[IndexConsumer], pub: mqtt.Client, msgs: list) -> None:
    """Run the instances' loops; `pub` (connected, dev-a) sends all but the hole, then replays
    it when asked. Both instances must store a share, both must see exactly the hole, one
    request must be published over several rounds of both, and nothing must be missing."""
    stop = threading.Event()
    loops = [threading.Thread(target=c.run_forever, args=(stop,), daemon=True) for c in consumers]
    for t in loops:
        t.start()
    asked: list[dict] = []
    pub.on_message = lambda c, u, m: asked.append(json.loads(m.payload))
    pub.subscribe("footfall/v1/site-1/dev-a/cmd/replay", qos=1)
    pub.loop_start()
    lo, hi = HOLE
    try:
        wait_for(lambda: all(c.connected.is_set() for c in consumers), 10, what="both instances connected")
        time.sleep(0.3)  # SUBACKs follow the CONNACKs
        for topic, payload, seq in msgs:
            if not lo <= seq <= hi:
                pub.publish(topic, payload, qos=1).wait_for_publish(5)
        wait_for(lambda: sum(c.counts["new"] for c in consumers) == len(msgs) - (hi - lo + 1), 20,
                 what="all sent messages stored")
        shares = [c.counts["new"] for c in consumers]
        assert min(shares) > len(msgs) // 4, f"the load is not shared: {shares}"
        # each instance received only its share, yet sees the whole sequence: one hole, the real one
        wait_for(lambda: all(c.store.gaps() == [("dev-a", 1, lo, hi)] for c in consumers), 10,
                 what="both instances seeing exactly the lost range")
        wait_for(lambda: asked, 10, what="the replay request")
        time.sleep(3.5)  # three more rounds of each instance: no second request
        assert asked == [{"epoch": 1, "from_seq": lo, "to_seq": hi}]
        for topic, payload, seq in msgs:  # the device replays
            if lo <= seq <= hi:
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
    assert asked == [{"epoch": 1, "from_seq": lo, "to_seq": hi}]
    assert all(c.counts["callback_error"] == 0 for c in consumers)


def test_two_instances_split_the_load_and_ask_each_hole_once(broker, tmp_path, pg_url):
    """A plain broker: each instance its own client id."""
    consumers = [IndexConsumer(ConsumerSettings(port=broker.port, client_id=f"index-{i}", replay_after_s=1.0,
                                                replay_every_s=60.0), IndexStore(pg_url)) for i in (1, 2)]
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fake-device")
    pub.connect("127.0.0.1", broker.port)
    share_the_load_and_ask_once(consumers, pub, morning_outbox(tmp_path, seed=5, n=60, hours=14))


def test_two_instances_on_the_shipped_broker_each_with_its_own_user(tmp_path, pg_url):
    """The shipped configuration (TLS, ACL, username as client id): the second instance is a
    copy of the ACL's `user index` block as `index-2`, as broker/README.md says."""
    users = {**SECURE_USERS, "index-2": "pw-index-2"}
    b = Broker(tmp_path / "secure-broker", secure=True, users=users)
    b.workdir.mkdir(parents=True)
    acl = SHIPPED_ACL.read_text()
    block = acl[acl.index("user index\n"):]
    b.acl_path.write_text(acl + "\n" + block.replace("user index\n", "user index-2\n", 1))
    b.start()
    try:
        consumers = [IndexConsumer(ConsumerSettings(host="localhost", port=b.port, username=name, password=users[name],
                                                    tls=True, ca_file=str(b.tls.ca_cert), replay_after_s=1.0,
                                                    replay_every_s=60.0), IndexStore(pg_url))
                     for name in ("index", "index-2")]
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-a", protocol=mqtt.MQTTv5)
        pub.username_pw_set("dev-a", users["dev-a"])
        pub.tls_set(ca_certs=str(b.tls.ca_cert))
        assert pub.connect("localhost", b.port) == mqtt.MQTT_ERR_SUCCESS
        share_the_load_and_ask_once(consumers, pub, morning_outbox(tmp_path, seed=5, n=60, hours=14))
    finally:
        b.stop()


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
