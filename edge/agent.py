"""The agent: wires sources -> journal -> bins -> outbox -> publisher, and runs the loop.

Threads, each owning one thing: the journal writer (SQLite), paho's network loop, one per
source (serial link, camera), and this loop, which ticks the binner, pumps the publisher,
writes status.json for `footfall status` and feeds the systemd watchdog while healthy.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path
from collections.abc import Callable
from typing import Any, Protocol

from edge import __version__
from edge.audit import declared_accuracy
from edge.bins import Binner, BinPolicy
from contract.log_limit import LogLimiter
from edge.clock import Clock, SystemClock
from edge.config import AgentConfig
from contract.messages import topic
from edge.fuser import Fuser
from edge.health import Health
from edge.journal import Journal
from edge.journal_writer import JournalWriter
from edge.outbox import Outbox
from edge.publisher import Publisher, _in_tx
from contract.day_summary import SiteProfile
from edge.sd_notify import notify
from edge.status import build_status
from edge.summaries import Summaries, profile_of, request as request_summary

log = logging.getLogger(__name__)

ALIVE_EVERY_S = 10.0
# Consecutive ticks whose binning failed (not for a full disk) before the agent counts its
# binner as wedged and stops feeding the watchdog, so that systemd restarts it.
BINNER_FAILURES_BEFORE_STOP = 5


class Source(Protocol):
    """A counting source the agent runs (beam link, camera)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...


def clock_synced() -> bool:
    """NTP sync as systemd-timesyncd/chrony report it; True where nothing can tell."""
    if os.path.exists("/run/systemd/timesync/synchronized"):
        return True
    return not os.path.isdir("/run/systemd/timesync")


