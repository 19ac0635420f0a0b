"""The agent's beam component: one link thread per door, journaling every beam edge
before acknowledging it, and decoding journaled edges into crossings.

Order of work on each batch a link reads: raw edges committed (`store.add_beam_events`)
-> ACK to the board -> the new journal rows decoded -> crossings committed
(`store.add_crossings`). The decoder reads its input back from the journal, the same
path a restart replays, so a SIGKILL anywhere in that chain is repaired by replaying
from the last point where the decoder was idle (meta `beams.<door>.replay_from`);
crossing refs derive from the journaled edges, so the replay re-derives the same refs
and the journal ignores the ones it has.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.beam_decoder import TIME_UNKNOWN, BeamDecoder, DecoderConfig, Edge
from edge.clock import Clock, SystemClock
from edge.crossing import Crossing
from edge.journal import BeamEventRow
from contract.ratings import Press
from firmware_bridge import messages as m
from firmware_bridge.link import BeamLink

log = logging.getLogger(__name__)

HealthFn = Callable[[str, bool, str], None]

REPORT_HOLD_S = 60.0  # a loss or gap keeps its part unhealthy this long: the bins around it carry the flag
MAX_LATE_S = 30 * 86400.0  # events delivered this late are plausible (a board's ring outlives an outage)
QUARANTINE_MAX = 100  # implausible stamps kept (as sent) in journal meta for a person to look at


class DoorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="door id; the `line` of its crossings", min_length=1)
    port: str = Field(description="serial device; prefer a stable /dev/serial/by-id/... path")
    baudrate: int = Field(115200, description="serial speed; the reference firmware uses 115200", gt=0)
    a_then_b: str = Field("in", description="direction of a pass that breaks beam A first and clears beam B last: 'in' or 'out'",
                          pattern="^(in|out)$")
    a_beam: int = Field(0, ge=0, le=15, description="beam id of the outer beam A")
    b_beam: int = Field(1, ge=0, le=15, description="beam id of the inner beam B")
    min_transit_s: float = Field(0.004, ge=0, description="break/clear order closer than this is treated as simultaneous")
    max_transit_s: float = Field(2.5, gt=0, description="blockages longer than this are counted as estimates (low confidence)")
    min_block_s: float = Field(0.03, ge=0, description="breaks shorter than this are glitches, not people")
    merge_gap_s: float = Field(0.12, ge=0, description="clears shorter than this inside a blockage are flicker, not a gap between people")
    stuck_s: float = Field(60.0, gt=0, description="a beam blocked this long raises a fault; the door counts nothing until it clears")
    board_time_ahead_s: float = Field(3600.0, gt=0, description="a board stamp that maps this far past the host's clock is "
                                      "implausible (a crystal drifts seconds a day): binned at receipt, flagged; a "
                                      "simulated board whose clock runs faster than real time needs more")
    heartbeat_timeout_s: float = Field(6.0, gt=0, description="no valid frame for this long -> link-down health (six "
                                       "heartbeats of the reference firmware, with probes in between: 1% corruption "
                                       "does not lose them all)")

    @model_validator(mode="after")
    def _distinct_beams(self) -> "DoorSettings":
        if self.a_beam == self.b_beam:
            raise ValueError("a_beam and b_beam must be different beams")
        if self.max_transit_s <= self.min_transit_s:
            raise ValueError("max_transit_s must exceed min_transit_s")
        return self


class BeamSettings(BaseModel):
    """The agent configuration's [beams] section."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="run the beam component")
    doors: list[DoorSettings] = Field(default_factory=list, description="one entry per door microcontroller")
    rating_levels: int = Field(0, ge=0, le=5, description="buttons on the service-rating keypads wired to the door boards "
                               "(1 = worst ... N = best; 3 or 4 on the reference board); 0: no keypad (docs/ratings.md)")
    rating_repeat_s: float = Field(3.0, ge=0, le=600, description="a press within this many seconds of the previous press on "
                                   "the same keypad is one person pressing again: kept, flagged 'repeat', not counted")

    def keypad_levels(self) -> int:
        """Levels of the keypads whose ratings the bins carry (0: none)."""
        return self.rating_levels if self.enabled and self.doors else 0

    @model_validator(mode="after")
    def _unique(self) -> "BeamSettings":
        names = [d.name for d in self.doors]
        if len(set(names)) != len(names):
            raise ValueError(f"door names must be unique: {names}")
        return self


