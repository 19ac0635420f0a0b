"""The shipped broker config and ACL, on a real Mosquitto over TLS: a device can write
only its own subtree, reads nothing, and nobody gets in without valid credentials."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from simulator.local_broker import (REPO_ROOT, SECURE_USERS, Broker, free_port, make_test_pki, mosquitto_binary,
                         render_shipped_config)

ADD_DEVICE = REPO_ROOT / "broker" / "add-device.sh"
V5, V311 = MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87


class Peer:
    """One paho-mqtt 2 client over TLS that records what happens to it."""

    def __init__(self, broker: Broker, username: str | None, password: str | None,
                 protocol: MQTTProtocolVersion = V5, ca: Path | None = None) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{username}-{uuid.uuid4().hex[:8]}",
                                  protocol=protocol)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.tls_set(ca_certs=str(ca or broker.tls.ca_cert))
        self.connack: mqtt.ReasonCode | None = None
        self.connected = threading.Event()
        self.suback: list[mqtt.ReasonCode] | None = None
        self.subscribed = threading.Event()
        self.pubacks: dict[int, mqtt.ReasonCode] = {}
        self.messages: list[mqtt.MQTTMessage] = []
        self._cv = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.disconnected = threading.Event()
        self.port = broker.port

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = reason_code
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.disconnected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.suback = list(reason_codes)
        self.subscribed.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cv:
            self.pubacks[mid] = reason_code
            self._cv.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        with self._cv:
            self.messages.append(msg)
            self._cv.notify_all()

    def connect(self) -> mqtt.ReasonCode:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK within 10 s"
        assert self.connack is not None
        if self.connack.is_failure:
            self.close()
        return self.connack

    def subscribe(self, topic: str) -> list[mqtt.ReasonCode]:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(10), "no SUBACK within 10 s"
        assert self.suback is not None
        return self.suback

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> mqtt.ReasonCode:
        """QoS 1 publish; returns the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._cv:
            assert self._cv.wait_for(lambda: info.mid in self.pubacks, 10), f"no PUBACK for {topic}"
            return self.pubacks[info.mid]

    def wait_message(self, payload: bytes, timeout: float = 10.0) -> list[mqtt.MQTTMessage]:
        """Wait until a message with `payload` arrived; return everything received so far."""
        with self._cv:
            assert self._cv.wait_for(lambda: any(m.payload == payload for m in self.messages), timeout), \
                f"{payload!r} never arrived; got {[m.topic for m in self.messages]}"
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def peers(secure_broker: Broker):
    made: list[Peer] = []

    def make(username: str | None, password: str | None = None, protocol: MQTTProtocolVersion = V5, **kw) -> Peer:
        if password is None and username is not None:
            password = SECURE_USERS[username]
        peer = Peer(secure_broker, username, password, protocol, **kw)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close()


def reader(peers) -> Peer:
    """The index consumer, subscribed to the whole tree."""
    index = peers("index")
    assert not index.connect().is_failure
    codes = index.subscribe("footfall/v1/#")
    assert not codes[0].is_failure, f"index may read footfall/v1/#, SUBACK said {codes[0]}"
    return index


@pytest.mark.parametrize("protocol", [V5, V311], ids=["mqtt5", "mqtt311"])
def test_device_publishes_its_own_subtree_and_the_index_receives_it(peers, protocol) -> None:
    index = reader(peers)
    dev_a = peers("dev-a", protocol=protocol)
    assert not dev_a.connect().is_failure
    for kind in ("bins", "birth", "summary", "alarm", "rating"):
        rc = dev_a.publish(f"footfall/v1/site-1/dev-a/{kind}", kind.encode())
        assert not rc.is_failure, f"{kind}: PUBACK {rc}"
    assert not dev_a.publish("footfall/v1/site-1/dev-a/status", b"online", retain=True).is_failure
    got = index.wait_message(b"online")
    assert sorted(m.topic.rsplit("/", 1)[1] for m in got) == sorted(
        ["bins", "birth", "summary", "alarm", "rating", "status"])


FORBIDDEN = [
    "footfall/v1/site-1/dev-b/bins",      # another device's data
    "footfall/v1/site-1/dev-b/status",    # another device's availability (retained below)
    "footfall/v1/site-2/dev-b/alarm",     # another device at another site
    "footfall/v1/site-1/dev-a-evil/bins",  # a device id that merely starts with ours
    "footfall/v2/site-1/dev-a/bins",      # outside the v1 tree
    "footfall/v1/site-1",                 # above the device level
]


