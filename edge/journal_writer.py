"""The one thread that owns the journal's SQLite connection; other threads hand it work.

Sources call the same methods as on `Journal` (add_crossings, add_beam_events, ...); each
call returns when the work is committed, so a source may acknowledge upstream right
after. On a full disk, crossings are kept in memory (up to `max_held`) and retried (health
shows `disk_full`); beam events raise JournalFullError so the link withholds its ack and
the microcontroller keeps them in its ring buffer. Past `max_held` (days of traffic at a busy
door) further crossings are dropped and counted (`dropped_while_full`, in the disk alarm):
memory stays bounded and no source thread sees an exception.

A disk already full when the journal is opened (a device booting on a full SD card) is
waited out, not fatal: the open is retried every `open_retry_s` (health `disk` down,
`on_wait` told each time), since a restart cannot free space and would only loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from contract.log_limit import LogLimiter
from edge.crossing import Crossing
from edge.journal import BeamEventRow, Journal, JournalFullError, is_disk_full
from contract.ratings import Press

T = TypeVar("T")
log = logging.getLogger(__name__)
_drops = LogLimiter(log, time.monotonic, every_s=60.0, burst=1)
_STOP = object()


class JournalWriter:
    def __init__(self, path: str | Path, on_health: Callable[[str, bool, str], None] | None = None,
                 max_held: int = 100_000, on_wait: Callable[[str], None] | None = None, open_retry_s: float = 1.0,
                 **journal_kw: Any) -> None:
        self._init = (path, journal_kw)
        self._on_wait = on_wait or (lambda _why: None)
        self._open_retry_s = open_retry_s
        self._q: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="journal", daemon=True)
        self._ready: Future[None] = Future()
        self._held: list[Crossing] = []  # crossings waiting for disk space
        self.max_held = max_held
        self.dropped_while_full = 0
        self._on_health = on_health or (lambda *_: None)
        self.journal: Journal | None = None

    @classmethod
    def open(cls, path: str | Path, **journal_kw: Any) -> JournalWriter:
        """A started writer for tools and tests that have no agent around them."""
        writer = cls(path, **journal_kw)
        writer.start()
        return writer

    def close(self) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        self._ready.result()

    def stop(self) -> None:
        self._q.put(_STOP)
        self._thread.join(timeout=30)

    @property
    def held_in_memory(self) -> int:
        return len(self._held)

    def _open(self) -> Journal:
        """The journal, once there is space to open it (a full disk is waited out)."""
        path, kw = self._init
        while True:
            try:
                journal = Journal(path, **kw)
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                why = f"disk full: waiting for space to open the journal {path}"
                self._on_health("disk", False, "disk_full")
                _drops.log("open", logging.WARNING, "%s", why)
                self._on_wait(why)
                time.sleep(self._open_retry_s)
                continue
            self._on_health("disk", True, "")
            return journal

    def _run(self) -> None:
        try:
            self.journal = self._open()
        except BaseException as exc:  # surfaced to start()
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        while True:
            item = self._q.get()
            if item is _STOP:
                break
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(self.journal))
            except BaseException as exc:
                fut.set_exception(exc)
        self.journal.close()

    def submit(self, fn: Callable[[Journal], T]) -> Future[T]:
        fut: Future[T] = Future()
        self._q.put((fn, fut))
        return fut

    def call(self, fn: Callable[[Journal], T], timeout: float | None = 60) -> T:
        """Run fn on the journal's thread and wait; from that thread itself, run it inline."""
        if threading.current_thread() is self._thread:
            return fn(self.journal)
        return self.submit(fn).result(timeout)

    # -- the store interface sources use ---------------------------------------------

    def add_crossings(self, crossings: Sequence[Crossing]) -> int:
        return self.call(lambda j: self._add_crossings(j, list(crossings)))

    def _add_crossings(self, j: Journal, crossings: list[Crossing]) -> int:
        batch = self._held + crossings
        try:
            n = j.add_crossings(batch)
        except JournalFullError as exc:
            if not self._held:
                log.error("journal full: keeping crossings in memory until space frees (%s)", exc)
                self._on_health("disk", False, "disk_full")
            if len(batch) > self.max_held:
                self.dropped_while_full += len(batch) - self.max_held
                _drops.log("drop", logging.ERROR, "journal full and %d crossings held in memory: %d dropped so far",
                           self.max_held, self.dropped_while_full)
                self._on_health("disk", False, f"disk_full: {self.dropped_while_full} crossings dropped")
                batch = batch[: self.max_held]
            self._held = batch
            return 0
        if self._held:
            log.warning("journal writable again: %d crossings held in memory committed", len(self._held))
            self._on_health("disk", True, "")
        self._held = []
        return n

    def retry_held(self) -> None:
        """Called periodically: commit crossings held while the disk was full."""
        if self._held:
            self.call(lambda j: self._add_crossings(j, []))

    def add_beam_events(self, door: str, rows: Iterable[BeamEventRow]) -> int:
        rows = list(rows)
        return self.call(lambda j: j.add_beam_events(door, rows))

    def last_beam_seq(self, door: str, mcu_epoch: int) -> int | None:
        return self.call(lambda j: j.last_beam_seq(door, mcu_epoch))

    def count_beam_events(self, door: str, mcu_epoch: int, beam: int) -> int:
        return self.call(lambda j: j.count_beam_events(door, mcu_epoch, beam))

    def last_event_seq(self, door: str, mcu_epoch: int) -> int | None:
        return self.call(lambda j: j.last_event_seq(door, mcu_epoch))

    def add_ratings(self, door: str, presses: Sequence[Press], *, repeat_s: float, levels: int) -> int:
        presses = list(presses)
        return self.call(lambda j: j.add_ratings(door, presses, repeat_s=repeat_s, levels=levels))

    def add_door_events(self, door: str, rows: Iterable[BeamEventRow], presses: Sequence[Press], *,
                        repeat_s: float, levels: int) -> int:
        rows, presses = list(rows), list(presses)
        return self.call(lambda j: j.add_door_events(door, rows, presses, repeat_s=repeat_s, levels=levels))

    def add_audit(self, started_utc: float, ended_utc: float, passed: bool, record: dict[str, Any]) -> int:
        return self.call(lambda j: j.add_audit(started_utc, ended_utc, passed, record))

    def last_passing_audit(self) -> dict[str, Any] | None:
        return self.call(lambda j: j.last_passing_audit())

    def beam_events_after(self, door: str, row_id: int = 0) -> list[tuple[int, BeamEventRow]]:
        return self.call(lambda j: j.beam_events_after(door, row_id))

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        return self.call(lambda j: j.get_meta(key, default))

    def set_meta(self, key: str, value: str) -> None:
        self.call(lambda j: j.set_meta(key, value))

    def log_health(self, t_utc: float, component: str, ok: bool, detail: str = "") -> None:
        self.call(lambda j: j.log_health(t_utc, component, ok, detail))