class BeamStore(Protocol):
    """What BeamSource needs of the journal (edge.journal.Journal's method names);
    every call returns only once durable."""

    def add_beam_events(self, door: str, rows: list[BeamEventRow]) -> int: ...
    def add_door_events(self, door: str, rows: list[BeamEventRow], presses: list[Press], *,
                        repeat_s: float, levels: int) -> int: ...
    def add_crossings(self, crossings: list[Crossing]) -> int: ...
    def last_event_seq(self, door: str, mcu_epoch: int) -> int | None: ...
    def beam_events_after(self, door: str, row_id: int = 0) -> list[tuple[int, BeamEventRow]]: ...
    def count_beam_events(self, door: str, mcu_epoch: int, beam: int) -> int: ...
    def get_meta(self, key: str, default: str | None = None) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


def decoder_config(d: DoorSettings) -> DecoderConfig:
    return DecoderConfig(door=d.name, a_beam=d.a_beam, b_beam=d.b_beam, a_then_b_is_in=d.a_then_b == "in",
                         min_block_s=d.min_block_s, merge_gap_s=d.merge_gap_s, min_transit_s=d.min_transit_s,
                         max_transit_s=d.max_transit_s, stuck_s=d.stuck_s)


class DoorPipeline:
    """One door: the LinkHandler of its link, the decoder, replay and reconciliation."""

    def __init__(self, door: DoorSettings, store: BeamStore, health: HealthFn, clock: Clock,
                 rating_levels: int = 0, rating_repeat_s: float = 3.0) -> None:
        self.door = door
        self.rating_levels = rating_levels
        self.rating_repeat_s = rating_repeat_s
        self.ratings_committed = 0
        self.store = store
        self.health = health
        self.clock = clock
        self.decoder = BeamDecoder(decoder_config(door))
        self.component = f"beams:{door.name}"
        self._cursor = 0  # last journal row fed to the decoder
        self._safe_row = 0  # replay restarts after this row
        self._saved_safe = 0
        self._last_save = -1e9
        self._fault: str | None = None
        self._unsaved: list[Crossing] = []
        self._overflow_reported = 0
        self.crossings_committed = 0
        self.lost_events = int(store.get_meta(self._key("lost_events"), "0") or 0)
        self.skipped_events = int(store.get_meta(self._key("skipped_events"), "0") or 0)
        self.implausible_times = int(store.get_meta(self._key("implausible_times"), "0") or 0)
        self._reports: dict[str, tuple[float, str]] = {}  # part -> (monotonic set, detail) while held down
        known = store.get_meta(self._key("epoch"))
        self._known_epoch: int | None = int(known) if known is not None else None
        self._quarantine: list[dict[str, Any]] = json.loads(store.get_meta(self._key("quarantine"), "[]") or "[]")
        self._pending_meta: dict[str, str] = {}  # meta a full disk refused: written at the next chance
        hb = store.get_meta(self._key("last_heartbeat"))
        self._last_hb: dict[str, Any] | None = json.loads(hb) if hb else None
        # (epoch, board µs, host UTC) of the last heartbeat: maps board time to UTC
        self._anchor: tuple[int, int, float] | None = (
            (self._last_hb["epoch"], self._last_hb["t_us"], self._last_hb["utc"])
            if self._last_hb and "t_us" in self._last_hb else None)
        # monotonic time of that heartbeat's receipt in this process (None: read from the
        # journal): the wall clock may be stepped (NTP) between a heartbeat and an event
        self._anchor_mono: float | None = None
        self._last_hb_saved = -1e9
        self.last_heartbeat: m.Heartbeat | None = None
        self.link = BeamLink(door.port, self, baudrate=door.baudrate,
                             heartbeat_timeout_s=door.heartbeat_timeout_s, monotonic=clock.monotonic)

    def _key(self, name: str) -> str:
        return f"beams.{self.door.name}.{name}"

    # -- replay --------------------------------------------------------------------------

    def replay(self) -> int:
        """Decode journaled edges from the last idle point; returns rows replayed."""
        self._cursor = self._safe_row = self._saved_safe = int(self.store.get_meta(self._key("replay_from"), "0") or 0)
        return self._decode_new()

    def _decode_new(self) -> int:
        rows = self.store.beam_events_after(self.door.name, self._cursor)
        out: list[Crossing] = []
        cut = self.decoder.stats["reset_discarded"]
        for row_id, r in rows:
            was_idle = self.decoder.idle
            out += self.decoder.feed(Edge(r.mcu_epoch, r.seq, r.beam, r.edge, r.mcu_us, r.t_utc))
            if was_idle and not self.decoder.idle:
                self._safe_row = row_id - 1  # a new pass begins here
            elif self.decoder.idle:
                self._safe_row = row_id
            self._cursor = row_id
        self._commit_crossings(out)
        if self.decoder.stats["reset_discarded"] > cut:
            self._report("mcu", f"door {self.door.name}: a pass in progress when the board restarted (a beam still"
                         " broken) could not be completed and was not counted")
        return len(rows)

    def _commit_soon(self, crossings: list[Crossing]) -> None:
        """Crossings made outside a commit (a heartbeat, a HELLO): a full disk keeps them
        in memory for the next commit instead of ending the link's read."""
        try:
            self._commit_crossings(crossings)
        except Exception as exc:  # noqa: BLE001 - kept in self._unsaved by _commit_crossings
            log.debug("door %s: %d crossing(s) wait for the journal (%s)", self.door.name, len(self._unsaved), exc)

    def _persist(self, name: str, value: str) -> None:
        """Meta that must survive a restart, written at once if the disk lets it, else at
        the next heartbeat; the figure in memory is the one in use meanwhile (a full disk
        must neither end the link nor make a reset be reported twice)."""
        self._pending_meta[self._key(name)] = value
        self._flush_meta()

    def _flush_meta(self) -> None:
        for key, value in list(self._pending_meta.items()):
            try:
                self.store.set_meta(key, value)
            except Exception as exc:  # noqa: BLE001 - the disk's problem, reported by the journal's health
                log.debug("door %s: meta %s not written yet (%s)", self.door.name, key, exc)
                return
            if self._pending_meta.get(key) == value:
                del self._pending_meta[key]

    def _report(self, part: str, detail: str) -> None:
        """A loss or a gap: the part is unhealthy for REPORT_HOLD_S (status shows it, the
        bins of that time carry its flag), then healthy again with the detail kept."""
        self._reports[part] = (self.clock.monotonic(), detail)
        self.health(f"{self.component}:{part}", False, detail)
        log.warning(detail)

    def _release_reports(self) -> None:
        now = self.clock.monotonic()
        for part, (since, detail) in list(self._reports.items()):
            if now - since >= REPORT_HOLD_S:
                del self._reports[part]
                self.health(f"{self.component}:{part}", True, f"last: {detail}")

    def _commit_crossings(self, out: list[Crossing]) -> None:
        # the decoder has consumed these edges: crossings a failed commit (full disk)
        # could not store wait here for the next attempt instead of being lost
        out = self._unsaved + out
        if out:
            try:
                self.crossings_committed += self.store.add_crossings(out)
            except Exception:
                self._unsaved = out
                raise
            self._unsaved = []
        now = self.clock.monotonic()
        if self._safe_row != self._saved_safe and (out or now - self._last_save > 2.0):
            self.store.set_meta(self._key("replay_from"), str(self._safe_row))
            self._saved_safe, self._last_save = self._safe_row, now
        fault = self.decoder.fault
        if fault != self._fault:
            self._fault = fault
            self.health(f"{self.component}:beams", fault is None, fault or "beams clear")

    # -- LinkHandler ------------------------------------------------------------------------

    def resume_point(self, epoch: int) -> int:
        return self.store.last_event_seq(self.door.name, epoch) or 0

    def on_hello(self, hello: m.Hello) -> None:
        known = self._known_epoch
        if known is not None and known != hello.epoch:
            old = known
            committed = self.store.last_event_seq(self.door.name, old) or 0
            hb = self._last_hb if self._last_hb and self._last_hb["epoch"] == old else None
            per_beam = self._reconcile(old, hb) if hb else {}
            # the board's cumulative per-beam counters also cover edges its ring overflowed;
            # the sequence gap covers edges since the counters were read: take the larger
            seen = self.link.highest_seen(old)  # events seen in flight after that heartbeat
            lost = max(max(0, max(hb["last_seq"], seen) - committed) + hb["overflow"], sum(per_beam.values())) if hb \
                else max(0, seen - committed)
            self.lost_events += lost
            self._persist("lost_events", str(self.lost_events))
            beams = ", ".join(f"beam {b}: {n}" for b, n in sorted(per_beam.items()) if n)
            detail = (f"door {self.door.name}: microcontroller restarted (epoch {old} -> {hello.epoch});"
                      f" {lost} undelivered event(s) lost with its RAM" + (f" ({beams})" if beams else "")
                      + ("" if hb else " (no heartbeat of the old epoch seen: a lower bound)"))
            if lost or hb is None:
                self._report("mcu", detail)
            else:
                self.health(f"{self.component}:mcu", True, detail)
                log.warning(detail)
        if known != hello.epoch:
            self._known_epoch = hello.epoch
            self._persist("epoch", str(hello.epoch))
        # the old epoch's last pass ends here (classified if both beams had cleared):
        # heartbeats of the new epoch cannot settle it, their clock starts again at 0
        self._commit_soon(self.decoder.end_epoch(hello.epoch))
        beams = {b.role: i for i, b in enumerate(hello.beams) if b.pair == 0}
        if beams and (beams.get(m.ROLE_A), beams.get(m.ROLE_B)) != (self.door.a_beam, self.door.b_beam):
            self.health(f"{self.component}:layout", False,
                        f"door {self.door.name}: board says A={beams.get(m.ROLE_A)} B={beams.get(m.ROLE_B)},"
                        f" settings say A={self.door.a_beam} B={self.door.b_beam}")

    def _reconcile(self, epoch: int, hb: dict[str, Any]) -> dict[int, int]:
        """Per beam: edges the board counted in an epoch (its last heartbeat's cumulative
        counters) minus edges the journal holds for that epoch and beam."""
        return {beam: max(0, counted - self.store.count_beam_events(self.door.name, epoch, beam))
                for beam, counted in enumerate(hb["counters"])}

    def event_utc(self, epoch: int, t_us: int, now_utc: float) -> float | None:
        """UTC of a board timestamp: anchored on the last heartbeat of that epoch (board
        µs <-> host UTC at its receipt), so events delivered late (after an unplug or an
        agent restart) keep the time they happened; receipt time without an anchor.
        None: the stamp is implausible (no board's uptime, or mapped outside
        [now - MAX_LATE_S, now + MAX_AHEAD_S]): the caller bins it at receipt, flagged."""
        anchor = self._anchor
        if anchor is not None and self._anchor_mono is not None:
            # the heartbeat's receipt on the wall clock as it reads now: a step since then
            # moves the board's events with it, as it moves every other time the agent reads
            anchor = (anchor[0], anchor[1], now_utc - (self.clock.monotonic() - self._anchor_mono))
        return board_utc(anchor, epoch, t_us, now_utc, self.door.board_time_ahead_s)

    def _stamp(self, epoch: int, seq: int, t_us: int, now_utc: float) -> tuple[int, float]:
        """(mcu_us, t_utc) to journal for a board stamp; an implausible one is journaled as
        TIME_UNKNOWN at receipt time, and kept as sent in meta `beams.<door>.quarantine`."""
        utc = self.event_utc(epoch, t_us, now_utc)
        if utc is not None:
            return t_us, utc
        self.implausible_times += 1
        self._quarantine = self._quarantine[-(QUARANTINE_MAX - 1):] + [
            {"epoch": epoch, "seq": seq, "t_us": t_us, "received_utc": now_utc}]
        self._persist("quarantine", json.dumps(self._quarantine))
        self._persist("implausible_times", str(self.implausible_times))
        self._report("time", f"door {self.door.name}: board time {t_us} µs of event {epoch}:{seq} is implausible"
                     f" (last heartbeat: {self._anchor[1] if self._anchor else 'none'} µs); binned at receipt"
                     f" ({self.implausible_times} so far)")
        return TIME_UNKNOWN, now_utc

    def commit(self, epoch: int, events: list[m.BeamEvent | m.Rating]) -> None:
        now = self.clock.wall()
        rows = [BeamEventRow(epoch, e.seq, e.beam, e.edge, *self._stamp(epoch, e.seq, e.t_us, now))
                for e in events if isinstance(e, m.BeamEvent)]
        presses = [Press(epoch, e.seq, e.keypad, e.level, *self._stamp(epoch, e.seq, e.t_us, now))
                   for e in events if isinstance(e, m.Rating)]
        if presses:
            # one transaction: edges and presses share the board's sequence (the resume point)
            self.ratings_committed += self.store.add_door_events(self.door.name, rows, presses,
                                                                 repeat_s=self.rating_repeat_s, levels=self.rating_levels)
            if not self.rating_levels:
                self.health(f"{self.component}:ratings", False,
                            f"door {self.door.name}: keypad presses received but [beams] rating_levels = 0:"
                            " they are journaled, flagged out_of_range and not counted; set rating_levels")
        else:
            self.store.add_beam_events(self.door.name, rows)
        self._decode_new()

    def on_skipped(self, epoch: int, first: int, last: int, why: str) -> None:
        n = last - first + 1
        self.skipped_events += n
        self._persist("skipped_events", str(self.skipped_events))
        self._report("gap", f"door {self.door.name}: events {first}..{last} of epoch {epoch} ({n}) were acknowledged"
                     f" by an earlier host and are not in this journal ({why}); counting resumes at seq {last + 1}")

    def on_heartbeat(self, hb: m.Heartbeat, committed_seq: int) -> None:
        self._release_reports()
        self._flush_meta()
        self.last_heartbeat = hb
        self._anchor = (hb.epoch, hb.t_us, self.clock.wall())
        self._anchor_mono = self.clock.monotonic()
        self._last_hb = {"epoch": hb.epoch, "last_seq": hb.last_seq, "overflow": hb.overflow,
                         "counters": list(hb.counters), "t_us": hb.t_us, "utc": self._anchor[2]}
        now = self.clock.monotonic()
        if now - self._last_hb_saved >= 1.0:  # what a reset can be known to lose: keep it fresh
            self._persist("last_heartbeat", json.dumps(self._last_hb))
            self._last_hb_saved = now
        if hb.overflow and hb.overflow != self._overflow_reported:
            self._overflow_reported = hb.overflow
            self.health(f"{self.component}:mcu", False,
                        f"door {self.door.name}: board ring overflowed, {hb.overflow} event(s) lost on the board")
        if hb.last_seq == committed_seq and self.decoder.epoch in (None, hb.epoch):
            # everything the board saw is decoded: time may end a settled pass
            self._commit_soon(self.decoder.advance(hb.t_us - 100_000))
            if self.decoder.idle:
                self._safe_row = self._cursor

    def on_health(self, ok: bool, detail: str) -> None:
        self.health(f"{self.component}:link", ok, f"door {self.door.name}: {detail}")


