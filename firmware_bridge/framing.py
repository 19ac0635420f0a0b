"""Frames on the wire: COBS-encoded ``payload + CRC-32`` terminated by a zero byte.

COBS removes every zero from the frame, so a zero always means "frame ends here": a
reader that starts mid-stream or meets garbage loses at most the frame it is in and is
back in step at the next zero. CRC-32 (IEEE, as zlib; ``binascii.crc32`` is C) rather
than CRC-16 because at 1% byte corruption a CRC-16 lets about one corrupted frame in
65,536 through, which over a busy day is a wrong event in the journal; CRC-32 makes that
about one in four billion. Pure: bytes in, payloads and counters out.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

DELIMITER = b"\x00"
MAX_PAYLOAD = 240  # longest payload any message may have; bigger frames are garbage
MAX_ENCODED = MAX_PAYLOAD + 4 + 2 + 1  # payload + CRC + COBS overhead for <254 bytes
_CRC = struct.Struct("<I")


class FrameError(ValueError):
    """A frame that cannot be decoded (bad COBS, bad CRC, wrong length)."""


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing (canonical form, no trailing 0x01 after a
    final full block): the result holds no zero byte."""
    out = bytearray()
    blocks = data.split(b"\x00")
    last = len(blocks) - 1
    for i, block in enumerate(blocks):
        while len(block) >= 254:
            out += b"\xff"
            out += block[:254]
            block = block[254:]
            if i == last and not block:
                return bytes(out)
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of `cobs_encode`; raises FrameError on a zero byte or a truncated block."""
    out = bytearray()
    i, n = 0, len(data)
    if n == 0:
        raise FrameError("empty COBS frame")
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("zero byte inside a COBS frame")
        j = i + code
        if j > n:
            raise FrameError("truncated COBS block")
        block = data[i + 1 : j]
        if 0 in block:
            raise FrameError("zero byte inside a COBS frame")
        out += block
        if code < 0xFF and j < n:
            out.append(0)
        i = j
    return bytes(out)


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC (the zlib one): init 0xFFFFFFFF, reflected, xorout 0xFFFFFFFF."""
    return binascii.crc32(data) & 0xFFFFFFFF


def encode_frame(payload: bytes) -> bytes:
    """Payload -> bytes to write on the wire (ends with the delimiter)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return cobs_encode(payload + _CRC.pack(crc32(payload))) + DELIMITER


def decode_frame(encoded: bytes) -> bytes:
    """One frame's bytes between delimiters -> payload, or FrameError."""
    if len(encoded) > MAX_ENCODED:
        raise FrameError(f"frame of {len(encoded)} bytes is longer than any message")
    raw = cobs_decode(encoded)
    if len(raw) < 5:
        raise FrameError("frame too short for a CRC")
    payload, (crc,) = raw[:-4], _CRC.unpack(raw[-4:])
    if crc32(payload) != crc:
        raise FrameError("CRC mismatch")
    return payload


@dataclass
class FramerStats:
    """What the byte stream looked like; the link exposes these to `ir monitor`."""

    bytes_in: int = 0
    frames_ok: int = 0
    bad_frames: int = 0  # COBS or CRC failures
    oversized: int = 0  # runs of bytes with no delimiter longer than any frame


class FrameSplitter:
    """Turns a byte stream (arbitrary chunks) into CRC-checked payloads.

    Keeps the partial frame between calls; a run longer than any legal frame is
    dropped up to the next delimiter, so garbage never grows memory.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False
        self.stats = FramerStats()

    def feed(self, data: bytes) -> list[bytes]:
        self.stats.bytes_in += len(data)
        payloads: list[bytes] = []
        if not data:
            return payloads
        self._buf += data
        if DELIMITER not in data:
            if len(self._buf) > MAX_ENCODED:
                self.stats.oversized += 1 if not self._skipping else 0
                self._skipping = True
                self._buf.clear()
            return payloads
        parts = bytes(self._buf).split(DELIMITER)
        self._buf = bytearray(parts.pop())
        for part in parts:
            if self._skipping:
                self._skipping = False  # the tail of an oversized run: drop it
                continue
            if not part:
                continue  # back-to-back delimiters are idle filler
            try:
                payloads.append(decode_frame(part))
            except FrameError:
                self.stats.bad_frames += 1
                continue
            self.stats.frames_ok += 1
        if len(self._buf) > MAX_ENCODED:
            self.stats.oversized += 1
            self._skipping = True
            self._buf.clear()
        return payloads
