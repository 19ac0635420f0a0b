"""The protocol's test vectors (vectors.json), shared by the host tests and the
firmware's C unit test.

The file is the contract: tests check that the codec reproduces every hex string in it,
so a change to the wire format shows up as a failing vector, not as silent drift.
`python -m firmware_bridge.vectors --write` regenerates it after a deliberate change
(bump PROTOCOL_VERSION when the layout changes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from firmware_bridge import messages as m

PATH = Path(__file__).with_name("vectors.json")

_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (m.Hello, m.BeamEvent, m.Heartbeat, m.Rating, m.ConfigValue, m.Error, m.Retained,
                m.Ack, m.Resume, m.HelloRequest, m.ConfigGet, m.ConfigSet)
}

_CASES: list[tuple[str, m.Message]] = [
    ("hello_one_pair", m.Hello(1, 0, 0, 7, 128, (m.Beam(0, m.ROLE_A), m.Beam(0, m.ROLE_B)))),
    ("hello_two_pairs", m.Hello(1, 2, 3, 0xDEADBEEF, 0xFFFF,
                                (m.Beam(0, 0), m.Beam(0, 1), m.Beam(1, 0), m.Beam(1, 1)))),
    ("hello_no_beams", m.Hello(0, 0, 1, 1, 0, ())),
    ("event_break", m.BeamEvent(7, 1, 0, m.EDGE_BREAK, 1_000_000)),
    ("event_clear", m.BeamEvent(7, 2, 1, m.EDGE_CLEAR, 1_003_250)),
    ("event_zeros_in_fields", m.BeamEvent(0, 256, 0, 0, 0)),
    ("event_max", m.BeamEvent(0xFFFFFFFF, 0xFFFFFFFF, 15, 1, 0xFFFFFFFFFFFFFFFF)),
    ("heartbeat_idle", m.Heartbeat(7, 5_000_000, 0, 0, 0, 0, (0, 0))),
    ("heartbeat_busy", m.Heartbeat(7, 86_400_000_000, 40_000, 39_998, 3, 0b01, (20_001, 19_999))),
    ("heartbeat_no_beams", m.Heartbeat(1, 1, 0, 0, 0, 0, ())),
    ("rating", m.Rating(7, 3, 2, 5, 2_000_000)),
    ("rating_bad", m.Rating(7, 4, 0, 1, 2_350_000)),
    ("rating_max", m.Rating(0xFFFFFFFF, 0xFFFFFFFF, 255, 5, 0xFFFFFFFFFFFFFFFF)),
    ("config_value_ok", m.ConfigValue(m.CFG_DEBOUNCE_US, 3000, m.CFG_STATUS_OK)),
    ("config_value_unknown", m.ConfigValue(200, 0, m.CFG_STATUS_UNKNOWN_KEY)),
    ("error_overflow", m.Error(m.ERR_RING_OVERFLOW, 12)),
    ("retained", m.Retained(7, 1601)),
    ("retained_max", m.Retained(0xFFFFFFFF, 0xFFFFFFFF)),
    ("ack", m.Ack(7, 41)),
    ("ack_max", m.Ack(0xFFFFFFFF, 0xFFFFFFFF)),
    ("resume", m.Resume(7, 42)),
    ("resume_from_start", m.Resume(8, 1)),
    ("hello_request", m.HelloRequest()),
    ("config_get", m.ConfigGet(m.CFG_HEARTBEAT_MS)),
    ("config_set", m.ConfigSet(m.CFG_DEBOUNCE_US, 5000)),
    ("config_set_key_debounce", m.ConfigSet(m.CFG_KEY_DEBOUNCE_US, 20000)),
]



def _fields(msg: m.Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(msg):
        v = getattr(msg, f.name)
        if f.name == "beams":
            v = [[b.pair, b.role] for b in v]
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def message_from(kind: str, fields: dict[str, Any]) -> m.Message:
    """Rebuild a message from a vector's `kind` and `fields`."""
    cls = _CLASSES[kind]
    kw = dict(fields)
    if "beams" in kw:
        kw["beams"] = tuple(m.Beam(p, r) for p, r in kw["beams"])
    if "counters" in kw:
        kw["counters"] = tuple(kw["counters"])
    return cls(**kw)