@pytest.mark.parametrize("topic", FORBIDDEN)
@pytest.mark.parametrize("protocol", [V5, V311], ids=["mqtt5", "mqtt311"])
def test_device_cannot_publish_outside_its_subtree(peers, protocol, topic) -> None:
    index = reader(peers)
    dev_a = peers("dev-a", protocol=protocol)
    assert not dev_a.connect().is_failure
    rc = dev_a.publish(topic, b"forged", retain=topic.endswith("/status"))
    if protocol == V5:
        assert rc.value == NOT_AUTHORIZED, f"MQTT 5 PUBACK should say not authorized, got {rc}"
    else:
        # MQTT 3.1.1 has no way to refuse a publish: Mosquitto acks it and drops it.
        assert rc.value == 0
    # A later, allowed publish from the same connection is delivered after the forged one
    # would have been, so once the sentinel is in, the forged message provably did not come.
    dev_a.publish("footfall/v1/site-1/dev-a/bins", b"sentinel")
    got = index.wait_message(b"sentinel")
    assert [m.topic for m in got if m.payload == b"forged"] == []
    # A retained forgery would reach every later subscriber: check a fresh one too.
    late = reader(peers)
    dev_a.publish("footfall/v1/site-1/dev-a/bins", b"sentinel-2")
    assert [m.topic for m in late.wait_message(b"sentinel-2") if m.payload == b"forged"] == []


@pytest.mark.parametrize("protocol", [V5, V311], ids=["mqtt5", "mqtt311"])
def test_device_reads_nothing_but_its_own_commands(peers, protocol) -> None:
    index = reader(peers)
    dev_a = peers("dev-a", protocol=protocol)
    assert not dev_a.connect().is_failure
    # Mosquitto grants the SUBACK (a filter might match something readable) and applies the
    # ACL to each delivery, so what matters is that nothing is delivered.
    dev_a.subscribe("footfall/v1/#")
    dev_a.subscribe("footfall/v1/site-1/dev-b/bins")
    dev_a.subscribe("footfall/v1/site-1/dev-a/#")
    dev_b = peers("dev-b")
    assert not dev_b.connect().is_failure
    dev_b.publish("footfall/v1/site-1/dev-b/bins", b"b-data")
    dev_a.publish("footfall/v1/site-1/dev-a/bins", b"a-data")
    index.wait_message(b"b-data")
    index.wait_message(b"a-data")
    time.sleep(0.2)  # delivery to every subscriber happens in the same broker pass
    assert dev_a.messages == []
    # the index system's replay requests: each device reads its own, and only its own
    dev_a.subscribe("footfall/v1/+/+/cmd/#")
    time.sleep(0.2)
    index.client.publish("footfall/v1/site-1/dev-b/cmd/replay", b"for-b", qos=1).wait_for_publish(5)
    index.client.publish("footfall/v1/site-1/dev-a/cmd/replay", b"for-a", qos=1).wait_for_publish(5)
    dev_a.wait_message(b"for-a")
    time.sleep(0.2)
    assert {m.payload for m in dev_a.messages} == {b"for-a"}  # one copy per overlapping filter


@pytest.mark.parametrize("protocol", [V5, V311], ids=["mqtt5", "mqtt311"])
@pytest.mark.parametrize("username,password", [(None, None), ("dev-a", "wrong-password"), ("nobody", "pw-dev-a")],
                         ids=["anonymous", "wrong-password", "unknown-user"])
def test_connection_without_valid_credentials_is_refused(peers, protocol, username, password) -> None:
    peer = peers(username, password or "", protocol=protocol)
    rc = peer.connect()
    assert rc.is_failure, f"{username!r} was let in"
    # v5: 0x86 bad user name or password / 0x87 not authorized; v3.1.1: 4 / 5 (mapped by paho)
    assert rc.value in (134, 135), rc


def test_a_client_trusting_another_ca_refuses_the_server(secure_broker: Broker, peers, tmp_path: Path) -> None:
    """The listener really serves the configured certificate chain (no silent plain TCP)."""
    other = make_test_pki(tmp_path / "other-ca")
    peer = peers("dev-a", ca=other.ca_cert)
    with pytest.raises(ssl.SSLCertVerificationError):
        peer.client.connect("127.0.0.1", secure_broker.port)


def test_index_can_use_a_shared_subscription(peers) -> None:
    index = peers("index")
    assert not index.connect().is_failure
    assert not index.subscribe("$share/index/footfall/v1/#")[0].is_failure
    dev_a = peers("dev-a")
    assert not dev_a.connect().is_failure
    dev_a.publish("footfall/v1/site-1/dev-a/bins", b"shared")
    index.wait_message(b"shared")


