"""Fleet harness: N simulated devices publishing 1-minute bins on a compressed clock through a
real Mosquitto to several `footfall index run` instances sharing one PostgreSQL.

Each device is a lighter harness than the whole agent that keeps the real publishing path:
its own journal (SQLite), the agent's Binner, Outbox, JournalWriter and Publisher (paho,
QoS 1, PUBACK before a row counts as sent), ticked on a compressed clock (`--speed`
simulated seconds per real second); no beam source, camera or day summaries. Crossings
are drawn at random (the seed is printed). The consumers are separate processes, one MQTT 5
shared-subscription group, each with its own client id and connection to the store.

Measured: messages stored per second (first to last stored row), latency from the tick that
closed a bin (real time, at the device) to its stored row (the consumer's receive time),
the consumers' and the broker's CPU; checked: every message once, every device's bins all
there (0 lost, 0 doubled). `python -m bench.fleet --devices 50 --hours 1`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from contract.occupancy import OccupancyRule, OpeningHours
from edge.bins import Binner, BinPolicy
from edge.config import MqttSettings
from edge.crossing import Crossing
from edge.health import Health
from edge.journal_writer import JournalWriter
from edge.outbox import Outbox
from edge.publisher import Publisher
from simulator.local_broker import Broker

PREFIX = "footfall/v1"
ZONE = ZoneInfo("Asia/Shanghai")
PG_SERVER = "postgresql://127.0.0.1:5432/test"


@dataclass
class SimDevice:
    """One device's journal, binner, outbox and publisher; `closed` maps seq -> the real time
    the tick that queued it returned."""

    name: str
    site: str
    writer: JournalWriter
    outbox: Outbox
    binner: Binner
    publisher: Publisher
    truth_in: int = 0  # entries drawn for this device
    closed: dict[int, float] = field(default_factory=dict)
    last_seq: int = 0

    def tick(self, sim_now: float) -> None:
        def step(j) -> list[int]:  # noqa: ANN001 - the writer's Journal
            with j.transaction():
                self.binner.tick(sim_now, max_bins=100_000)
            return [r[0] for r in j.conn.execute("SELECT seq FROM outbox WHERE epoch = 1 AND seq > ?", (self.last_seq,))]

        new = self.writer.call(step)
        now = time.time()
        for seq in new:
            self.closed[seq] = now
        self.last_seq = max(new, default=self.last_seq)

    def drained(self) -> bool:
        return self.writer.call(lambda j: self.outbox.backlog()) == 0 and self.publisher.inflight() == 0


def make_device(workdir: Path, i: int, port: int, sim_start: float, sim_end: float, rng: random.Random) -> SimDevice:
    name, site = f"dev-{i:05d}", f"site-{i // 2:05d}"  # two doors per site
    topic = f"{PREFIX}/{site}/{name}/bins"
    writer = JournalWriter.open(workdir / f"{name}.db")
    policy = BinPolicy(1, ZONE, "beam", "04:00", ("door-1",), OccupancyRule("snap", 60, OpeningHours.from_mapping({})))

    def boot(j) -> tuple[Outbox, Binner]:  # noqa: ANN001
        j.conn.execute("PRAGMA synchronous=OFF")  # a bench of the wire and the index, not of device fsyncs
        outbox = Outbox(j.conn, 1, 1_000_000)
        binner = Binner(j.conn, outbox, policy, topic, {"device": name, "site": site})
        with j.transaction():
            binner.start_at(sim_start)
        return outbox, binner

    outbox, binner = writer.call(boot)
    n = rng.randint(10, 40) * max(1, round((sim_end - sim_start) / 3600))
    crossings = [Crossing(rng.uniform(sim_start, sim_end - 1), "door-1", rng.choice(("in", "out")), "beam", 1.0, f"{name}:{k}")
                 for k in range(n)]
    writer.call(lambda j: j.add_crossings(crossings))
    settings = MqttSettings(host="127.0.0.1", port=port, tls=False, protocol="5", username=name)
    pub = Publisher(settings, name, site, 1, writer, outbox, Health(time.time), time.time, historical_after_s=120)
    pub.start()
    return SimDevice(name, site, writer, outbox, binner, pub, truth_in=sum(c.direction == "in" for c in crossings))


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_consumer(db: str, port: int, i: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-c", "import sys; from edge.cli import main; sys.exit(main(sys.argv[1:]))", "index", "run",
           "--db", db, "--host", "127.0.0.1", "--port", str(port), "--no-tls", "--client-id", f"index-{i}",
           "--group", "index"]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run(devices: int = 50, hours: float = 1.0, speed: float = 360.0, instances: int = 2, db: str | None = None,
        seed: int | None = None, timeout_s: float = 600.0) -> dict:
    """One fleet run; returns the figures and the invariant's counts."""
    import psycopg

    seed = random.randrange(2**32) if seed is None else seed
    print(f"fleet seed {seed}", flush=True)
    rng = random.Random(seed)
    schema = None
    if db is None:  # a fresh schema of the local server, dropped at the end
        schema = f"fleet_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_SERVER, autocommit=True) as c:
            c.execute(f"CREATE SCHEMA {schema}")
        db = f"{PG_SERVER}?options=-csearch_path%3D{schema}"
    day = int(time.time() // 86400) * 86400 - 2 * 86400  # two days ago, UTC midnight: within intake's window
    sim_start, sim_end = float(day), day + hours * 3600.0
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker")
        broker.extra_conf = "max_queued_messages 1000000\nallow_anonymous true"
        broker.start()
        broker_pid = broker.proc.pid
        consumers = [start_consumer(db, broker.port, i, work / f"index-{i}.log") for i in range(instances)]
        fleet: list[SimDevice] = []
        try:
            time.sleep(2.0)  # the consumers subscribe before the devices publish
            fleet = [make_device(work, i, broker.port, sim_start, sim_end, rng) for i in range(devices)]
            cpu0 = {pid: cpu_s(pid) for pid in [*(p.pid for p in consumers), broker_pid]}
            t0 = time.time()
            done = threading.Event()

            def pump() -> None:  # the agents' publishing loops, one thread for the fleet
                while not done.is_set():
                    for d in fleet:
                        d.publisher.pump()
                    time.sleep(0.02)

            pumper = threading.Thread(target=pump, daemon=True)
            pumper.start()
            sim_now = sim_start
            while sim_now < sim_end:
                sim_now = min(sim_end, sim_start + (time.time() - t0) * speed)
                for d in fleet:
                    d.tick(sim_now)
                time.sleep(0.05)
            expected = sum(d.last_seq for d in fleet)
            store = psycopg.connect(db, autocommit=True)
            deadline = time.time() + timeout_s
            stored = 0
            while time.time() < deadline:
                (stored,) = store.execute("SELECT COUNT(*) FROM messages").fetchone()
                if stored >= expected and all(d.drained() for d in fleet):
                    break
                time.sleep(0.5)
            t_end = time.time()
            backlog = sum(d.writer.call(lambda j, d=d: d.outbox.backlog()) for d in fleet)
            connected = sum(d.publisher.connected for d in fleet)
            done.set()
            pumper.join(5)
            cpu = {pid: cpu_s(pid) - c for pid, c in cpu0.items()}
            rows = store.execute("SELECT device, seq, received_utc FROM messages").fetchall()
            per_device = dict(store.execute("SELECT device, COUNT(*) FROM bins GROUP BY device").fetchall())
            n_bins, stored_in = store.execute("SELECT COUNT(*), COALESCE(SUM(visits_in), 0) FROM bins").fetchone()
            store.close()
        finally:
            for d in fleet:
                d.publisher.stop()
                d.writer.stop()
            for p in consumers:
                p.terminate()
            for p in consumers:
                p.wait(10)
            broker.stop()
            if schema:
                with psycopg.connect(PG_SERVER, autocommit=True) as c:
                    c.execute(f"DROP SCHEMA {schema} CASCADE")
    closed = {(d.name, seq): t for d in fleet for seq, t in d.closed.items()}
    latency = [received - closed[(dev, seq)] for dev, seq, received in rows if (dev, seq) in closed]
    received = sorted(r[2] for r in rows)
    span = received[-1] - received[0] if len(received) > 1 else float("nan")
    minutes = round(hours * 60)
    return {
        "seed": seed, "devices": devices, "simulated_hours": hours, "speed": speed, "instances": instances,
        "expected_messages": expected, "stored_messages": len(rows),
        "missing": expected - len(rows), "still_queued_at_devices": backlog, "devices_connected_at_end": connected, "expected_bins": devices * minutes, "bins_rows": n_bins,
        "truth_in": sum(d.truth_in for d in fleet), "stored_in": int(stored_in),
        "devices_with_all_bins": sum(1 for d in fleet if per_device.get(d.name) == minutes),
        "throughput_msg_s": round(len(rows) / span, 1) if span == span and span > 0 else None,
        "latency_p50_s": round(percentile(latency, 0.5), 3) if latency else None,
        "latency_p99_s": round(percentile(latency, 0.99), 3) if latency else None,
        "wall_s": round(t_end - t0, 1),
        "cpu_share": {"consumers": round(sum(cpu[p.pid] for p in consumers) / (t_end - t0), 3),
                      "broker": round(cpu[broker_pid] / (t_end - t0), 3)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--hours", type=float, default=1.0, help="simulated hours of 1-minute bins (default 1)")
    ap.add_argument("--speed", type=float, default=360.0, help="simulated seconds per real second (default 360)")
    ap.add_argument("--instances", type=int, default=2, help="consumer instances sharing the subscription (default 2)")
    ap.add_argument("--db", help="PostgreSQL URL (default: a fresh schema of postgresql://127.0.0.1:5432/test, dropped after)")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the last message after the clock ends")
    args = ap.parse_args(argv)
    out = run(args.devices, args.hours, args.speed, args.instances, args.db, args.seed, args.timeout)
    print(json.dumps(out, indent=1))
    ok = out["missing"] == 0 and out["truth_in"] == out["stored_in"] and out["bins_rows"] == out["expected_bins"] and out["devices_with_all_bins"] == out["devices"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
