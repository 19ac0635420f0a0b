"""The codec against the shared test vectors, and the framing's resynchronisation."""

from __future__ import annotations

import pytest

from firmware_bridge import framing
from firmware_bridge import messages as m
from firmware_bridge.vectors import build, load, message_from

VECTORS = load()
GOOD = VECTORS["messages"]


def test_vectors_file_is_what_the_codec_writes():
    assert build() == VECTORS, "vectors.json and the codec disagree: run python -m firmware_bridge.vectors --write only after a deliberate format change"


def test_every_message_type_has_a_vector():
    kinds = {v["kind"] for v in GOOD}
    assert kinds == {"Hello", "BeamEvent", "Heartbeat", "Rating", "ConfigValue", "Error", "Retained",
                     "Ack", "Resume", "HelloRequest", "ConfigGet", "ConfigSet"}


@pytest.mark.parametrize("vec", GOOD, ids=[v["name"] for v in GOOD])
def test_vector_encodes_and_decodes(vec):
    msg = message_from(vec["kind"], vec["fields"])
    assert m.encode(msg).hex() == vec["payload"]
    assert m.to_frame(msg).hex() == vec["frame"]
    frame = bytes.fromhex(vec["frame"])
    assert frame[-1] == 0 and 0 not in frame[:-1]
    assert m.from_frame(frame[:-1]) == msg


@pytest.mark.parametrize("bad", VECTORS["bad_frames"], ids=[b["name"] for b in VECTORS["bad_frames"]])
def test_bad_frames_are_rejected(bad):
    with pytest.raises((framing.FrameError, m.MessageError)):
        m.from_frame(bytes.fromhex(bad["frame"]))


def test_cobs_round_trip_long_and_zero_heavy():
    for data in [b"", b"\x00", b"\x00\x00", bytes(range(1, 255)), bytes(range(256)) * 3,
                 b"\x01" * 254, b"\x01" * 253 + b"\x00", b"\x00" * 600]:
        enc = framing.cobs_encode(data)
        assert 0 not in enc
        assert framing.cobs_decode(enc) == data


def test_cobs_canonical_full_block_has_no_trailing_code():
    assert framing.cobs_encode(b"\x01" * 254) == b"\xff" + b"\x01" * 254


def test_splitter_resyncs_after_garbage_and_across_chunks():
    frames = [m.to_frame(m.BeamEvent(3, s, s % 2, 1, s * 1000)) for s in range(1, 6)]
    stream = b"\x13\x37garbage" + frames[0] + b"\xff" * 20 + frames[1] + frames[2][:7]
    stream2 = frames[2][7:] + frames[3] + frames[4]
    sp = framing.FrameSplitter()
    got = [m.decode(p) for p in sp.feed(stream)]
    # frames 1 and 2 are glued to the garbage before them: lost (the link re-requests
    # them); the reader is back in step at the next delimiter
    assert got == []
    got += [m.decode(p) for chunk in (stream2[:3], stream2[3:]) for p in sp.feed(chunk)]
    assert [e.seq for e in got] == [3, 4, 5]
    assert sp.stats.bad_frames == 2


def test_splitter_drops_oversized_runs_without_growing():
    sp = framing.FrameSplitter()
    for _ in range(100):
        assert sp.feed(b"\x01" * 1000) == []
    assert len(sp._buf) <= framing.MAX_ENCODED
    ev = m.BeamEvent(1, 9, 0, 0, 5)
    out = sp.feed(b"\x00" + m.to_frame(ev))
    assert [m.decode(p) for p in out] == [ev]
    assert sp.stats.oversized == 1


def test_encode_refuses_out_of_range_fields():
    with pytest.raises(ValueError):
        m.encode(m.BeamEvent(1, 2**32, 0, 1, 0))
    with pytest.raises(ValueError):
        m.encode(m.BeamEvent(1, 1, 0, 3, 0))


def test_unknown_type_is_distinguishable():
    with pytest.raises(m.UnknownMessage):
        m.decode(b"\x01\x7f")