WILL_CLIENT = """
import sys, time
import paho.mqtt.client as mqtt
port, ca, user, password, will_topic, proto = sys.argv[1:7]
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=user + "-will",
                protocol=mqtt.MQTTv5 if proto == "5" else mqtt.MQTTv311)
c.username_pw_set(user, password)
c.tls_set(ca_certs=ca)
c.will_set(will_topic, b"offline", qos=1, retain=True)
c.on_connect = lambda *a: print("connected", a[3], flush=True)
c.connect("127.0.0.1", int(port), keepalive=30)
c.loop_forever()
"""


def die_with_will(broker: Broker, will_topic: str, protocol: str) -> None:
    """A device process with a last will that is SIGKILLed once connected."""
    proc = subprocess.Popen([sys.executable, "-c", WILL_CLIENT, str(broker.port), str(broker.tls.ca_cert), "dev-a",
                             SECURE_USERS["dev-a"], will_topic, protocol], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("connected Success"), line
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_last_will_is_published_only_on_the_devices_own_status(peers, secure_broker: Broker, protocol) -> None:
    """The broker publishes a device's last will with the device's rights: its own retained
    status goes out as "offline"; a will aimed at another device's status is dropped."""
    index = reader(peers)
    die_with_will(secure_broker, "footfall/v1/site-1/dev-b/status", protocol)
    die_with_will(secure_broker, "footfall/v1/site-1/dev-a/status", protocol)
    got = index.wait_message(b"offline")
    assert [m.topic for m in got] == ["footfall/v1/site-1/dev-a/status"]
    late = reader(peers)  # retained state as a consumer starting now sees it
    dev_a = peers("dev-a")
    assert not dev_a.connect().is_failure
    dev_a.publish("footfall/v1/site-1/dev-a/bins", b"sentinel")
    got = late.wait_message(b"sentinel")
    assert {(m.topic, m.payload, bool(m.retain)) for m in got} == {
        ("footfall/v1/site-1/dev-a/status", b"offline", True), ("footfall/v1/site-1/dev-a/bins", b"sentinel", False)}


def test_retained_status_survives_a_broker_restart(secure_broker: Broker, peers) -> None:
    """The shipped persistence settings keep each device's retained availability."""
    dev_a = peers("dev-a")
    assert not dev_a.connect().is_failure
    assert not dev_a.publish("footfall/v1/site-1/dev-a/status", b"online", retain=True).is_failure
    dev_a.close()
    secure_broker.stop()
    assert (secure_broker.workdir / "mosquitto.db").exists(), "no persistence file after a clean stop"
    secure_broker.start()
    index = reader(peers)
    got = index.wait_message(b"online")
    assert [(m.topic, bool(m.retain)) for m in got] == [("footfall/v1/site-1/dev-a/status", True)]


# --- broker/add-device.sh ----------------------------------------------------------------

def add_device(broker: Broker, *args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ADD_DEVICE), *args, "--passwd", str(broker.passwd_path),
                           "--acl", str(broker.acl_path)], input=stdin, capture_output=True, text=True,
                          env=env, timeout=30)


def connect_eventually(peers, username: str, password: str, timeout: float = 10.0) -> Peer:
    """After SIGHUP Mosquitto reloads asynchronously: retry until the new password works."""
    deadline = time.monotonic() + timeout
    while True:
        peer = peers(username, password)
        if not peer.connect().is_failure:
            return peer
        if time.monotonic() > deadline:
            raise AssertionError(f"{username} still refused {timeout}s after reload")
        time.sleep(0.1)


def test_device_added_with_the_script_works_and_is_confined(secure_broker: Broker, peers) -> None:
    done = add_device(secure_broker, "dev-new")
    assert done.returncode == 0, done.stderr
    password = done.stdout.strip()
    assert len(password) == 32 and "\n" not in password, "prints the generated password once, alone"
    assert password not in done.stderr
    secure_broker.reload()
    index = reader(peers)
    dev = connect_eventually(peers, "dev-new", password)
    assert not dev.publish("footfall/v1/site-9/dev-new/bins", b"new-device").is_failure
    index.wait_message(b"new-device")
    assert dev.publish("footfall/v1/site-1/dev-a/bins", b"forged").value == NOT_AUTHORIZED