class BeamSource:
    """The agent component: `start()` replays, then runs a link thread per door."""

    def __init__(self, settings: BeamSettings, store: BeamStore, health: HealthFn,
                 clock: Clock | None = None) -> None:
        self.settings = settings
        self.store = store
        self.health = health
        self.clock = clock or SystemClock()
        self.doors = [DoorPipeline(d, store, health, self.clock, settings.rating_levels, settings.rating_repeat_s)
                      for d in settings.doors]

    def start(self) -> None:
        if not self.settings.enabled:
            return
        for door in self.doors:
            n = door.replay()
            if n:
                log.info("door %s: replayed %d journaled edge(s)", door.door.name, n)
            door.link.start()

    def stop(self) -> None:
        for door in self.doors:
            door.link.stop()


def board_utc(anchor: tuple[int, int, float] | None, epoch: int, t_us: int, now_utc: float,
              ahead_s: float) -> float | None:
    """Board µs -> UTC through an (epoch, board µs, host UTC) anchor; None if implausible
    (no board's uptime, older than MAX_LATE_S, more than `ahead_s` past `now_utc`)."""
    if not 0 <= t_us < m.MAX_BOARD_US:
        return None
    if anchor is None or anchor[0] != epoch:
        return now_utc
    utc = anchor[2] + (t_us - anchor[1]) / 1e6
    if not now_utc - MAX_LATE_S <= utc <= now_utc + ahead_s:
        return None
    return min(now_utc, utc)
