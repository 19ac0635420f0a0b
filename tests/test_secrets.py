"""Secrets never leave the device (issue 11): a camera URL with `user:password@` and an
inline broker password go through `footfall run` against the shipped TLS/ACL broker, a
camera that cannot be reached (its error names the URL), alarms, status.json, the journal,
the log, and `footfall config show`; the secret appears in none of them. The birth
message's config_hash does not depend on the secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge import config
from edge.secrets import mask_text
from harness import wait_for
from hostile_rig import PREFIX, secure_toml
from simulator.local_broker import SECURE_USERS
from test_broker_security import Peer

CAMERA_SECRET = "s3cr3t-Cam-pw"
CAMERA = f"rtsp://admin:{CAMERA_SECRET}@127.0.0.1:9/stream?token=tok-{CAMERA_SECRET}"
BROKER_SECRET = SECURE_USERS["dev-a"]
CAMERA_TOML = f"""
[camera]
enabled = true
source = "{CAMERA}"

[[camera.lines]]
name = "cam-1"
p1 = [0.0, 0.5]
p2 = [1.0, 0.5]
inside = [0.5, 1.0]
units = "fraction"
"""


def footfall(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=60, **kw)


def test_mask_text_masks_url_passwords_and_secret_query_values():
    assert mask_text(CAMERA) == "rtsp://admin:********@127.0.0.1:9/stream?token=********"
    assert mask_text("mqtts://u:p@h:8883 and http://host/x?a=1&password=pw#f") == \
        "mqtts://u:********@h:8883 and http://host/x?a=1&password=********#f"
    assert mask_text("/dev/video0") == "/dev/video0" and mask_text("rtsp://host/x") == "rtsp://host/x"


def test_config_hash_is_over_the_configuration_without_secrets(secure_broker, tmp_path):
    base = secure_toml(tmp_path, secure_broker, extra=CAMERA_TOML, password_inline=True).read_text()
    other = base.replace(BROKER_SECRET, "another-password").replace(CAMERA_SECRET, "another-camera-pw")
    moved = base.replace("127.0.0.1:9/stream", "10.0.0.7:554/stream")
    a, b, c = (config.parse(t).digest() for t in (base, other, moved))
    assert a == b, "changing only a secret changes nothing in the hash"
    assert a != c, "the hash still sees the rest of the configuration"


def test_no_output_of_a_running_agent_holds_a_secret(secure_broker, tmp_path):
    cfg_path = secure_toml(tmp_path, secure_broker, extra=CAMERA_TOML, password_inline=True)
    cfg = config.load(cfg_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    shown = footfall("--config", str(cfg_path), "config", "show", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "rtsp://admin:********@127.0.0.1:9" in shown.stdout

    index = Peer(secure_broker, "index", SECURE_USERS["index"])
    assert not index.connect().is_failure
    index.subscribe(f"{PREFIX}/#")
    log_path = tmp_path / "agent.log"
    with open(log_path, "w") as log:
        agent = subprocess.Popen([sys.executable, "-m", "edge.cli", "--config", str(cfg_path), "run", "--log-level", "DEBUG"],
                                 stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        def camera_alarm() -> bool:
            return any(m.topic.endswith("/alarm") and json.loads(m.payload)["component"] == "camera" for m in list(index.messages))

        wait_for(camera_alarm, timeout=60, what="the camera's alarm at the index")
        wait_for(lambda: cfg.storage.status_path.exists() and
                 "camera" in json.loads(cfg.storage.status_path.read_text())["health"], timeout=20, what="status.json")
        alarm = next(json.loads(m.payload) for m in index.messages if m.topic.endswith("/alarm")
                     and json.loads(m.payload)["component"] == "camera")
        assert "rtsp://admin:********@127.0.0.1:9" in alarm["detail"], alarm
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        index.close()
    births = [json.loads(m.payload) for m in index.messages if m.topic.endswith("/birth")]
    assert births and births[0]["config_hash"] == cfg.digest()
    outputs = {
        "config show": shown.stdout + shown.stderr,
        "log": log_path.read_text(),
        "status.json": cfg.storage.status_path.read_text(),
        "broker messages": "\n".join(m.payload.decode(errors="replace") for m in index.messages),
    }
    for f in cfg.storage.state_dir.iterdir():  # the journal, its WAL, anything else written there
        outputs[f.name] = f.read_bytes().decode("latin-1")
    assert "127.0.0.1:9" in outputs["log"], "the log does talk about the camera"
    for name, text in outputs.items():
        for secret in (CAMERA_SECRET, BROKER_SECRET):
            assert secret not in text, f"{secret!r} leaked into {name}"


def test_the_agents_log_handlers_mask_what_any_module_logs(capfd):
    """`footfall run` puts the masking filter on the root handlers: a secret in any module's
    message, argument or traceback comes out masked."""
    import logging

    from edge.secrets import mask_logs

    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    try:
        mask_logs()
        log = logging.getLogger("edge.camera_pipeline")
        log.warning("cannot open %s", CAMERA)
        try:
            raise OSError(f"refused: {CAMERA}")
        except OSError:
            log.exception("camera lost")
    finally:
        root.removeHandler(handler)
    err = capfd.readouterr().err
    assert "cannot open rtsp://admin:********@127.0.0.1:9" in err and "refused: rtsp://admin:********@" in err
    assert CAMERA_SECRET not in err
