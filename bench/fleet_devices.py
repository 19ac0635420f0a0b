"""Simulated devices for the fleet bench, run in worker processes of at most ~125 devices
each (paho's network loop uses select(), which cannot watch descriptors above 1024, and a
device holds about six).

Each device keeps the real publishing path: its own SQLite journal, the agent's `Binner`,
`Outbox`, `JournalWriter` and `Publisher` (QoS 1, a row counts as sent at its PUBACK). The
index's replay requests (cmd/replay) are answered by the Publisher's own command handling,
as on a device: it re-queues the kept messages, which go out behind fresh ones. At the end
of the simulated clock each device queues its day summaries (`edge.summaries.Summaries`),
as the agent does after a day closes: the summary's sequence number also tells the index
of any lost bins before it (a lost tail is otherwise invisible until the next message).

Lighter than the agent: no beam source, camera or health loop; crossings drawn at random
(seeded per device), added to the journal up front; one thread ticks the binners when a
simulated minute closes, one thread pumps the publishers that have something to do (a
PUBACK, a connect, a command, a closed bin), with a full pass every few seconds.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

PREFIX = "footfall/v1"
ZONE = ZoneInfo("Asia/Shanghai")


@dataclass
class SimDevice:
    name: str
    site: str
    writer: Any
    outbox: Any
    binner: Any
    publisher: Any
    summaries: Any
    truth_in: int = 0
    truth_out: int = 0
    closed: dict[int, float] = field(default_factory=dict)  # seq -> real time its tick returned
    last_seq: int = 0
    replays: list[tuple[float, int, int, int]] = field(default_factory=list)  # (time, first, last, re-queued)
    dirty: bool = False

    def _queue(self, work: Callable[[Any], None]) -> int:
        """Run `work` in one journal transaction and note the outbox rows it queued (their
        real queue time is the latency's start)."""
        def step(j: Any) -> list[int]:
            with j.transaction():
                work(j)
            return [r[0] for r in j.conn.execute("SELECT seq FROM outbox WHERE epoch = 1 AND seq > ?", (self.last_seq,))]

        new = self.writer.call(step)
        now = time.time()
        for seq in new:
            self.closed[seq] = now
        self.last_seq = max(new, default=self.last_seq)
        self.dirty = self.dirty or bool(new)
        return len(new)

    def tick(self, sim_now: float) -> int:
        return self._queue(lambda j: self.binner.tick(sim_now, max_bins=100_000))

    def queue_summaries(self, sim_start: float, sim_end: float) -> int:
        """The day summaries of every local date the clock covered (after the bins)."""
        days = sorted({datetime.fromtimestamp(t, ZONE).date() for t in (sim_start, sim_end - 1)})

        def work(j: Any) -> None:
            for day in days:
                self.summaries.queue(day, sim_end, "request")

        return self._queue(work)

    def truth(self) -> dict[str, Any]:
        """What the device queued: per bin start its highest revision and counts (the index
        must hold exactly these), and its summaries' payloads."""
        def read(j: Any) -> tuple[list, list]:
            bins = j.conn.execute("SELECT payload FROM outbox WHERE epoch = 1 AND topic LIKE '%/bins' ORDER BY seq").fetchall()
            sums = j.conn.execute("SELECT payload FROM outbox WHERE epoch = 1 AND topic LIKE '%/summary' ORDER BY seq").fetchall()
            return bins, sums

        import json

        bins, sums = self.writer.call(read)
        best: dict[str, tuple[int, int, int]] = {}
        for (p,) in bins:
            b = json.loads(p)
            start = b["bin"]["start_utc"]
            if start not in best or b["revision"] > best[start][0]:
                best[start] = (b["revision"], b["total"]["in"], b["total"]["out"])
        return {"bins": len(best), "revisions": sum(v[0] for v in best.values()), "in": sum(v[1] for v in best.values()),
                "out": sum(v[2] for v in best.values()), "summaries": [json.loads(p) for (p,) in sums]}


def make_device(workdir: Path, i: int, port: int, sim_start: float, sim_end: float, seed: int) -> SimDevice:
    from contract.day_summary import SiteProfile
    from contract.occupancy import OccupancyRule, OpeningHours
    from edge.bins import Binner, BinPolicy
    from edge.config import MqttSettings
    from edge.crossing import Crossing
    from edge.health import Health
    from edge.journal_writer import JournalWriter
    from edge.outbox import Outbox
    from edge.publisher import Publisher
    from edge.summaries import Summaries

    rng = random.Random(seed * 1_000_003 + i)
    name, site = f"dev-{i:05d}", f"site-{i // 2:05d}"  # two doors per site
    topic = f"{PREFIX}/{site}/{name}/bins"
    writer = JournalWriter.open(workdir / f"{name}.db")
    policy = BinPolicy(1, ZONE, "beam", "04:00", ("door-1",), OccupancyRule("snap", 60, OpeningHours.from_mapping({})))

    def boot(j: Any) -> tuple[Any, Any, Any]:
        j.conn.execute("PRAGMA synchronous=OFF")  # a bench of the wire and the index, not of device fsyncs
        outbox = Outbox(j.conn, 1, 1_000_000)
        binner = Binner(j.conn, outbox, policy, topic, {"device": name, "site": site})
        summaries = Summaries(binner, outbox, SiteProfile(), f"{PREFIX}/{site}/{name}/summary")
        with j.transaction():
            binner.start_at(sim_start)
        return outbox, binner, summaries

    outbox, binner, summaries = writer.call(boot)
    n = rng.randint(10, 40) * max(1, round((sim_end - sim_start) / 3600))
    crossings = [Crossing(rng.uniform(sim_start, sim_end - 1), "door-1", rng.choice(("in", "out")), "beam", 1.0, f"{name}:{k}")
                 for k in range(n)]
    writer.call(lambda j: j.add_crossings(crossings))
    settings = MqttSettings(host="127.0.0.1", port=port, tls=False, protocol="5", username=name)
    pub = Publisher(settings, name, site, 1, writer, outbox, Health(time.time), time.time, historical_after_s=120)
    n_in = sum(c.direction == "in" for c in crossings)
    dev = SimDevice(name, site, writer, outbox, binner, pub, summaries, truth_in=n_in, truth_out=len(crossings) - n_in)

    real_replay = pub.commands["replay"]

    def replay(req: dict[str, Any]) -> None:  # the Publisher's own handler, counted
        before = writer.call(lambda j: outbox.backlog())
        real_replay(req)
        after = writer.call(lambda j: outbox.backlog())
        dev.replays.append((time.time(), int(req["from_seq"]), int(req["to_seq"]), after - before))

    pub.commands["replay"] = replay
    pub.start()
    return dev


def worker(ctl: Connection, first: int, count: int, port: int, workdir: str, sim_start: float, sim_end: float,
           seed: int, summaries: bool) -> None:
    """One harness process: build `count` devices, report ready, run the clock from the t0
    and speed the bench sends, then pump until told to stop; send the results back."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s worker %(levelname)s %(name)s: %(message)s")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    fleet = [make_device(work, i, port, sim_start, sim_end, seed) for i in range(first, first + count)]
    deadline = time.time() + 60
    while time.time() < deadline and not all(d.publisher.connected for d in fleet):
        time.sleep(0.1)
    ctl.send(("ready", sum(d.publisher.connected for d in fleet)))
    _, t0, speed = ctl.recv()
    done = threading.Event()
    pumps = [0]

    def pump() -> None:  # the agents' publishing loops: one thread for this process's devices
        last_full = time.monotonic()
        while not done.is_set():
            full = time.monotonic() - last_full > 3.0
            if full:
                last_full = time.monotonic()
            for d in fleet:
                if full or d.dirty or d.publisher.wake.is_set():
                    d.publisher.wake.clear()
                    d.dirty = False
                    try:
                        d.publisher.pump()
                        pumps[0] += 1
                    except Exception as exc:  # noqa: BLE001 - a journal error: retried next pass
                        logging.warning("%s: pump failed: %s", d.name, exc)
            done.wait(0.05)

    pumper = threading.Thread(target=pump, daemon=True, name="pump")
    pumper.start()
    minute = int(sim_start // 60)
    end_minute = int(sim_end // 60)
    while minute < end_minute:
        nxt = minute + 1  # the next minute boundary, on the simulated clock
        wait = t0 + (nxt * 60 - sim_start) / speed - time.time()
        if ctl.poll(max(0.0, wait)):
            _serve(ctl, fleet)
            continue
        minute = min(end_minute, int((sim_start + (time.time() - t0) * speed) // 60))
        for d in fleet:
            d.tick(minute * 60.0)
    queued_summaries = sum(d.queue_summaries(sim_start, sim_end) for d in fleet) if summaries else 0
    ctl.send(("clock_done", queued_summaries))
    while True:
        msg = ctl.recv()
        if msg[0] == "stop":
            break
        _serve(ctl, fleet, msg)
    done.set()
    pumper.join(10)
    for d in fleet:
        d.publisher.stop()
    result = []
    for d in fleet:
        truth = d.truth()
        result.append({"name": d.name, "site": d.site, "last_seq": d.last_seq, "truth_in": d.truth_in,
                       "truth_out": d.truth_out, "closed": [d.closed.get(s, 0.0) for s in range(1, d.last_seq + 1)],
                       "replays": d.replays, "sent": d.publisher.sent_count, **truth})
    for d in fleet:
        d.writer.stop()
    ctl.send(("result", result, pumps[0]))
    ctl.close()


def _serve(ctl: Connection, fleet: list[SimDevice], msg: tuple | None = None) -> None:
    """Answer the bench's status question while the clock runs or after."""
    msg = msg or ctl.recv()
    if msg[0] == "status":
        backlog = sum(d.writer.call(lambda j, d=d: d.outbox.backlog()) + d.publisher.inflight() for d in fleet)
        ctl.send(("status", backlog, sum(d.publisher.connected for d in fleet), {d.name: d.last_seq for d in fleet}))