class Agent:
    def __init__(self, cfg: AgentConfig, clock: Clock | None = None,
                 make_sources: Callable[[AgentConfig, Agent], list[Source]] | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or SystemClock()
        self._seen_parts: set[str] = set()  # parts whose state was reported once (alarms are for changes)
        self._health_log = LogLimiter(log, self.clock.monotonic, every_s=60.0)
        self.make_sources = make_sources  # called once the journal is open
        self.sources: list[Source] = []
        self.stopping = threading.Event()
        cfg.storage.state_dir.mkdir(parents=True, exist_ok=True)
        self.writer = JournalWriter(cfg.storage.journal_path, on_health=lambda c, ok, d: self.health.set(c, ok, d),
                                    on_wait=_still_starting,
                                    max_held=cfg.storage.max_held_crossings)
        self.health = Health(self.clock.wall, on_change=self._journal_health)
        self.epoch = 0
        self.outbox: Outbox | None = None
        self.binner: Binner | None = None
        self.summaries: Summaries | None = None
        self.publisher: Publisher | None = None
        self.fuser = Fuser(cfg.fusion)
        # intervals on the monotonic clock: a wall clock stepped back (NTP) must not hold them off
        self._last_alive = -1e18
        self._last_prune = -1e18
        self._binning_failures = 0  # consecutive; a full disk does not count (a restart cannot cure it)
        self._log = LogLimiter(log, self.clock.monotonic, every_s=60.0, burst=1)

    def _journal_health(self, t: float, component: str, ok: bool, detail: str) -> None:
        """Log a health change (rate-limited, for journald), journal it (bins derive flags from
        it) and queue an alarm. A part's first state, when it is ok, is no change: no alarm."""
        first = component not in self._seen_parts
        self._seen_parts.add(component)
        if not (first and ok):
            # the broker's first state is "connecting", not a fault; a flapping part is rate-limited
            # per direction, so a loss and the reconnect after it both reach the log
            if first and component == "mqtt":
                log.info("mqtt: %s to %s:%d", detail or "connecting", self.cfg.mqtt.host, self.cfg.mqtt.port)
            else:
                level = logging.INFO if ok or self.stopping.is_set() else logging.WARNING  # a shutdown is no fault
                self._health_log.log(f"{component}:{ok}", level, "%s %s: %s",
                                     component, "ok" if ok else ("down" if component == "mqtt" else "FAULT"),
                                     detail or "-")
        if component in ("mqtt", "mqtt_loop"):
            return  # the broker's reachability shows in status and the backlog, not in bins
        alarm = {"schema": "footfall.alarm/1", "device": self.cfg.device.id, "site": self.cfg.device.site,
                 "t_utc": t, "component": component, "ok": ok, "detail": detail}

        def write(j: Journal) -> None:
            with j.transaction():
                if component not in ("disk", "binner"):  # not a source: no bin flag
                    j.log_health(t, component, ok, detail)
                if self.outbox is not None and not (first and ok):  # alarms are for changes
                    self.outbox.enqueue(self._topic("alarm"), alarm, t)

        if self.writer.journal is None:
            return  # not open yet (a full disk waited out at start): the log line above says it
        try:
            self.writer.call(write)
        except Exception:  # a full disk must not stop health reporting
            log.exception("could not journal health change of %s", component)

    # -- start / stop ----------------------------------------------------------------

    def open(self) -> None:
        """Open the journal, start this boot's epoch, queue the birth message."""
        self.writer.start()
        now = self.clock.wall()
        cfg = self.cfg

        def boot(j: Journal) -> tuple[int, Outbox, Binner]:
            with j.transaction():
                epoch = int(j.get_meta("boot_epoch", "0") or 0) + 1
                j.conn.execute(
                    "INSERT INTO meta(key, value) VALUES ('boot_epoch', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (str(epoch),),
                )
                alive = j.get_meta("alive_until_utc")
                if alive is not None:
                    j.log_health(float(alive), "agent", False, "stopped")
                j.log_health(now, "agent", True, "start")
                outbox = Outbox(j.conn, epoch, cfg.storage.outbox_max_messages)
                policy = BinPolicy(cfg.bins.minutes, cfg.zone, cfg.bins.primary_source, cfg.bins.rebase_local_time,
                                   tuple(cfg.declared_lines()), cfg.occupancy_rule(), rating_levels=cfg.beams.keypad_levels())
                binner = Binner(j.conn, outbox, policy, self._topic("bins"), {"device": cfg.device.id, "site": cfg.device.site})
                binner.start_at(now)
                if j.get_meta("bins_first_start_utc") is None:
                    j.conn.execute("INSERT INTO meta(key, value) VALUES ('bins_first_start_utc', (SELECT value FROM meta WHERE key = 'bins_next_start_utc'))")
                birth = self.birth(epoch, now, declared_accuracy(j.last_passing_audit()))
                previous = outbox.last_seq(epoch - 1)
                if previous is not None:
                    birth["previous_epoch"] = {"epoch": epoch - 1, "last_seq": previous}
                outbox.enqueue(self._topic("birth"), birth, now, retain=True)
                summaries = Summaries(binner, outbox, self.site_profile(), self._topic("summary"),
                                      per_tick=cfg.commands.summary_per_tick)
            return epoch, outbox, binner, summaries

        self.epoch, self.outbox, self.binner, self.summaries = self.writer.call(boot)
        self.health.set("journal", True, str(cfg.storage.journal_path))
        if cfg.bins.require_clock_sync:
            self.health.set("clock", clock_synced(), "NTP synchronized" if clock_synced() else "waiting for NTP")
        self.publisher = Publisher(
            cfg.mqtt, cfg.device.id, cfg.device.site, self.epoch, self.writer, self.outbox, self.health,
            self.clock.wall, historical_after_s=2 * cfg.bins.minutes * 60, monotonic=self.clock.monotonic,
            commands={"summary": self._on_summary_request}, limits=cfg.commands,
        )

    def _on_summary_request(self, req: dict[str, Any]) -> None:
        """The index system asks for a day's summary: journaled (once per day, a bounded
        number, only days the journal can have), served a few per tick. Raises ValueError
        for a request it refuses (a date that does not exist, or outside the journal)."""
        from datetime import date

        day = date.fromisoformat(req["date"])
        now = self.clock.wall()
        new = self.writer.call(lambda j: _in_tx(j, lambda: request_summary(
            j.conn, day, now, "cmd/summary", zone=self.cfg.zone, max_pending=self.cfg.commands.summary_max_pending)))
        log.info("summary of %s requested by the index system%s", day, "" if new else " (already waiting)")

    def _topic(self, kind: str) -> str:
        return topic(self.cfg.mqtt.topic_prefix, self.cfg.device.site, self.cfg.device.id, kind)

    def site_profile(self) -> SiteProfile:
        return profile_of(self.cfg)

    def birth(self, epoch: int, now: float, declared: dict[str, Any] | None = None) -> dict[str, Any]:
        """`declared`: the accuracy of the last passing `footfall validate` audit (None: never audited)."""
        import numpy
        import paho.mqtt

        return {
            "schema": "footfall.birth/1",
            "device": self.cfg.device.id,
            "site": self.cfg.device.site,
            "boot_utc": now,
            "versions": {"footfall": __version__, "paho_mqtt": paho.mqtt.__version__, "numpy": numpy.__version__},
            "config_hash": self.cfg.digest(),
            "bin_minutes": self.cfg.bins.minutes,
            "timezone": self.cfg.device.timezone,
            "declared_accuracy": declared,
            "site_profile": self.site_profile().as_json(),
        }

    def start(self) -> None:
        self.open()
        assert self.publisher is not None
        self.publisher.start()
        if self.make_sources is not None:
            self.sources = self.make_sources(self.cfg, self)
        for src in self.sources:
            src.start()
        cfg = self.cfg
        log.info("footfall %s started: device %s, site %s, boot epoch %d, %d source(s), broker %s:%d%s, journal %s",
                 __version__, cfg.device.id, cfg.device.site, self.epoch, len(self.sources), cfg.mqtt.host,
                 cfg.mqtt.port, " (TLS)" if cfg.mqtt.tls else "", cfg.storage.journal_path)
        notify("READY=1")

    def stop(self) -> None:
        log.info("stopping: closing the sources, the last bins and the journal")
        for src in self.sources:
            src.stop()
        self.tick()
        if self.publisher is not None:
            self.publisher.stop()
        now = self.clock.wall()
        try:
            self.writer.call(lambda j: j.set_meta("alive_until_utc", repr(now)))
        except Exception as exc:  # noqa: BLE001 - a full disk: the last alive mark (10 s old) stands
            log.warning("could not record the stop time: %s", exc)
        self.writer.stop()

    # -- the loop --------------------------------------------------------------------

    def tick(self) -> None:
        """One turn: bins, publishing, liveness, status file, watchdog."""
        now = self.clock.wall()
        assert self.binner is not None and self.outbox is not None and self.publisher is not None
        assert self.summaries is not None
        self.writer.retry_held()
        queued = self._derive(now)
        try:
            backlog = self.writer.call(lambda j: self.outbox.backlog())
        except Exception as exc:  # noqa: BLE001 - a read; status says the journal is unwell
            self._log.log("backlog", logging.ERROR, "outbox backlog unreadable: %s", exc)
            backlog = -1
        full = backlog >= self.cfg.storage.outbox_max_messages
        self.health.set("outbox", not full, f"{backlog} queued" + (" (FULL: counts kept in journal)" if full else ""))
        mono = self.clock.monotonic()
        if mono - self._last_alive >= ALIVE_EVERY_S:
            self._last_alive = mono
            try:
                self.writer.call(lambda j: j.set_meta("alive_until_utc", repr(now)))
            except Exception:
                pass
        if mono - self._last_prune >= 3600:
            self._last_prune = mono
            keep = now - self.cfg.storage.keep_sent_days * 86400
            try:
                self.writer.call(lambda j: _in_tx(j, lambda: self.outbox.prune(keep)))
            except Exception as exc:  # noqa: BLE001 - a full disk: prune next hour
                self._log.log("prune", logging.WARNING, "outbox prune failed: %s", exc)
        self.publisher.pump()
        loop_ok = self.publisher.loop_alive()
        self.health.set("mqtt_loop", loop_ok, "running" if loop_ok else "paho's network thread ended: restart needed")
        self._write_status(backlog)
        if self.health.vital_ok():
            notify("WATCHDOG=1")
        held = self.writer.held_in_memory
        if held:  # the alarm a full disk cannot journal: `systemctl status` shows it
            notify(f"STATUS=disk full: {held} crossings held in memory")
        if queued:
            log.debug("queued %d bin messages", queued)

    def _derive(self, now: float) -> int:
        """Bins, then day summaries, each in its own transaction: a summary that fails never
        rolls back bins. Repeated binning failures (not a full disk) mark the binner wedged."""
        assert self.binner is not None and self.summaries is not None

        def bins(j: Journal) -> int:
            self.fuser.tick(j.conn, now)  # fused crossings first: the bins below count them
            return self.binner.tick(now)

        queued = 0
        try:
            queued = self.writer.call(lambda j: _in_tx(j, lambda: bins(j)))
            self._binning_failures = 0
            self.health.set("journal", True, str(self.cfg.storage.journal_path))
            disk = self.health.snapshot().get("disk")
            if disk is not None and not disk.ok and not self.writer.held_in_memory:
                self.health.set("disk", True, "")
            self.health.set("binner", True, "binning")
            for component, verdict in self.fuser.verdicts(now).items():
                self.health.set(component, verdict.ok, verdict.detail)
        except Exception as exc:  # full disk etc.: counting goes on in memory
            self._log.log("binning", logging.ERROR, "binning failed: %s: %s", type(exc).__name__, exc)
            self.fuser.reset()  # its fused rows were rolled back with the bins: re-derive them
            full = _is_full(exc)
            if full:  # waiting on space a restart cannot make: the watchdog stays fed
                self.health.set("disk", False, "disk_full")
            self.health.set("journal", True, f"binning waits for disk space: {exc}" if full else f"binning failed: {exc}")
            self._binning_failures = 0 if full else self._binning_failures + 1
            if self._binning_failures >= BINNER_FAILURES_BEFORE_STOP:
                self.health.set("binner", False, f"wedged: {self._binning_failures} ticks failed: {exc}")
            return 0
        try:
            queued += self.writer.call(lambda j: _in_tx(j, lambda: self.summaries.tick(now)))
        except Exception as exc:  # noqa: BLE001 - bins above are committed; summaries retry next tick
            self._log.log("summaries", logging.ERROR, "day summaries failed: %s: %s", type(exc).__name__, exc)
        return queued

    def _write_status(self, backlog: int) -> None:
        status = build_status(self, backlog)
        path = self.cfg.storage.status_path
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(status, indent=1))
            os.replace(tmp, path)
        except OSError as exc:  # a full disk: the loop (and counting) goes on
            self._log.log("status", logging.WARNING, "cannot write %s: %s", path, exc)

    def run_forever(self, period_s: float = 1.0) -> None:
        def _stop(*_: object) -> None:
            self.stopping.set()
            if self.publisher is not None:
                self.publisher.wake.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.start()
        assert self.publisher is not None
        wake = self.publisher.wake
        next_tick = 0.0
        try:
            while not self.stopping.is_set():
                mono = self.clock.monotonic()
                try:
                    if mono >= next_tick:
                        next_tick = mono + period_s
                        self.tick()
                    else:
                        self.publisher.pump()  # woken by PUBACKs: keep the window full while draining
                except Exception as exc:  # noqa: BLE001 - one bad turn must not end the agent; a turn
                    # that fails every time never feeds the watchdog (it is fed at a tick's end)
                    self._log.log("tick", logging.ERROR, "agent loop turn failed: %s: %s", type(exc).__name__, exc)
                wake.wait(max(0.0, next_tick - self.clock.monotonic()))
                wake.clear()
        finally:
            notify("STOPPING=1")
            self.stop()


def _is_full(exc: BaseException) -> bool:
    from edge.journal import JournalFullError, is_disk_full

    return isinstance(exc, JournalFullError) or is_disk_full(exc)


def state_path(cfg: AgentConfig) -> Path:
    return cfg.storage.status_path


def _still_starting(why: str) -> None:
    """Starting takes longer (a full disk is waited out): tell systemd, so that its start
    timeout does not kill and restart us into the same wait (a restart frees no space)."""
    notify(f"EXTEND_TIMEOUT_USEC=30000000\nSTATUS={why}")
