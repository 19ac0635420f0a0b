"""Simulated days at one door, run through the device's real binner, summaries and outbox
(a real SQLite journal), and handed to the reference consumer's store as the broker would.

Visitors arrive during opening hours at a rate that peaks mid-morning and mid-afternoon,
stay 5-90 minutes and leave; a share of exits is missed (a beam undercount), which is what
the drift rule exists for.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time as dtime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from edge.bins import Binner, BinPolicy
from edge.crossing import Crossing
from contract.day_summary import SiteProfile
from index_system.consumer import IndexStore
from edge.journal import Journal
from contract.occupancy import OccupancyRule, OpeningHours
from edge.outbox import Outbox
from edge.summaries import Summaries

PREFIX = "footfall/v1"
HOURS = {d: "08:00-20:00" for d in ("mon", "tue", "wed", "thu", "fri")} | {"sat": "09:00-17:00", "sun": "09:00-17:00"}


def visitors(day: date, zone: ZoneInfo, rng: random.Random, n: int, missed_exits: float = 0.03,
             hours: OpeningHours | None = None, tag: str = "") -> list[Crossing]:
    """n visitors on a local day: an entry, and (unless missed) an exit before closing."""
    hours = hours or OpeningHours.from_mapping(HOURS)
    spans = hours.week[day.weekday()]
    out: list[Crossing] = []
    for i in range(n):
        a, b = spans[rng.randrange(len(spans))]
        minute = rng.triangular(a, b - 10, a + (b - a) * rng.choice([0.3, 0.7]))
        local_in = datetime.combine(day, dtime(int(minute // 60), int(minute % 60), int(minute * 60 % 60)), zone)
        t_in = local_in.timestamp()
        out.append(Crossing(t_in, "door-1", "in", "beam", 1.0, f"{tag}{day}:{i}:in"))
        if rng.random() >= missed_exits:
            t_out = min(t_in + rng.uniform(5, 90) * 60, datetime.combine(day, dtime(0), zone).timestamp() + b * 60 - 1)
            out.append(Crossing(max(t_out, t_in + 1), "door-1", "out", "beam", 1.0, f"{tag}{day}:{i}:out"))
    return out


@dataclass
class Device:
    """One device's journal, binner, summaries and outbox, ticked in virtual time."""

    path: Path
    zone: ZoneInfo
    start_utc: float
    minutes: int = 15
    rebase: str = "04:00"
    rule: OccupancyRule = field(default_factory=lambda: OccupancyRule("snap", 60, OpeningHours.from_mapping(HOURS)))
    capacity: int | None = 40
    residents: int | None = None
    device: str = "dev-a"
    site: str = "site-1"

    def __post_init__(self) -> None:
        self.journal = Journal(self.path)
        # These tests are about figures, not power cuts (tests/test_agent_kill.py is): skip the fsyncs.
        self.journal.conn.execute("PRAGMA synchronous=OFF")
        self.outbox = Outbox(self.journal.conn, epoch=1, max_messages=1_000_000)
        policy = BinPolicy(self.minutes, self.zone, "beam", self.rebase, ("door-1",), self.rule)
        header = {"device": self.device, "site": self.site}
        self.binner = Binner(self.journal.conn, self.outbox, policy, self.topic("bins"), header)
        self.profile = SiteProfile(self.capacity, self.rule.hours, self.residents)
        with self.journal.transaction():
            self.outbox.enqueue(self.topic("birth"), self.birth(), self.start_utc, retain=True)
            self.binner.start_at(self.start_utc)
            self.journal.conn.execute("INSERT INTO meta(key, value) SELECT 'bins_first_start_utc', value FROM meta"
                                      " WHERE key = 'bins_next_start_utc'")
            self.summaries = Summaries(self.binner, self.outbox, self.profile, self.topic("summary"))
        self.now = self.start_utc

    def topic(self, kind: str) -> str:
        return f"{PREFIX}/{self.site}/{self.device}/{kind}"

    def birth(self) -> dict:
        return {"schema": "footfall.birth/1", "device": self.device, "site": self.site, "boot_utc": self.start_utc,
                "versions": {"footfall": "test"}, "config_hash": "0" * 16, "bin_minutes": self.minutes,
                "timezone": self.zone.key, "declared_accuracy": None, "site_profile": self.profile.as_json()}

    def run_until(self, t_utc: float, step_s: float = 3600.0) -> None:
        """Tick the binner and the summaries as the agent does, up to t_utc."""
        while self.now < t_utc:
            self.now = min(t_utc, self.now + step_s)
            with self.journal.transaction():
                self.binner.tick(self.now, max_bins=100_000)
                self.summaries.tick(self.now)

    def messages(self, kind: str | None = None) -> list[tuple[str, dict]]:
        rows = self.journal.conn.execute("SELECT topic, payload FROM outbox ORDER BY id").fetchall()
        return [(t, json.loads(p)) for t, p in rows if kind is None or t.endswith("/" + kind)]

    def summaries_sent(self) -> dict[str, dict]:
        """The highest revision of each day's summary the device queued."""
        out: dict[str, dict] = {}
        for _, s in self.messages("summary"):
            if s["date"] not in out or s["revision"] >= out[s["date"]]["revision"]:
                out[s["date"]] = s
        return out

    def truth_in_per_day(self) -> Counter:
        c: Counter = Counter()
        for (t,) in self.journal.conn.execute("SELECT t_utc FROM crossings WHERE direction = 'in' AND source = 'beam'"):
            c[datetime.fromtimestamp(t, self.zone).date().isoformat()] += 1
        return c


def fast_store(path: Path) -> IndexStore:
    """The consumer's store without fsync per message (durability is not what these tests check)."""
    store = IndexStore(path)
    store.conn.execute("PRAGMA synchronous=OFF")
    return store


def morning_outbox(tmp_path: Path, seed: int, n: int, hours: float) -> list[tuple[str, str, int]]:
    """dev-a's queued messages (birth, bins) after `hours` of a day with `n` visitors, as the
    journal holds them: (topic, payload, seq)."""
    zone = ZoneInfo("Asia/Shanghai")
    day = date(2026, 6, 1)
    dev = Device(tmp_path / "dev.db", zone, local_midnight(day, zone))
    dev.journal.add_crossings(visitors(day, zone, random.Random(seed), n))
    dev.run_until(local_midnight(day, zone) + hours * 3600)
    return dev.journal.conn.execute("SELECT topic, payload, seq FROM outbox ORDER BY seq").fetchall()


def deliver(dev: Device, store: IndexStore, duplicate_every: int = 0) -> dict[str, int]:
    """Hand every queued message to the consumer's store (optionally some twice, as after a lost PUBACK)."""
    results: Counter = Counter()
    for i, (topic, body) in enumerate(dev.messages()):
        raw = json.dumps(body).encode()
        results[store.ingest(topic, raw, PREFIX, dev.now)] += 1
        if duplicate_every and i % duplicate_every == 0:
            results[store.ingest(topic, raw, PREFIX, dev.now)] += 1
    return dict(results)


ENVELOPE = ("schema", "device", "site", "epoch", "seq", "historical", "revision", "trigger")


def figures(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ENVELOPE}


def local_midnight(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, dtime(0), zone).timestamp()


def days(first: date, n: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(n)]