def test_the_script_is_idempotent_and_rotates(secure_broker: Broker, peers) -> None:
    first = add_device(secure_broker, "dev-rot")
    assert first.returncode == 0, first.stderr
    before = hashlib.sha256(secure_broker.passwd_path.read_bytes()).hexdigest()
    again = add_device(secure_broker, "dev-rot")
    assert again.returncode == 0 and again.stdout == "", "a second run prints no new password"
    assert "nothing changed" in again.stderr
    assert hashlib.sha256(secure_broker.passwd_path.read_bytes()).hexdigest() == before
    assert secure_broker.passwd_path.read_text().count("dev-rot:") == 1

    rotated = add_device(secure_broker, "dev-rot", "--rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_password = rotated.stdout.strip()
    assert new_password != first.stdout.strip()
    secure_broker.reload()
    connect_eventually(peers, "dev-rot", new_password)
    assert peers("dev-rot", first.stdout.strip()).connect().is_failure, "old password still works"

    # A connected device whose password changed is cut off at the next reload.
    live = connect_eventually(peers, "dev-rot", new_password)
    chosen = add_device(secure_broker, "dev-rot", "--password-stdin", stdin="a-chosen-long-password\n")
    assert chosen.returncode == 0 and chosen.stdout == "", chosen.stderr
    secure_broker.reload()
    assert live.disconnected.wait(10), "a connection with the replaced password survived the reload"
    connect_eventually(peers, "dev-rot", "a-chosen-long-password")


def test_revoking_a_device_disconnects_it_at_reload(secure_broker: Broker, peers) -> None:
    dev_b = peers("dev-b")
    assert not dev_b.connect().is_failure
    subprocess.run(["mosquitto_passwd", "-D", str(secure_broker.passwd_path), "dev-b"], check=True)
    secure_broker.reload()
    assert dev_b.disconnected.wait(10), "revoked device still connected after reload"
    assert peers("dev-b").connect().is_failure


@pytest.mark.parametrize("bad_id", ["", "a/b", "dev+", "dev#", ".dev", "_dev", "dev id", "dév", "x" * 65, "a:b"])
def test_the_script_rejects_ids_that_would_break_the_acl(secure_broker: Broker, bad_id: str) -> None:
    before = secure_broker.passwd_path.read_bytes()
    done = add_device(secure_broker, bad_id)
    assert done.returncode == 1
    assert "device id" in done.stderr or "DEVICE_ID" in done.stderr
    assert secure_broker.passwd_path.read_bytes() == before


def test_the_script_refuses_a_consumer_name_and_a_wrong_acl(secure_broker: Broker, tmp_path: Path) -> None:
    done = add_device(secure_broker, "index")
    assert done.returncode == 1 and "consumer" in done.stderr
    bad_acl = tmp_path / "acl"
    bad_acl.write_text("user index\ntopic read footfall/v1/#\n")
    done = subprocess.run(["bash", str(ADD_DEVICE), "dev-x", "--passwd", str(tmp_path / "p"), "--acl", str(bad_acl)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "pattern write footfall/v1/+/%u/#" in done.stderr
    assert not (tmp_path / "p").exists()


def test_the_script_says_when_mosquitto_passwd_is_missing(secure_broker: Broker, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "grep", "sed", "head", "base64", "tr", "getent", "id", "chgrp", "chmod"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    done = add_device(secure_broker, "dev-x", env={**os.environ, "PATH": str(bin_dir)})
    assert done.returncode == 2
    assert "mosquitto_passwd not found" in done.stderr and "apt-get install mosquitto" in done.stderr


# --- the shipped mosquitto.conf ---------------------------------------------------------

def test_shipped_config_starts_and_listens_without_warnings(tmp_path: Path) -> None:
    """`mosquitto -c` on a copy of broker/mosquitto.conf with test certs and paths: it
    parses, opens its TLS listener and logs no warning about any of our directives."""
    tls = make_test_pki(tmp_path / "pki")
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    acl = tmp_path / "acl"
    shutil.copyfile(REPO_ROOT / "broker" / "acl", acl)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(render_shipped_config(port=port, tls=tls, password_file=passwd, acl_file=acl, workdir=tmp_path))
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 10
        log = tmp_path / "mosquitto.log"
        while f"listen socket on port {port}" not in (log.read_text() if log.exists() else ""):
            assert proc.poll() is None, f"mosquitto exited: {proc.stdout.read()}"
            assert time.monotonic() < deadline, "no listener within 10 s"
            time.sleep(0.05)
        startup_log = log.read_text()
        # one TLS listener and nothing else (a listener option above `listener` opens a plain 1883)
        sockets = [line for line in startup_log.splitlines() if "listen socket" in line]
        assert sockets and all(f"port {port}." in line for line in sockets), sockets
        ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as tls_sock:
            assert tls_sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    # Only start-up lines: a client hanging up mid-TLS later is logged as an OpenSSL error.
    text = out + startup_log
    complaints = [line for line in text.splitlines()
                  if ("Warning" in line or "Error" in line or "Note:" in line) and "run as root" not in line]
    assert complaints == [], complaints