def _patched(msg: m.Message, offset: int, raw: bytes) -> str:
    """`msg`'s frame with payload bytes at `offset` replaced by `raw` (a field value the
    codec refuses to encode), CRC valid, without the delimiter."""
    payload = m.encode(msg)
    return m.encode_frame(payload[:offset] + raw + payload[offset + len(raw):]).hex()[:-2]


def _rating_patched(offset: int, raw: bytes) -> str:
    """A RATING frame with a field patched: level at 11, seq at 6..9."""
    return _patched(m.Rating(7, 5, 0, 1, 1_000_000), offset, raw)


def build() -> dict[str, Any]:
    good = []
    for name, msg in _CASES:
        payload = m.encode(msg)
        good.append({
            "name": name,
            "kind": type(msg).__name__,
            "type": msg.TYPE,
            "fields": _fields(msg),
            "payload": payload.hex(),
            "frame": m.to_frame(msg).hex(),
        })
    ev = bytes.fromhex(next(g["frame"] for g in good if g["name"] == "event_break"))
    body = ev[:-1]
    flipped = bytearray(body)
    flipped[5] ^= 0x04
    bad = [
        {"name": "crc_bit_flip", "frame": flipped.hex(), "why": "one bit flipped: CRC mismatch"},
        {"name": "truncated", "frame": body[:-3].hex(), "why": "last bytes lost: COBS or CRC fails"},
        {"name": "wrong_version", "frame": m.encode_frame(b"\x02" + m.encode(_CASES[3][1])[1:]).hex()[:-2],
         "why": "protocol version 2"},
        {"name": "event_bad_edge", "frame": m.encode_frame(m.encode(_CASES[3][1])[:-9] + b"\x02" + m.encode(_CASES[3][1])[-8:]).hex()[:-2],
         "why": "edge value 2"},
        {"name": "event_too_long", "frame": m.encode_frame(m.encode(_CASES[3][1]) + b"\x00").hex()[:-2],
         "why": "one byte too many for a BEAM_EVENT"},
        {"name": "rating_level_zero", "frame": _rating_patched(11, b"\x00"), "why": "rating level 0 (levels are 1..5)"},
        {"name": "rating_level_six", "frame": _rating_patched(11, b"\x06"), "why": "rating level 6 (levels are 1..5)"},
        {"name": "rating_seq_zero", "frame": _rating_patched(6, bytes(4)), "why": "rating seq 0 (sequences start at 1)"},
        {"name": "heartbeat_t_us_out_of_range", "frame": _patched(m.Heartbeat(7, 1, 0, 0, 0, 0, (0, 0)), 6, (2**64 - 2).to_bytes(8, "little")),
         "why": "heartbeat t_us near 2**64 (no board's uptime; range: below 2**53)"},
        {"name": "heartbeat_acked_above_last", "frame": _patched(m.Heartbeat(7, 1, 5, 5, 0, 0, (0, 0)), 18, (6).to_bytes(4, "little")),
         "why": "heartbeat acked_seq 6 above last_seq 5"},
        {"name": "resume_from_zero", "frame": _patched(m.Resume(7, 1), 6, bytes(4)), "why": "RESUME from seq 0 (sequences start at 1)"},
        {"name": "retained_zero", "frame": _patched(m.Retained(7, 1), 6, bytes(4)), "why": "RETAINED oldest seq 0"},
        {"name": "unknown_type", "frame": m.encode_frame(b"\x01\x7f").hex()[:-2], "why": "type 0x7f"},
    ]
    return {
        "protocol_version": m.PROTOCOL_VERSION,
        "crc": "CRC-32/ISO-HDLC over the payload, appended little-endian, then COBS, then 0x00",
        "messages": good,
        "bad_frames": bad,
    }


def load(path: Path = PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", action="store_true", help="rewrite vectors.json from the codec")
    args = ap.parse_args()
    data = build()
    if args.write:
        PATH.write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote {len(data['messages'])} vectors to {PATH}")
    else:
        print(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
