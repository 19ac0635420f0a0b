"""A virtual door microcontroller: the reference firmware's behaviour (door.c) in
Python, speaking the real protocol over a real pseudo-terminal pair.

The door's timeline (people, beam edges, the board's µs clock) runs on a virtual clock,
`speedup` times faster than real time; the link timers (heartbeat, retransmit) run on
real time so the agent's real-time timeouts see a live board. The virtual clock holds
while the ring of unacked events is half full: the tests measure the link, not the
ring size a short agent outage at 2000x speed would otherwise demand (ring overflow has
its own test and its own counter).

It keeps its own record of every event it emitted (`record`), and of the unacked
events a reset destroyed (`lost_in_reset`): the loss check compares the journal with it.
The agent finds the port through a stable symlink (like /dev/serial/by-id/...), which an
unplug removes and a replug points at a fresh pty.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

from firmware_bridge import messages as m
from simulator.faults import WireFaults

FW_VERSION = (1, 1, 0)  # protocol 1.1: RETAINED


@dataclass
class McuState:
    """RAM: everything here is lost on reset."""

    epoch: int
    boot_vt: float
    last_seq: int = 0
    acked_seq: int = 0
    next_tx: int = 1
    overflow: int = 0
    ring: dict[int, m.BeamEvent | m.Rating] = field(default_factory=dict)
    counters: list[int] = field(default_factory=lambda: [0, 0])
    states: list[int] = field(default_factory=lambda: [0, 0])


class VirtualMcu:
    def __init__(self, link_path: str | Path, edges: list[tuple[float, int, int]], *,
                 speedup: float = 200.0, ring_capacity: int = 1024, faults: WireFaults | None = None,
                 heartbeat_s: float = 0.1, retransmit_s: float = 0.05, first_epoch: int = 1,
                 window: int = 16, presses: list[tuple[float, int, int]] | None = None,
                 fw_minor: int = FW_VERSION[1]) -> None:
        self.link_path = Path(link_path)
        # one timeline: beam edges (virtual t s, beam, edge), debounced, and keypad presses
        # (virtual t s, keypad, level), debounced, tagged by kind; sorted by time
        self.edges: list[tuple[float, int, int, int]] = sorted(
            [(t, m.BEAM_EVENT, a, b) for t, a, b in edges] + [(t, m.RATING, k, lv) for t, k, lv in (presses or [])])
        self.speedup = speedup
        self.capacity = ring_capacity
        self.window = window  # frames in flight beyond the last ack (door.c: FF_WINDOW)
        self.fw_minor = fw_minor  # 0: a 1.0 board (no RETAINED), as boards in the field may be
        self.faults = faults or WireFaults()
        self.heartbeat_s = heartbeat_s
        self.retransmit_s = retransmit_s
        self.eeprom_epoch = first_epoch  # survives resets
        self.vt = 0.0
        self.vt_limit = float("inf")  # the virtual clock stops here (a runner's next fault)
        self.state = McuState(epoch=self.eeprom_epoch, boot_vt=0.0)
        self.record: list[m.BeamEvent | m.Rating] = []  # every event emitted, both kinds
        self.lost_in_reset: list[m.BeamEvent | m.Rating] = []
        self.resets = 0
        self.synced = False  # a RESUME/ACK for this epoch arrived since the last plug/reset
        self.unplugs = 0
        self._i = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._reader = m.MessageReader()
        self._out = bytearray()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_hb = 0.0
        self._last_progress = time.monotonic()
        self.plug()
        self._send(self._hello())

    # -- wiring -------------------------------------------------------------------------

    def plug(self) -> None:
        with self._lock:
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            self._master, self._slave = master, slave
            tmp = self.link_path.with_suffix(".new")
            tmp.unlink(missing_ok=True)
            os.symlink(os.ttyname(slave), tmp)
            os.replace(tmp, self.link_path)

    def unplug(self, mid_frame: bool = False) -> None:
        """Pull the cable; `mid_frame`: after the first half of a frame has gone out (what
        the UART had queued goes with it), as a real unplug strikes."""
        with self._lock:
            if mid_frame and self._master is not None:
                s = self.state
                frame = m.to_frame(s.ring[s.next_tx] if s.next_tx in s.ring else self._heartbeat())
                try:
                    os.write(self._master, bytes(self._out) + frame[: len(frame) // 2])
                except OSError:
                    pass
            self.unplugs += 1
            self.link_path.unlink(missing_ok=True)
            self.synced = False
            for fd in (self._master, self._slave):
                if fd is not None:
                    os.close(fd)
            self._master = self._slave = None
            self._out.clear()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    def reset(self, keep_ram: bool = False) -> None:
        """Power cycle: RAM (ring, counters, sequence) lost, a new epoch from EEPROM.
        `keep_ram`: a watchdog or DTR reset with the state in .noinit RAM (door.c's
        ff_door_recover): same epoch, unacked events kept and sent again."""
        if keep_ram:
            with self._lock:
                self.resets += 1
                self.synced = False
                self._out.clear()
                self.state.next_tx = self.state.acked_seq + 1
                self._send(self._hello())
            return
        with self._lock:
            s = self.state
            self.lost_in_reset += [s.ring[q] for q in range(s.acked_seq + 1, s.last_seq + 1)]
            self.resets += 1
            self.synced = False
            self.eeprom_epoch += 1
            states = s.states
            self.state = McuState(epoch=self.eeprom_epoch, boot_vt=self.vt)
            self._out.clear()
            for beam, level in enumerate(states):  # the firmware reads the pins at boot
                if level:
                    self._push(beam, 1)
            self._send(self._hello())

    # -- running --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="virtual-mcu", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self.plugged:
            self.unplug()
            self.unplugs -= 1  # shutting down is not a fault

    @property
    def backlog(self) -> int:
        """Events emitted and not yet acknowledged."""
        with self._lock:
            return self.state.last_seq - self.state.acked_seq

    @property
    def done(self) -> bool:
        """Every edge emitted and acknowledged."""
        with self._lock:
            return self._i >= len(self.edges) and self.state.acked_seq == self.state.last_seq

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                s = self.state
                if s.last_seq - s.acked_seq < self.capacity // 2:
                    self.vt = min(self.vt_limit, self.vt + (now - last) * self.speedup)
                last = now
                while self._i < len(self.edges) and self.edges[self._i][0] <= self.vt:
                    if s.last_seq - s.acked_seq >= self.capacity // 2:
                        break
                    t_ev, kind, a, b = self.edges[self._i]
                    self._i += 1
                    if kind == m.RATING:
                        self._push(a, b, t_ev, rating=True)
                        continue
                    s.states[a] = b
                    s.counters[a] += 1
                    self._push(a, b, t_ev)
                self._service(now)
            fd = self._master
            if fd is not None:
                try:
                    select.select([fd], [], [], 0.001)
                except (OSError, ValueError):
                    pass
            else:
                self._stop.wait(0.002)

    def _push(self, a: int, b: int, t: float | None = None, rating: bool = False) -> None:
        """Queue a beam edge (a = beam, b = edge) or a keypad press (a = keypad, b = level)."""
        s = self.state
        if s.last_seq - s.acked_seq >= self.capacity:
            s.overflow += 1
            return
        s.last_seq += 1
        t_us = max(0, int(round(((self.vt if t is None else t) - s.boot_vt) * 1e6)))
        ev: m.BeamEvent | m.Rating = (m.Rating(s.epoch, s.last_seq, a, b, t_us) if rating
                                      else m.BeamEvent(s.epoch, s.last_seq, a, b, t_us))
        s.ring[s.last_seq] = ev
        self.record.append(ev)

    def _service(self, now: float) -> None:
        s = self.state
        if s.acked_seq == s.last_seq:
            self._last_progress = now
        elif now - self._last_progress >= self.retransmit_s:
            s.next_tx = s.acked_seq + 1  # no ack progress: go back to the oldest unacked
            self._last_progress = now
        while s.next_tx <= s.last_seq and s.next_tx - s.acked_seq <= self.window:
            self._send(s.ring[s.next_tx])
            s.next_tx += 1
        if now - self._last_hb >= self.heartbeat_s:
            self._last_hb = now
            self._send(self._heartbeat())
        self._flush()
        self._receive(now)

    def _heartbeat(self) -> m.Heartbeat:
        s = self.state
        return m.Heartbeat(s.epoch, int((self.vt - s.boot_vt) * 1e6), s.last_seq, s.acked_seq,
                           s.overflow, s.states[0] | s.states[1] << 1, tuple(s.counters))

    def _hello(self) -> m.Hello:
        return m.Hello(FW_VERSION[0], self.fw_minor, FW_VERSION[2], self.state.epoch, self.capacity,
                       (m.Beam(0, m.ROLE_A), m.Beam(0, m.ROLE_B)))

    def _send(self, msg: m.Message) -> None:
        if self.plugged:
            self._out += self.faults.frame(m.to_frame(msg))

    def _flush(self) -> None:
        if not self._out or self._master is None:
            return
        try:
            n = os.write(self._master, self._out)
            del self._out[:n]
        except BlockingIOError:
            pass  # nobody reading: the UART's bytes wait (bounded by the 4 KiB check)
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            self._out.clear()

    def _receive(self, now: float) -> None:
        if self._master is None:
            return
        try:
            data = os.read(self._master, 65536)
        except (BlockingIOError, OSError):
            return
        s = self.state
        for msg in self._reader.feed(self.faults.corrupt(data)):
            if isinstance(msg, (m.Ack, m.Resume)):
                if msg.epoch != s.epoch:
                    self._send(self._hello())
                    continue
                self.synced = True
                seq = min(msg.seq if isinstance(msg, m.Ack) else msg.from_seq - 1, s.last_seq)
                if seq > s.acked_seq:
                    for q in range(s.acked_seq + 1, seq + 1):
                        s.ring.pop(q, None)
                    s.acked_seq = seq
                    self._last_progress = now
                if isinstance(msg, m.Resume):
                    s.next_tx = s.acked_seq + 1
                    self._out.clear()
                    if msg.from_seq < s.acked_seq + 1 and self.fw_minor >= 1:
                        self._send(m.Retained(s.epoch, s.acked_seq + 1))  # freed: say where the ring starts
                elif s.next_tx <= s.acked_seq:
                    s.next_tx = s.acked_seq + 1
            elif isinstance(msg, m.HelloRequest):
                self._send(self._hello())
            elif isinstance(msg, (m.ConfigGet, m.ConfigSet)):
                self._send(m.ConfigValue(msg.key, 0, m.CFG_STATUS_READ_ONLY))
