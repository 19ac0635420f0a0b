"""`footfall index run` started while its PostgreSQL is unreachable (a database host rebooting
with the consumer's, a restart under way) waits for the store instead of exiting, stores the
devices' messages once it is back, never logs the store's password, and stops on SIGTERM
while it waits. The real program, a real Mosquitto, the real PostgreSQL behind a TCP relay
that refuses connections until the test lets it through (bench.fleet_topology.LinkProxy)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import paho.mqtt.client as mqtt

from bench.fleet_topology import LinkProxy
from day_sim import morning_outbox
from harness import wait_for
from index_system.store_sql import PgConnection
from simulator.local_broker import Broker

SECRET = "pw-store-8c1e"  # trust auth ignores it; it must not reach the log


def through(url: str, port: int) -> str:
    """The same database URL by way of 127.0.0.1:port, as user postgres with a password."""
    return urlunsplit(urlsplit(url)._replace(netloc=f"postgres:{SECRET}@127.0.0.1:{port}"))


def consumer(db: str, broker: Broker, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge.cli", "index", "run", "--db", db, "--host", "127.0.0.1",
                             "--port", str(broker.port), "--no-tls", "--client-id", "index-wait"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def test_the_consumer_waits_for_its_store_then_stores(tmp_path, pg_url):
    relay = LinkProxy(urlsplit(pg_url).port or 5432)
    relay.cut()  # nothing listens: connection refused, as while PostgreSQL restarts
    broker = Broker(tmp_path / "broker")
    broker.extra_conf = "allow_anonymous true"
    broker.start()
    log = tmp_path / "index.log"
    proc = consumer(through(pg_url, relay.port), broker, log)
    dev = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-a", protocol=mqtt.MQTTv5)
    try:
        wait_for(lambda: "unreachable" in log.read_text(), timeout=30, what="the consumer to say it waits for its store")
        time.sleep(3.0)  # two more retries (1 s, 2 s back-off)
        assert proc.poll() is None, log.read_text()  # old code: exits at once with OperationalError
        relay.restore()
        msgs = morning_outbox(tmp_path, seed=3, n=20, hours=8)  # birth + bins of dev-a
        dev.connect("127.0.0.1", broker.port)
        dev.loop_start()
        store = PgConnection(pg_url)

        def stored() -> int:
            try:
                return store.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
            except Exception:  # noqa: BLE001 - the consumer has not created its tables yet
                return 0

        def publish_all() -> None:
            # The consumer subscribes once its store is open: publish again until it has them
            # all (a message is stored once per (device, epoch, seq), repeats are dropped).
            for topic, payload, _ in msgs:
                dev.publish(topic, payload, qos=1)
            time.sleep(1.0)

        wait_for(lambda: stored() == len(msgs), timeout=60, step=publish_all, what="the consumer to store dev-a's messages once the store is up")
        assert stored() == len(msgs)
        store.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        text = log.read_text()
        assert SECRET not in text and "***" in text, text
    finally:
        dev.loop_stop()
        if proc.poll() is None:
            proc.kill()
        relay.close()
        broker.stop()


def test_sigterm_while_waiting_for_the_store_ends_it(tmp_path):
    relay = LinkProxy(5432)
    relay.cut()
    broker = Broker(tmp_path / "broker")
    broker.extra_conf = "allow_anonymous true"
    broker.start()
    log = tmp_path / "index.log"
    proc = consumer(f"postgresql://postgres@127.0.0.1:{relay.port}/test", broker, log)
    try:
        wait_for(lambda: "unreachable" in log.read_text(), timeout=30, what="the consumer to wait for its store")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        relay.close()
        broker.stop()
