"""Typed protocol messages and their binary layout (see PROTOCOL.md).

Every payload starts with ``version:u8 type:u8``; all integers are little-endian. A
decoder accepts only the exact length of a fixed message (or the exact length implied
by a count field), and range-checks enumerated fields, so a payload is either one
well-formed message or a `MessageError`. Pure: bytes in, dataclasses out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar, Union

from firmware_bridge.framing import MAX_PAYLOAD, FrameSplitter, decode_frame, encode_frame

PROTOCOL_VERSION = 1  # the layout version in every payload (PROTOCOL.md, "Versioning")
PROTOCOL_MINOR = 1  # 1.1 added RETAINED; a 1.0 board never sends it (the host copes, PROTOCOL.md)
MAX_BEAMS = 16
MAX_BOARD_US = 2**53  # a board stamp at or above this (285 years of uptime) is out of range

# message type codes: 0x0_ from the microcontroller, 0x8_ from the host
HELLO = 0x01
BEAM_EVENT = 0x02
HEARTBEAT = 0x03
RATING = 0x04
CONFIG_VALUE = 0x05
ERROR = 0x06
RETAINED = 0x07  # 1.1: "I freed what you ask for; my oldest retained seq is ..."
ACK = 0x81
RESUME = 0x82
HELLO_REQUEST = 0x83
CONFIG_GET = 0x84
CONFIG_SET = 0x85

EDGE_CLEAR = 0  # beam restored (light received again)
EDGE_BREAK = 1  # beam interrupted
ROLE_A = 0
ROLE_B = 1

# config keys (CONFIG_GET / CONFIG_SET / CONFIG_VALUE)
CFG_DEBOUNCE_US = 1
CFG_HEARTBEAT_MS = 2
CFG_RETRANSMIT_MS = 3
CFG_INVERT_MASK = 4
CFG_KEY_DEBOUNCE_US = 5  # keypad buttons: a press must hold this long (default 20 ms)
CFG_STATUS_OK, CFG_STATUS_UNKNOWN_KEY, CFG_STATUS_OUT_OF_RANGE, CFG_STATUS_READ_ONLY = 0, 1, 2, 3

# error codes (ERROR, either direction)
ERR_BAD_FRAME = 1
ERR_UNKNOWN_TYPE = 2
ERR_BAD_VERSION = 3
ERR_RING_OVERFLOW = 4
ERR_BAD_EPOCH = 5

_HEAD = struct.Struct("<BB")


class MessageError(ValueError):
    """A CRC-valid payload that is not a well-formed message of this protocol version."""


class VersionMismatch(MessageError):
    """A CRC-valid payload of another protocol version (counted apart: a firmware mix-up)."""


class UnknownMessage(MessageError):
    """A well-framed payload of a type this version does not know (forward compatible:
    count and ignore)."""


@dataclass(frozen=True, slots=True)
class Beam:
    """One beam of the door's layout: which pair it belongs to and whether it is the
    A (outer) or B (inner) beam of that pair."""

    pair: int
    role: int  # ROLE_A or ROLE_B


@dataclass(frozen=True, slots=True)
class Hello:
    fw_major: int
    fw_minor: int
    fw_patch: int
    epoch: int  # boot counter kept in EEPROM: a new value after every reset
    ring_capacity: int
    beams: tuple[Beam, ...]
    TYPE: ClassVar[int] = HELLO


@dataclass(frozen=True, slots=True)
class BeamEvent:
    epoch: int
    seq: int  # u32, starts at 1 in each epoch; shared with RATING
    beam: int
    edge: int  # EDGE_BREAK or EDGE_CLEAR
    t_us: int  # microseconds since the microcontroller booted (u64, never wraps)
    TYPE: ClassVar[int] = BEAM_EVENT


@dataclass(frozen=True, slots=True)
class Heartbeat:
    epoch: int
    t_us: int
    last_seq: int  # highest sequence emitted so far in this epoch (0: none)
    acked_seq: int  # highest sequence the host has acknowledged
    overflow: int  # events the ring had no room for (lost on the board) since boot
    states: int  # bit i set: beam i is broken now
    counters: tuple[int, ...] = field(default=())  # cumulative edges per beam since boot
    TYPE: ClassVar[int] = HEARTBEAT


@dataclass(frozen=True, slots=True)
class Rating:
    """A service-rating keypad press: button `level` (1 = worst .. the keypad's number of
    buttons = best) of keypad `keypad`. Same seq space and ring as beam events, so it gets
    the same exactly-once delivery; every debounced press is sent (the host flags repeats)."""

    epoch: int
    seq: int
    keypad: int
    level: int  # 1..5
    t_us: int
    TYPE: ClassVar[int] = RATING


@dataclass(frozen=True, slots=True)
class ConfigValue:
    key: int
    value: int
    status: int
    TYPE: ClassVar[int] = CONFIG_VALUE


@dataclass(frozen=True, slots=True)
class Error:
    code: int
    detail: int
    TYPE: ClassVar[int] = ERROR


@dataclass(frozen=True, slots=True)
class Retained:
    """Board (1.1): answer to a RESUME below what it has freed. Events of `epoch` below
    `oldest_seq` were acknowledged (by an earlier host) and are gone from its ring; it
    sends from `oldest_seq` on. The host starts there and reports the gap."""

    epoch: int
    oldest_seq: int  # >= 1: the board's acked_seq + 1
    TYPE: ClassVar[int] = RETAINED


@dataclass(frozen=True, slots=True)
class Ack:
    """Host: every event of `epoch` up to and including `seq` is committed."""

    epoch: int
    seq: int
    TYPE: ClassVar[int] = ACK


@dataclass(frozen=True, slots=True)
class Resume:
    """Host: events of `epoch` below `from_seq` are committed; (re)send from there."""

    epoch: int
    from_seq: int
    TYPE: ClassVar[int] = RESUME


@dataclass(frozen=True, slots=True)
class HelloRequest:
    TYPE: ClassVar[int] = HELLO_REQUEST


@dataclass(frozen=True, slots=True)
class ConfigGet:
    key: int
    TYPE: ClassVar[int] = CONFIG_GET


@dataclass(frozen=True, slots=True)
class ConfigSet:
    key: int
    value: int
    TYPE: ClassVar[int] = CONFIG_SET


Message = Union[
    Hello, BeamEvent, Heartbeat, Rating, ConfigValue, Error, Retained,
    Ack, Resume, HelloRequest, ConfigGet, ConfigSet,
]

_FIXED: dict[int, tuple[struct.Struct, type]] = {
    BEAM_EVENT: (struct.Struct("<IIBBQ"), BeamEvent),
    RATING: (struct.Struct("<IIBBQ"), Rating),
    CONFIG_VALUE: (struct.Struct("<BIB"), ConfigValue),
    ERROR: (struct.Struct("<BI"), Error),
    RETAINED: (struct.Struct("<II"), Retained),
    ACK: (struct.Struct("<II"), Ack),
    RESUME: (struct.Struct("<II"), Resume),
    HELLO_REQUEST: (struct.Struct("<"), HelloRequest),
    CONFIG_GET: (struct.Struct("<B"), ConfigGet),
    CONFIG_SET: (struct.Struct("<BI"), ConfigSet),
}
_HELLO = struct.Struct("<BBBIHB")
_HEARTBEAT = struct.Struct("<IQIIIHB")


def encode(msg: Message) -> bytes:
    """Message -> payload (version, type, fields); raises ValueError on out-of-range fields."""
    head = _HEAD.pack(PROTOCOL_VERSION, msg.TYPE)
    try:
        if isinstance(msg, Hello):
            body = _HELLO.pack(msg.fw_major, msg.fw_minor, msg.fw_patch, msg.epoch,
                               msg.ring_capacity, len(msg.beams))
            body += b"".join(struct.pack("<BB", b.pair, b.role) for b in msg.beams)
        elif isinstance(msg, Heartbeat):
            body = _HEARTBEAT.pack(msg.epoch, msg.t_us, msg.last_seq, msg.acked_seq,
                                   msg.overflow, msg.states, len(msg.counters))
            body += struct.pack(f"<{len(msg.counters)}I", *msg.counters)
        else:
            fmt, _ = _FIXED[msg.TYPE]
            body = fmt.pack(*(getattr(msg, f) for f in msg.__slots__))
    except struct.error as exc:
        raise ValueError(f"{type(msg).__name__}: field out of range: {exc}") from exc
    payload = head + body
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"{type(msg).__name__} too long for a frame")
    _validate(msg)
    return payload


def decode(payload: bytes) -> Message:
    """Payload -> Message; MessageError if malformed, UnknownMessage if type unknown."""
    if len(payload) < 2:
        raise MessageError("payload shorter than its header")
    version, mtype = payload[0], payload[1]
    if version != PROTOCOL_VERSION:
        raise VersionMismatch(f"protocol version {version}, this host speaks {PROTOCOL_VERSION}")
    body = payload[2:]
    if mtype == HELLO:
        if len(body) < _HELLO.size:
            raise MessageError("short HELLO")
        *head, n = _HELLO.unpack_from(body)
        if n > MAX_BEAMS or len(body) != _HELLO.size + 2 * n:
            raise MessageError("HELLO length does not match its beam count")
        pairs = body[_HELLO.size:]
        msg: Message = Hello(*head, beams=tuple(Beam(pairs[2 * i], pairs[2 * i + 1]) for i in range(n)))
    elif mtype == HEARTBEAT:
        if len(body) < _HEARTBEAT.size:
            raise MessageError("short HEARTBEAT")
        *head, n = _HEARTBEAT.unpack_from(body)
        if n > MAX_BEAMS or len(body) != _HEARTBEAT.size + 4 * n:
            raise MessageError("HEARTBEAT length does not match its beam count")
        msg = Heartbeat(*head, counters=struct.unpack_from(f"<{n}I", body, _HEARTBEAT.size))
    elif mtype in _FIXED:
        fmt, cls = _FIXED[mtype]
        if len(body) != fmt.size:
            raise MessageError(f"{cls.__name__} must have {fmt.size} body bytes, not {len(body)}")
        msg = cls(*fmt.unpack(body))
    else:
        raise UnknownMessage(f"unknown message type 0x{mtype:02x}")
    _validate(msg)
    return msg


def _validate(msg: Message) -> None:
    """The ranges of PROTOCOL.md that one message shows on its own (those that need the
    board's HELLO or previous heartbeat are the link's: firmware_bridge/link.py)."""
    if isinstance(msg, BeamEvent):
        if msg.edge not in (EDGE_CLEAR, EDGE_BREAK):
            raise MessageError(f"edge must be 0 or 1, not {msg.edge}")
        if msg.beam >= MAX_BEAMS or msg.seq == 0:
            raise MessageError("beam id or sequence out of range")
    elif isinstance(msg, Rating):
        if not 1 <= msg.level <= 5 or msg.seq == 0:
            raise MessageError("rating level must be 1..5 and seq >= 1")
    elif isinstance(msg, Hello):
        if any(b.role not in (ROLE_A, ROLE_B) for b in msg.beams):
            raise MessageError("beam role must be 0 (A) or 1 (B)")
    elif isinstance(msg, Heartbeat):
        if msg.states >> len(msg.counters):
            raise MessageError("heartbeat states name a beam it has no counter for")
        if msg.acked_seq > msg.last_seq:
            raise MessageError("heartbeat acked_seq above last_seq")
        if msg.t_us >= MAX_BOARD_US:
            raise MessageError(f"heartbeat t_us {msg.t_us} is no board's uptime")
    elif isinstance(msg, (Retained, Resume)):
        if (msg.oldest_seq if isinstance(msg, Retained) else msg.from_seq) == 0:
            raise MessageError("sequences start at 1")


def to_frame(msg: Message) -> bytes:
    """Message -> wire bytes."""
    return encode_frame(encode(msg))


def from_frame(encoded: bytes) -> Message:
    """Wire bytes of one frame (without the delimiter) -> Message."""
    return decode(decode_frame(encoded))


class MessageReader:
    """Byte stream -> well-formed messages; everything else is counted and dropped.

    The one parser the link, the simulator and the fuzz tests share: it never raises on
    input bytes, whatever they are.
    """

    def __init__(self) -> None:
        self.splitter = FrameSplitter()
        self.malformed = 0
        self.unknown = 0
        self.version = 0  # CRC-valid frames of another protocol version

    def feed(self, data: bytes) -> list[Message]:
        out: list[Message] = []
        for payload in self.splitter.feed(data):
            try:
                out.append(decode(payload))
            except UnknownMessage:
                self.unknown += 1
            except VersionMismatch:
                self.version += 1
            except MessageError:
                self.malformed += 1
        return out
