"""Random and mutated frames through the parser the link uses.

Two claims: no exception escapes `MessageReader.feed`, whatever the bytes; and no
corrupted frame is accepted as an event (every event read back is one that was sent).
The volume (>= 1,000,000 frames per CI run) comes from a fast seeded loop; hypothesis
adds shrinking on the same properties. For longer coverage-guided runs see
docs/beams.md ("Fuzzing with atheris").
"""

from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import messages as m

FRAMES_PER_CI_RUN = int(os.environ.get("FOOTFALL_FUZZ_FRAMES", "1000000"))


def _sent_events(rng: random.Random, n: int) -> list[m.BeamEvent]:
    return [m.BeamEvent(rng.randrange(2**32), rng.randrange(1, 2**32), rng.randrange(16),
                        rng.randrange(2), rng.randrange(2**64)) for _ in range(n)]


def _mutate(rng: random.Random, data: bytearray) -> None:
    for _ in range(rng.randrange(1, 4)):
        op = rng.randrange(6)
        if not data:
            data += bytes([rng.randrange(256)])
        i = rng.randrange(len(data))
        if op == 0:
            data[i] ^= 1 << rng.randrange(8)  # bit flip
        elif op == 1:
            data[i] = rng.randrange(256)  # byte replaced
        elif op == 2:
            del data[i : i + rng.randrange(1, 6)]  # bytes lost
        elif op == 3:
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
        elif op == 4:
            data[i] = 0  # spurious delimiter
        else:
            j = rng.randrange(len(data))
            data[i:i] = data[j : j + rng.randrange(1, 30)]  # duplicated chunk


def test_a_million_random_and_mutated_frames():
    rng = random.Random(20261124)
    reader = m.MessageReader()
    frames_fed = 0
    accepted = 0
    batch = 500
    while frames_fed < FRAMES_PER_CI_RUN:
        sent = _sent_events(rng, batch // 2)
        known = set(sent)
        stream = bytearray()
        for ev in sent:  # half mutated valid frames
            f = bytearray(m.to_frame(ev))
            if rng.random() < 0.9:
                _mutate(rng, f)
            stream += f
        for _ in range(batch // 2):  # half random byte runs
            stream += rng.randbytes(rng.randrange(1, 40))
            if rng.random() < 0.7:
                stream.append(0)
        pos = 0
        while pos < len(stream):  # arbitrary chunking, as serial reads come
            step = rng.randrange(1, 300)
            for msg in reader.feed(bytes(stream[pos : pos + step])):
                if isinstance(msg, m.BeamEvent):
                    assert msg in known, f"corrupted frame accepted as event: {msg}"
                    accepted += 1
            pos += step
        frames_fed += batch
    assert frames_fed >= FRAMES_PER_CI_RUN
    assert accepted > 0  # the untouched 10% got through: the loop is not vacuous
    assert reader.splitter.stats.bad_frames > frames_fed // 4


_event = st.builds(m.BeamEvent, st.integers(0, 2**32 - 1), st.integers(1, 2**32 - 1),
                   st.integers(0, 15), st.integers(0, 1), st.integers(0, 2**64 - 1))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_event, min_size=1, max_size=8), noise=st.binary(max_size=64),
       cut=st.integers(0, 400), flip=st.integers(0, 4000))
def test_hypothesis_mutated_streams(events, noise, cut, flip):
    stream = bytearray(noise + b"".join(m.to_frame(e) for e in events))
    if stream:
        stream[flip % len(stream)] ^= 1 << (flip % 8)
        del stream[cut % len(stream) : cut % len(stream) + cut % 7]
    reader = m.MessageReader()
    out = reader.feed(bytes(stream[: len(stream) // 2])) + reader.feed(bytes(stream[len(stream) // 2 :]))
    for msg in out:
        if isinstance(msg, m.BeamEvent):
            assert msg in events


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_hypothesis_arbitrary_bytes_never_raise(data):
    m.MessageReader().feed(data)
