"""The host end of the door link: one thread per serial port, in the spirit of
pyserial's `serial.threaded` (a reader loop that hands parsed packets to a protocol
object), with the delivery rules this project needs.

- Events are handed to `LinkHandler.commit` in sequence order, one batch per read; the
  ACK goes out only after `commit` returns (the handler returns once the journal has
  the batch on disk). A power cut or a SIGKILL between the two at worst re-sends
  events the journal already has; its uniqueness drops them.
- The host commits strictly in sequence (the board runs go-back-N). A gap (a frame
  lost to corruption) is answered with RESUME from the first missing sequence; events
  after the gap wait in memory, unacknowledged, and are committed with the missing one
  when it comes; duplicates are answered with a fresh ACK.
- On every (re)open the host asks for HELLO and answers with RESUME(epoch, first seq
  the journal lacks), so an unplug, an agent restart or a lost ack loses nothing.
- A HELLO with a new epoch means the board rebooted: whatever of the old epoch it had
  not yet delivered is gone with its RAM. The handler reconciles that against the last
  heartbeat's sequence and counters and reports the loss; the link never hides it.
- A board that freed events this journal lacks (an earlier host acknowledged them:
  a wiped state directory, `ir walk-test` after the agent) answers RESUME with
  RETAINED (1.1), or shows it in its heartbeat's `acked_seq` (1.0): the host starts at
  the board's oldest retained seq and reports the gap (`on_skipped`). RESUMEs are
  rate-limited, so a board that rewinds on every RESUME cannot make the host flood it.
- Silence: after a quarter of `heartbeat_timeout_s` the host probes with CONFIG_GET
  (a valid answer is life); link-down health only after the whole timeout (several
  heartbeats and probes lost, which 1% corruption does not do); the port is reopened
  only after four timeouts or a read error (cable pulled), with exponential backoff.
- Frame statistics (CRC failures, malformed, unknown type, other version, out-of-range
  fields) are counted per link across reopens and carried in the health detail, which
  is refreshed while it changes (at most once a second), not only on up/down.

Never imports `edge`: the handler is the only contact with the rest of the agent.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Protocol

import serial

from firmware_bridge import messages as m

ClockFn = Callable[[], float]
log = logging.getLogger(__name__)


class LinkHandler(Protocol):
    def resume_point(self, epoch: int) -> int:
        """Highest sequence of `epoch` already committed (0: none)."""

    def on_hello(self, hello: m.Hello) -> None:
        """The board introduced itself (called before RESUME is sent): a new epoch is a reset."""

    def commit(self, epoch: int, events: list[m.BeamEvent | m.Rating]) -> None:
        """Make the events durable; return only when they are (the ACK follows)."""

    def on_heartbeat(self, hb: m.Heartbeat, committed_seq: int) -> None:
        """Beam states and counters; `committed_seq`: what this link has committed."""

    def on_health(self, ok: bool, detail: str) -> None:
        """The link's state: on every up/down change, and while the detail changes (at most
        once a second)."""

    def on_skipped(self, epoch: int, first: int, last: int, why: str) -> None:
        """Events first..last of `epoch` were freed by the board before this journal had
        them (acknowledged by an earlier host): the link starts after them."""


@dataclass
class LinkStats:
    opens: int = 0
    open_failures: int = 0
    disconnects: int = 0
    events_committed: int = 0
    duplicates: int = 0
    gaps: int = 0
    resumes_sent: int = 0
    acks_sent: int = 0
    hellos: int = 0
    resets_seen: int = 0
    heartbeats: int = 0
    foreign_epoch: int = 0
    timeouts: int = 0
    commit_failures: int = 0
    skipped: int = 0  # events the board had freed before this journal had them
    probes: int = 0  # CONFIG_GET sent to a silent board
    hello_requests: int = 0
    out_of_range: int = 0  # CRC-valid events whose beam the board's HELLO does not have
    stale_heartbeats: int = 0  # heartbeats whose board time runs backwards in one epoch


@dataclass(frozen=True)
class FrameCounts:
    """What the byte stream of one link looked like, since the link was created."""

    frames_ok: int
    crc_failures: int  # COBS or CRC failures and oversized runs
    malformed: int  # CRC-valid, wrong length or a field out of range
    unknown_type: int
    version: int  # another protocol version

    def text(self) -> str:
        return (f"frames ok {self.frames_ok}, CRC failures {self.crc_failures}, malformed {self.malformed},"
                f" unknown type {self.unknown_type}, other version {self.version}")


class BeamLink:
    """Owns one serial port; run it with `start()` (a daemon thread) or `run()`."""

    HOLD_MAX = 256  # events after a gap kept in memory until the gap is filled
    RESUME_MIN_S = 0.02  # never more than 50 RESUMEs a second, whatever the board does
    HEALTH_REFRESH_S = 1.0

    def __init__(self, port: str, handler: LinkHandler, *, baudrate: int = 115200,
                 heartbeat_timeout_s: float = 3.0, resume_retry_s: float = 0.1,
                 backoff_s: tuple[float, float] = (0.1, 5.0), monotonic: ClockFn | None = None,
                 serial_factory: Callable[..., serial.Serial] | None = None) -> None:
        import time

        self.port = port
        self.handler = handler
        self.baudrate = baudrate
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.resume_retry_s = resume_retry_s
        self.backoff_min, self.backoff_max = backoff_s
        self.now = monotonic or time.monotonic
        self._serial_factory = serial_factory or self._open_serial
        self.stats = LinkStats()
        self.reader = m.MessageReader()
        self.epoch: int | None = None  # the epoch the board announced on this connection
        self.expected = 1  # next sequence to commit
        self.last_hello: m.Hello | None = None
        self.last_heartbeat: m.Heartbeat | None = None
        self._up: bool | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ser: serial.Serial | None = None
        self._last_valid = 0.0
        self._last_resume = -1e9
        self._resume_for = -1
        self._seen_since_resume = 0
        self._expected_at_hb = -1
        self._held: dict[int, m.BeamEvent | m.Rating] = {}
        self._last_hello_req = -1e9
        self._last_probe = -1e9
        self._health_detail = ""
        self._health_at = -1e9
        self._frames_base = (0, 0, 0, 0, 0)  # counts of readers of earlier connections
        self._seen: tuple[int, int] = (-1, 0)  # (epoch, highest seq seen in its events or heartbeats)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"beam-link {self.port}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def run(self) -> None:
        backoff = self.backoff_min
        while not self._stop.is_set():
            if self._ser is None:
                try:
                    self._open()
                    backoff = self.backoff_min
                except (OSError, serial.SerialException) as exc:
                    self.stats.open_failures += 1
                    self._health(False, f"cannot open {self.port}: {exc}; retrying in {backoff:.1f} s")
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, self.backoff_max)
                    continue
            try:
                self._step()
            except (OSError, serial.SerialException) as exc:
                self.stats.disconnects += 1
                self._health(False, f"{self.port} lost ({exc}); reopening")
                self._close()
            except Exception as exc:  # a handler failure must not end the link thread
                log.exception("beam link %s: unexpected error", self.port)
                self._health(False, f"{self.port}: internal error ({exc!r}); reopening")
                self._close()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max)

    # -- one connection -------------------------------------------------------------------

    @staticmethod
    def _open_serial(port: str, baudrate: int) -> serial.Serial:
        # DTR low from the start: opening with DTR high resets Arduino-class boards
        # (see docs/beams.md for the HUPCL caveat on Linux).
        ser = serial.Serial()
        ser.port, ser.baudrate, ser.timeout = port, baudrate, 0.05
        ser.dtr = False
        ser.open()
        return ser

    def _open(self) -> None:
        self._ser = self._serial_factory(self.port, self.baudrate)
        self.stats.opens += 1
        c = self.frame_counts()
        self._frames_base = (c.frames_ok, c.crc_failures, c.malformed, c.unknown_type, c.version)
        self.reader = m.MessageReader()
        self.epoch = None
        self._held.clear()
        self._last_valid = self.now()
        self._send(m.HelloRequest())
        self.stats.hello_requests += 1
        self._last_hello_req = self.now()

    def _close(self) -> None:
        ser, self._ser = self._ser, None
        if ser is not None:
            try:
                ser.close()
            except (OSError, serial.SerialException):
                pass

    def frame_counts(self) -> FrameCounts:
        """Frame statistics of this link over all its connections."""
        r, f = self.reader, self.reader.splitter.stats
        ok, crc, bad, unk, ver = self._frames_base
        return FrameCounts(ok + f.frames_ok, crc + f.bad_frames + f.oversized,
                           bad + r.malformed + self.stats.out_of_range + self.stats.stale_heartbeats,
                           unk + r.unknown, ver + r.version)

    def _send(self, msg: m.Message) -> None:
        if self._ser is not None:
            self._ser.write(m.to_frame(msg))

    def _step(self) -> None:
        assert self._ser is not None
        data = self._ser.read(max(1, min(self._ser.in_waiting, 65536)))
        now = self.now()
        msgs = self.reader.feed(data) if data else []
        if msgs:
            self._last_valid = now
        batch: list[m.BeamEvent | m.Rating] = []
        ack_due = False
        for msg in msgs:
            if isinstance(msg, (m.BeamEvent, m.Rating)):
                if (isinstance(msg, m.BeamEvent) and self.last_hello is not None and self.last_hello.beams
                        and msg.beam >= len(self.last_hello.beams) and msg.seq >= self.expected):
                    # out of range, but in the sequence: journaled all the same (the decoder
                    # ignores beams outside its pair), so one bad event never stalls the door
                    self.stats.out_of_range += 1
                self._saw(msg.epoch, msg.seq)
                if msg.epoch != self.epoch:
                    self.stats.foreign_epoch += 1
                    self._want_hello(now)
                elif msg.seq == self.expected:
                    batch.append(msg)
                    self.expected += 1
                    while self.expected in self._held:  # the gap is filled: take what waited
                        batch.append(self._held.pop(self.expected))
                        self.expected += 1
                elif msg.seq < self.expected:
                    self.stats.duplicates += 1
                    ack_due = True
                else:
                    # RESUME(f) tells the board everything below f is committed: commit what
                    # this read holds first (a full disk or a SIGKILL in between lost it)
                    self._flush(batch)
                    batch = []
                    self.stats.gaps += 1
                    if len(self._held) < self.HOLD_MAX:
                        self._held[msg.seq] = msg  # in memory only: not acked until committed
                    # a seq at or below one already seen since our RESUME means the
                    # board has rewound and lost `expected` again: ask at once
                    rewound = msg.seq <= self._seen_since_resume
                    self._seen_since_resume = max(self._seen_since_resume, msg.seq)
                    self._want_resume(now, force=rewound)
            elif isinstance(msg, m.Hello):
                self._flush(batch)
                batch = []
                self._on_hello(msg)
            elif isinstance(msg, m.Retained):
                self._flush(batch)
                batch = []
                if msg.epoch == self.epoch and msg.oldest_seq > self.expected:
                    batch = self._skip_to(msg.oldest_seq, "the board answered RESUME with RETAINED")
            elif isinstance(msg, m.Heartbeat):
                self._flush(batch)
                batch = []
                prev = self.last_heartbeat
                if prev is not None and prev.epoch == msg.epoch and msg.t_us < prev.t_us:
                    self.stats.stale_heartbeats += 1  # board time ran backwards: not a time anchor
                    continue
                self.stats.heartbeats += 1
                self.last_heartbeat = msg
                self._saw(msg.epoch, msg.last_seq)
                if msg.epoch != self.epoch:
                    self._want_hello(now)
                else:
                    if msg.acked_seq >= self.expected:  # a 1.0 board: it freed what we lack
                        self._flush(self._skip_to(msg.acked_seq + 1, "the board's heartbeat shows them acknowledged"))
                    self.handler.on_heartbeat(msg, self.expected - 1)
                    if msg.last_seq >= self.expected and self.expected == self._expected_at_hb:
                        self._want_resume(now)  # the board holds events we lack, none came
                    elif msg.acked_seq < self.expected - 1:
                        ack_due = True  # our last ack was lost
                    self._expected_at_hb = self.expected
        if batch:
            self._flush(batch)
        elif ack_due and self.epoch is not None:
            self._ack()
        silent = now - self._last_valid
        if silent > self.heartbeat_timeout_s / 4 and now - self._last_probe >= self.heartbeat_timeout_s / 12:
            # a lost heartbeat or two is corruption, not a dead board: ask for a sign of life
            self._send(m.ConfigGet(m.CFG_HEARTBEAT_MS))
            self.stats.probes += 1
            self._last_probe = now
        if silent > self.heartbeat_timeout_s:
            if self._up is not False:
                self.stats.timeouts += 1
            self._health(False, f"no valid frame from {self.port} for {silent:.1f} s; {self.frame_counts().text()}")
            if silent > 4 * self.heartbeat_timeout_s:
                # a hung USB-serial adapter often recovers only when reopened
                raise serial.SerialException(f"silent for {silent:.0f} s")
        elif msgs and self.epoch is not None:
            self._health(True, self.summary())

    def _flush(self, batch: list[m.BeamEvent | m.Rating]) -> None:
        if not batch or self.epoch is None:
            return
        try:
            self.handler.commit(self.epoch, batch)  # blocks until durable
        except Exception as exc:  # a full disk, a broken journal: keep the events on the board
            self.expected = batch[0].seq
            self._held.clear()
            self.stats.commit_failures += 1
            self._health(False, f"cannot commit beam events ({exc}); the board keeps them, retrying")
            self._stop.wait(min(self.backoff_max, 1.0))
            return
        self.stats.events_committed += len(batch)
        self._ack()

    def _saw(self, epoch: int, seq: int) -> None:
        if epoch == self._seen[0]:
            self._seen = (epoch, max(seq, self._seen[1]))
        elif epoch == self.epoch or self._seen[0] == -1:
            self._seen = (epoch, seq)

    def highest_seen(self, epoch: int) -> int:
        """The highest seq of `epoch` this link has seen the board queue (0: unknown): what a
        reset of that epoch can be known to have lost, beyond the last heartbeat."""
        return self._seen[1] if self._seen[0] == epoch else 0

    def summary(self) -> str:
        """One line for `status` and `ir monitor`: where the link is and what it saw."""
        skipped = f", {self.stats.skipped} skipped (freed by the board)" if self.stats.skipped else ""
        return (f"epoch {self.epoch}, committed up to seq {self.expected - 1}{skipped}; "
                f"{self.frame_counts().text()}")

    def _skip_to(self, oldest: int, why: str) -> list[m.BeamEvent | m.Rating]:
        """The board no longer holds `expected`..`oldest - 1`: report them, start at
        `oldest`; returns the held events that now follow in sequence (to commit)."""
        assert self.epoch is not None
        first, last = self.expected, oldest - 1
        self.stats.skipped += oldest - first
        self.handler.on_skipped(self.epoch, first, last, why)
        self.expected = oldest
        self._held = {q: e for q, e in self._held.items() if q >= oldest}
        batch: list[m.BeamEvent | m.Rating] = []
        while self.expected in self._held:
            batch.append(self._held.pop(self.expected))
            self.expected += 1
        self._resume_for = -1
        return batch

    def _ack(self) -> None:
        assert self.epoch is not None
        self._send(m.Ack(self.epoch, self.expected - 1))
        self.stats.acks_sent += 1

    def _on_hello(self, hello: m.Hello) -> None:
        self.stats.hellos += 1
        if self.last_hello is not None and hello.epoch != self.last_hello.epoch:
            self.stats.resets_seen += 1
        self.last_hello = hello
        self.handler.on_hello(hello)
        self._held.clear()
        self.epoch = hello.epoch
        self.expected = self.handler.resume_point(hello.epoch) + 1
        self._send(m.Resume(hello.epoch, self.expected))
        self.stats.resumes_sent += 1
        self._last_resume = self.now()
        self._resume_for = self.expected

    def _want_resume(self, now: float, force: bool = False) -> None:
        # at once for a new gap; again for the same one only after resume_retry_s
        if self.epoch is None:
            return
        if now - self._last_resume < self.RESUME_MIN_S:
            return  # bounded rate: a board that rewinds on every RESUME cannot make a storm
        if force or self.expected != self._resume_for or now - self._last_resume >= self.resume_retry_s:
            self._seen_since_resume = 0
            self._send(m.Resume(self.epoch, self.expected))
            self.stats.resumes_sent += 1
            self._last_resume = now
            self._resume_for = self.expected

    def _want_hello(self, now: float) -> None:
        if now - self._last_hello_req >= self.resume_retry_s:
            self._send(m.HelloRequest())
            self.stats.hello_requests += 1
            self._last_hello_req = now

    def _health(self, ok: bool, detail: str) -> None:
        now = self.now()
        if ok != self._up or (detail != self._health_detail and now - self._health_at >= self.HEALTH_REFRESH_S):
            self._up, self._health_detail, self._health_at = ok, detail, now
            self.handler.on_health(ok, detail)

    # -- technician commands (from another thread: pyserial writes are thread-safe enough
    #    for whole frames on POSIX, and the board answers with CONFIG_VALUE) -------------

    def send_config(self, key: int, value: int | None = None) -> None:
        self._send(m.ConfigGet(key) if value is None else m.ConfigSet(key, value))
