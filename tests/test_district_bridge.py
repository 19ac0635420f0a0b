"""A district Mosquitto bridged to a central one over TLS, from the configuration that
broker/make-district-bridge.py writes: a device publishes to its district broker, the
reference consumer on the central broker stores its bins, the consumer's replay request
reaches the device back through the bridge, and with the central broker stopped while the
device publishes, the district's bridge queue (cleansession false) delivers every bin once
after the link returns. Real brokers on free ports, real TLS, real consumer and store."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from day_sim import morning_outbox
from harness import wait_for
from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore
from simulator.local_broker import SHIPPED_ACL, Broker, make_test_pki

SCRIPT = Path(__file__).resolve().parent.parent / "broker" / "make-district-bridge.py"
BRIDGE_PW = "pw-bridge-district-7"
HOLE = (10, 12)  # seq 10..12 held back by the device until the index asks for them


def make_bridge(tmp_path: Path, central: Broker) -> tuple[str, str]:
    """Run the script as an operator would: the district's bridge section and the central's ACL block."""
    pw = tmp_path / "bridge.password"
    pw.write_text(BRIDGE_PW + "\n")
    out, acl = tmp_path / "bridge.conf", tmp_path / "central-acl-entry"
    subprocess.run([sys.executable, str(SCRIPT), "--district", "district-7", "--central-host", "localhost",
                    "--central-port", str(central.port), "--cafile", str(central.tls.ca_cert), "--password-file",
                    str(pw), "--out", str(out), "--acl-out", str(acl), "--restart-timeout", "1 2"],
                   check=True, capture_output=True)
    assert out.stat().st_mode & 0o077 == 0, "the bridge section holds a password: mode 0600"
    return out.read_text(), acl.read_text()


def publish(dev: mqtt.Client, topic: str, payload: str) -> None:
    """QoS 1 to the district broker, returning once it acknowledged the message."""
    info = dev.publish(topic, payload, qos=1)
    info.wait_for_publish(10)
    assert info.is_published(), f"the district broker did not acknowledge {topic}"


def test_the_script_refuses_bad_input(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("short\n")
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    base = [sys.executable, str(SCRIPT), "--central-host", "localhost", "--cafile", str(ca), "--out", str(tmp_path / "o")]
    for district, password_file in (("district/7", None), ("#", None), ("district-7", pw)):
        args = base + ["--district", district, "--password-file", str(password_file or tmp_path / "missing")]
        r = subprocess.run(args, capture_output=True, text=True)
        assert r.returncode == 1, r.stderr
        assert not (tmp_path / "o").exists()


def test_device_to_central_consumer_through_the_bridge_with_the_link_down(tmp_path):
    pki = make_test_pki(tmp_path / "pki")  # one CA signs both brokers' certificates (localhost)
    central = Broker(tmp_path / "central", secure=True, tls=pki,
                     users={"index": "pw-index", "bridge-district-7": BRIDGE_PW})
    bridge_conf, acl_entry = make_bridge(tmp_path, central)
    central.workdir.mkdir(parents=True)
    central.acl_path.write_text(SHIPPED_ACL.read_text() + "\n" + acl_entry)
    district = Broker(tmp_path / "district", secure=True, tls=pki, users={"dev-a": "pw-dev-a"},
                      extra_conf=bridge_conf)
    msgs = morning_outbox(tmp_path, seed=7, n=40, hours=14)  # birth + 56 bins of dev-a
    first, second = msgs[:len(msgs) // 2], msgs[len(msgs) // 2:]
    central.start()
    district.start()
    consumer = IndexConsumer(ConsumerSettings(port=central.port, username="index", password="pw-index", tls=True,
                                              ca_file=str(pki.ca_cert), replay_after_s=1.0, replay_every_s=60.0),
                             IndexStore(tmp_path / "index.db"))
    stop = threading.Event()
    loop = threading.Thread(target=consumer.run_forever, args=(stop,), daemon=True)
    dev = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-a", protocol=mqtt.MQTTv5)
    dev.username_pw_set("dev-a", "pw-dev-a")
    dev.tls_set(ca_certs=str(pki.ca_cert))
    asked: list[dict] = []
    subscribed = threading.Event()
    dev.on_message = lambda c, u, m: asked.append(json.loads(m.payload))
    dev.on_subscribe = lambda *a: subscribed.set()
    stored = lambda: consumer.store.conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]  # noqa: E731
    try:
        loop.start()
        assert dev.connect("localhost", district.port) == mqtt.MQTT_ERR_SUCCESS
        dev.loop_start()
        dev.subscribe("footfall/v1/+/dev-a/cmd/#", qos=1)
        wait_for(subscribed.is_set, 10, what="the device's command subscription")
        wait_for(consumer.connected.is_set, 10, what="the consumer on the central broker")

        # 1. through the bridge, with a hole the consumer asks for; the request comes back through it
        lo, hi = HOLE
        sent = [m for m in first if not lo <= m[2] <= hi]
        for topic, payload, _ in sent:
            publish(dev, topic, payload)
        wait_for(lambda: stored() == len(sent), 20, what="the first half stored at the central consumer")
        wait_for(lambda: asked, 15, what="the replay request reaching the device through the bridge")
        assert asked == [{"epoch": 1, "from_seq": lo, "to_seq": hi}]
        for topic, payload, seq in first:
            if lo <= seq <= hi:
                publish(dev, topic, payload)
        wait_for(lambda: stored() == len(first) and consumer.store.gaps() == [], 15, what="the hole closed")

        # 2. the link down: the central broker stops while the device's messages are in flight
        # through the bridge, and the device goes on publishing to its district broker
        in_flight = [dev.publish(topic, payload, qos=1) for topic, payload, _ in second[:8]]
        central.stop()
        for topic, payload, _ in second[8:]:
            publish(dev, topic, payload)  # acked by the district broker: queued there for the bridge
        for info in in_flight:
            info.wait_for_publish(10)
            assert info.is_published()
        assert stored() < len(msgs)
        central.start()
        wait_for(lambda: stored() == len(msgs), 25, what="the bridge queue delivered after the link returned")
        wait_for(lambda: consumer.store.gaps() == [], 5, what="no hole")
        assert asked == [{"epoch": 1, "from_seq": lo, "to_seq": hi}], "one request, no echo through the bridge"
    finally:
        stop.set()
        loop.join(10)
        dev.loop_stop()
        dev.disconnect()
        district.stop()
        central.stop()
    bins = sum(1 for t, _, _ in msgs if t.endswith("/bins"))
    assert consumer.store.totals()["bins"] == bins
    # Stored once each. QoS 1 may hand the consumer another copy of a message that was in
    # flight when the central broker stopped (resent by the bridge, or redelivered by the
    # central from the consumer's session); the dedupe counts and drops it.
    assert consumer.counts["new"] == len(msgs)
    assert consumer.counts["duplicate"] <= 2 * len(in_flight), consumer.counts
    print(f"messages {len(msgs)}, stored {consumer.counts['new']}, duplicates absorbed {consumer.counts['duplicate']}")
    assert consumer.counts["callback_error"] == 0
    (rejected,) = consumer.store.conn.execute("SELECT COUNT(*) FROM rejects").fetchone()
    assert rejected == 0
