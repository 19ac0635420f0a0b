"""The firmware's protocol code, built with the host's gcc, against vectors.json."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from firmware_bridge.vectors import load

FW = Path(__file__).resolve().parents[1] / "firmware_bridge" / "firmware"
VECTORS = load()
HOST_KINDS = {"Ack": 0x81, "Resume": 0x82, "HelloRequest": 0x83, "ConfigGet": 0x84, "ConfigSet": 0x85}


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    from conftest import require_tool

    gcc = require_tool("gcc", "gcc")  # absent: fails with the install hint
    out = tmp_path_factory.mktemp("fw") / "test_protocol"
    subprocess.run([gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-o", str(out),
                    str(FW / "test_protocol.c"), str(FW / "protocol.c"), str(FW / "door.c")],
                   check=True)
    return out


def _ints(vec: dict) -> list[int]:
    out: list[int] = []
    for key, value in vec["fields"].items():
        if key == "beams":
            out.append(len(value))
            out += [x for pair in value for x in pair]
        elif key == "counters":
            out.append(len(value))
            out += value
        else:
            out.append(value)
    return out


def test_firmware_encodes_every_vector(binary):
    lines = [f"E {v['kind']} " + " ".join(map(str, _ints(v))) for v in VECTORS["messages"]]
    res = subprocess.run([str(binary), "vectors"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, check=True)
    got = res.stdout.split()
    assert len(got) == len(VECTORS["messages"])
    for vec, frame in zip(VECTORS["messages"], got):
        assert frame == vec["frame"], vec["name"]


def test_firmware_decodes_host_vectors_and_rejects_bad_frames(binary):
    host = [v for v in VECTORS["messages"] if v["kind"] in HOST_KINDS]
    bad = [b for b in VECTORS["bad_frames"] if b["name"] in ("crc_bit_flip", "truncated", "wrong_version")]
    lines = [f"D {v['frame']}" for v in host] + [f"D {b['frame']}" for b in bad]
    res = subprocess.run([str(binary), "vectors"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, check=True)
    out = res.stdout.strip().splitlines()
    for vec, line in zip(host, out):
        f = vec["fields"]
        epoch = f.get("epoch", 0)
        seq = f.get("seq", f.get("from_seq", 0))
        want = f"{HOST_KINDS[vec['kind']]} {epoch} {seq} {f.get('key', 0)} {f.get('value', 0)}"
        assert line == want, vec["name"]
    assert out[len(host):] == ["error -1", "error -1", "error -2"]


def test_firmware_door_logic(binary):
    res = subprocess.run([str(binary), "door"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stdout
