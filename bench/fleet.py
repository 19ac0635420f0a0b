"""Fleet bench: N simulated devices publishing 1-minute bins on a compressed clock to two
district Mosquitto brokers, bridged over TLS (broker/make-district-bridge.py's
configuration) to a central Mosquitto, where two `footfall index run` instances (one MQTT 5
shared-subscription group) store into one PostgreSQL; with `--faults`, while events are in
flight: a district broker SIGKILLed and restarted, a bridge link cut for ten simulated
minutes, a consumer instance SIGKILLed and restarted, PostgreSQL restarted.

The devices (bench/fleet_devices.py) run in worker processes of at most `--per-worker`
devices, each with the agent's real journal, binner, outbox, publisher and replay handling;
the brokers, the link proxies and the PostgreSQL cluster of the bench's own are in
bench/fleet_topology.py.

Checked at the end, the index's invariant: every device's messages stored once each (seq
1..last, none missing), every bin once at its highest revision with the device's counts,
the visits equal to the drawn crossings, each day summary received equal to the one
recomputed from the stored bins. The bench waits until that holds or `--timeout` passes.
Measured: stored messages per second, latency from the tick that closed a bin to its
stored row, CPU and peak RSS of each part, messages recovered by replay.

    python -m bench.fleet --devices 200 --hours 1 --speed 60 --faults
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Callable

from bench.fleet_devices import worker
from bench.fleet_topology import PgCluster, Topology, kill, proc_stats, start_consumer

DISTRICTS = ("district-a", "district-b")


def percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


@dataclass
class Fault:
    at_min: float  # simulated minutes after the clock's start
    what: str
    act: Callable[[], None]
    done: bool = False


class Meter:
    """CPU seconds and peak RSS per role, sampled from /proc; survives restarts (a new pid
    starts from its own zero)."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, int], float] = {}
        self.cpu: dict[str, float] = {}
        self.rss: dict[str, int] = {}

    def sample(self, roles: dict[str, list[int]], count: bool = True) -> None:
        for role, pids in roles.items():
            for pid in pids:
                cpu, rss = proc_stats(pid)
                if rss == 0:
                    continue
                prev = self.last.get((role, pid))
                if count and prev is not None:
                    self.cpu[role] = self.cpu.get(role, 0.0) + max(0.0, cpu - prev)
                elif count and prev is None:
                    self.cpu.setdefault(role, 0.0)
                self.last[(role, pid)] = cpu
                self.rss[role] = max(self.rss.get(role, 0), rss)


def run(devices: int = 50, hours: float = 1.0, speed: float = 360.0, faults: bool = False, seed: int | None = None,
        per_worker: int = 125, timeout_s: float = 300.0, replay_after_s: float = 10.0, summaries: bool = True,
        pg_restart_mode: str = "fast", workdir: str | None = None,
        keep: bool = False, synchronous_commit: str = "on", link_proxy: bool = True) -> dict[str, Any]:
    """One fleet run; returns the figures and the invariant's counts (printed as it goes)."""
    import psycopg

    seed = random.randrange(2**32) if seed is None else seed
    say = lambda *a: print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)  # noqa: E731
    say(f"fleet seed {seed}: {devices} devices, {hours} simulated h at {speed}x, faults {'on' if faults else 'off'}")
    day = int(time.time() // 86400) * 86400 - 2 * 86400  # two days ago, UTC midnight: within intake's window
    sim_start, sim_end = float(day), day + hours * 3600.0
    minutes = round(hours * 60)
    work = Path(tempfile.mkdtemp(prefix="fleet-", dir=workdir))
    say(f"work dir {work}")
    pg = PgCluster(work / "pg")
    topo = Topology(work / "brokers")
    consumers: dict[str, Any] = {}
    procs: list[Any] = []
    pipes: list[Any] = []
    meter = Meter()
    events: list[str] = []
    try:
        pg.start()
        # the consumers' store URL: synchronous_commit per session (fsync stays on). "off" lets
        # a commit return before its WAL flush: a PostgreSQL crash may lose the last ~0.2-0.6 s
        # of acknowledged rows, which the gap detection then asks the devices to replay.
        db = pg.url + ("" if synchronous_commit == "on" else "?options=-csynchronous_commit%3Doff")
        say(f"store {db} (fsync on, synchronous_commit {synchronous_commit})")
        topo.start(proxy=link_proxy)
        logs = work / "logs"
        logs.mkdir()
        for user in ("index", "index-2"):
            consumers[user] = start_consumer(topo, db, user, logs / f"{user}.log", replay_after_s)
        n_workers = max(2, math.ceil(devices / per_worker))
        n_workers += n_workers % 2  # as many per district
        chunk = math.ceil(devices / n_workers)
        ctx = mp.get_context("spawn")
        first = 0
        for w in range(n_workers):
            count = min(chunk, devices - first)
            if count <= 0:
                break
            district = DISTRICTS[w % 2]
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker, args=(child, first, count, topo.district_brokers[district].port,
                                                 str(work / "devices" / f"w{w}"), sim_start, sim_end, seed, summaries),
                            daemon=True, name=f"fleet-w{w}")
            p.start()
            procs.append(p)
            pipes.append(parent)
            first += count
        connected = sum(pipe.recv()[1] for pipe in pipes)
        say(f"{len(procs)} harness processes, {connected}/{devices} devices connected to their district brokers")

        def roles() -> dict[str, list[int]]:
            r = {f"broker {d}": [b.proc.pid] for d, b in topo.district_brokers.items() if b.proc}
            r["broker central"] = [topo.central.proc.pid] if topo.central and topo.central.proc else []
            r.update({f"consumer {u}": [c.pid] for u, c in consumers.items() if c.poll() is None})
            r["postgresql"] = pg.pids()
            r["harness"] = [p.pid for p in procs if p.is_alive()]
            return r

        meter.sample(roles(), count=False)
        t0 = time.time() + 0.5
        for pipe in pipes:
            pipe.send(("go", t0, speed))
        sim_min = lambda: (time.time() - t0) * speed / 60.0  # noqa: E731

        plan: list[Fault] = []
        if faults:
            m = minutes

            def log_event(text: str) -> None:
                line = f"sim minute {sim_min():7.1f} (real +{time.time() - t0:6.1f} s): {text}"
                events.append(line)
                say(line)

            def restart_pg() -> None:
                took = pg.restart(pg_restart_mode)
                log_event(f"PostgreSQL restarted ({pg_restart_mode}) in {took:.2f} s")

            a, b = DISTRICTS
            down = max(2.0, 3.0 * speed / 60)  # 2 simulated minutes, at least 3 s real
            back = min(30.0, 0.1 * m)
            plan = [
                Fault(0.20 * m, f"SIGKILL broker {a}", lambda: topo.kill_district(a)),
                Fault(0.20 * m + down, f"restart broker {a}", lambda: topo.restart_district(a)),
                Fault(0.35 * m, f"cut the bridge link {b} -> central", lambda: topo.proxies[b].cut()),
                Fault(0.35 * m + 10, f"restore the bridge link {b} -> central", lambda: topo.proxies[b].restore()),
                Fault(0.50 * m, "SIGKILL consumer index-2", lambda: kill_consumer("index-2")),
                Fault(0.50 * m + back, "restart consumer index-2", lambda: restart_consumer("index-2")),
                Fault(0.70 * m, f"restart PostgreSQL ({pg_restart_mode})", restart_pg),
            ]
            for f in plan:
                say(f"fault planned at sim minute {f.at_min:.1f}: {f.what}")
        else:
            log_event = say  # noqa: F841

        down: set[str] = set()  # consumers the fault plan keeps down

        def supervise() -> None:
            """Restart a consumer that exited on its own (as systemd's Restart= would): one
            started while PostgreSQL restarts fails to open its store and exits."""
            for user, c in list(consumers.items()):
                if user not in down and c.poll() is not None:
                    say(f"consumer {user} exited ({c.returncode}); restarting it")
                    events.append(f"sim minute {sim_min():7.1f}: consumer {user} exited by itself ({c.returncode}), restarted")
                    consumers[user] = start_consumer(topo, db, user, logs / f"{user}.log", replay_after_s)

        def kill_consumer(user: str) -> None:
            down.add(user)
            kill(consumers[user])

        def restart_consumer(user: str) -> None:
            down.discard(user)
            consumers[user] = start_consumer(topo, db, user, logs / f"{user}.log", replay_after_s)

        clock_done = [False] * len(pipes)
        last_sample = time.time()
        while not all(clock_done):
            for f in plan:
                if not f.done and sim_min() >= f.at_min:
                    f.done = True
                    f.act()
                    if "PostgreSQL" not in f.what:
                        log_event(f.what)
            supervise()
            for i, pipe in enumerate(pipes):
                if not clock_done[i] and pipe.poll(0):
                    msg = pipe.recv()
                    if msg[0] == "clock_done":
                        clock_done[i] = True
            if time.time() - last_sample > 5:
                meter.sample(roles())
                last_sample = time.time()
            time.sleep(0.05)
        for f in plan:  # a fault scheduled past the clock's end (short runs) still happens
            if not f.done:
                f.done = True
                f.act()
                log_event(f.what + " (after the clock)")
        t_clock = time.time()
        say(f"clock done after {t_clock - t0:.1f} s real; waiting for the index (timeout {timeout_s:.0f} s)")

        # -- wait until the index holds every device's whole sequence ------------------
        store = psycopg.connect(db, autocommit=True, connect_timeout=10)
        deadline = time.time() + timeout_s
        complete, stored = False, 0
        while time.time() < deadline:
            try:
                rows = store.execute("SELECT device, COUNT(*), MIN(seq), MAX(seq) FROM messages GROUP BY device").fetchall()
            except psycopg.Error:
                time.sleep(1.0)
                store = psycopg.connect(db, autocommit=True, connect_timeout=10)
                continue
            stored = sum(r[1] for r in rows)
            for pipe in pipes:
                pipe.send(("status",))
            backlog, last_seq = 0, {}
            for pipe in pipes:
                _, b, _, seqs = pipe.recv()
                backlog += b
                last_seq.update(seqs)
            have = {dev: (n, lo, hi) for dev, n, lo, hi in rows}
            if backlog == 0 and all(have.get(dev) == (n, 1, n) for dev, n in last_seq.items()):
                complete = True
                break
            supervise()
            if time.time() - last_sample > 5:
                meter.sample(roles())
                last_sample = time.time()
                short = sum(1 for dev, n in last_seq.items() if have.get(dev) != (n, 1, n))
                say(f"  {stored} stored, {short} devices incomplete, {backlog} messages queued at devices")
            time.sleep(1.0)
        t_end = time.time()
        meter.sample(roles())
        say(f"index {'complete' if complete else 'INCOMPLETE'} {t_end - t_clock:.1f} s after the clock; {stored} messages stored")
        for pipe in pipes:
            pipe.send(("stop",))
        results: list[dict[str, Any]] = []
        pumps = 0
        for pipe in pipes:
            msg = pipe.recv()
            results.extend(msg[1])
            pumps += msg[2]
        for p in procs:
            p.join(30)
        for c in consumers.values():
            c.terminate()
        for c in consumers.values():
            try:
                c.wait(15)
            except Exception:  # noqa: BLE001
                kill(c)
        first_fault = min((f.at_min for f in plan), default=float(minutes))
        clean_until = t0 + first_fault * 60 / speed  # bins closed before the first fault
        out = check(db, results, minutes, clean_until)
        out.update({
            "seed": seed, "devices": devices, "simulated_hours": hours, "speed": speed, "faults": events,
            "harness_processes": len(procs), "publisher_pumps": pumps, "devices_connected_at_start": connected, "index_complete": complete,
            "clock_real_s": round(t_clock - t0, 1), "drain_after_clock_s": round(t_end - t_clock, 1),
            "cpu_core_share": {r: round(s / (t_end - t0), 3) for r, s in sorted(meter.cpu.items())},
            "peak_rss_mb": {r: round(v / 2**20, 1) for r, v in sorted(meter.rss.items())},
            "consumer_quarantine": quarantine_counts(db), "synchronous_commit": synchronous_commit,
        })
        return out
    finally:
        for c in consumers.values():
            if c.poll() is None:
                kill(c)
        for p in procs:
            if p.is_alive():
                p.kill()
        topo.stop()
        pg.stop()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def quarantine_counts(db: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(db, autocommit=True) as c:
        return {r: int(n) for r, n in c.execute("SELECT reason, COUNT(*) FROM rejects GROUP BY reason").fetchall()}


def check(db: str, results: list[dict[str, Any]], minutes: int, clean_until: float) -> dict[str, Any]:
    """The index's invariant against what the devices queued; latency; replay recovery."""
    import psycopg

    from index_system.consumer import IndexStore

    with psycopg.connect(db, autocommit=True) as c:
        msgs = c.execute("SELECT device, seq, received_utc FROM messages").fetchall()
        per_dev_bins = {r[0]: r[1:] for r in c.execute(
            "SELECT device, COUNT(*), SUM(revision), SUM(visits_in), SUM(visits_out) FROM bins GROUP BY device").fetchall()}
    by_dev: dict[str, dict[int, float]] = {}
    for dev, seq, received in msgs:
        by_dev.setdefault(dev, {})[seq] = received
    missing = doubled = bad_bins = 0
    sample: dict[str, list[int]] = {}
    latency: list[float] = []
    clean: list[float] = []  # bins closed before the first fault
    recovered = requests = requeued = 0
    truth_in = stored_in = 0
    for r in results:
        got = by_dev.get(r["name"], {})
        lost = [s for s in range(1, r["last_seq"] + 1) if s not in got]
        missing += len(lost)
        if lost and len(sample) < 8:
            sample[r["name"]] = lost[:12]
        doubled += sum(1 for s in got if not 1 <= s <= r["last_seq"])  # PK: a seq cannot be stored twice
        n, revs, v_in, v_out = per_dev_bins.get(r["name"], (0, 0, 0, 0))
        if (n, int(revs or 0), int(v_in or 0), int(v_out or 0)) != (r["bins"], r["revisions"], r["in"], r["out"]) \
                or r["bins"] != minutes:
            bad_bins += 1
        truth_in += r["truth_in"]
        stored_in += int(v_in or 0)
        for seq, closed in enumerate(r["closed"], start=1):
            if seq in got and closed:
                latency.append(got[seq] - closed)
                if closed < clean_until:
                    clean.append(got[seq] - closed)
        requests += len(r["replays"])
        requeued += sum(x[3] for x in r["replays"])
        recovered += sum(1 for s, t in got.items() if any(lo <= s <= hi and t >= at for at, lo, hi, _ in r["replays"]))
    # day summaries: what each device sent equals what the index recomputes from its bins
    store = IndexStore(db)
    sums = same = 0
    for r in results:
        for body in r["summaries"]:
            sums += 1
            mine = store.recompute_summary(r["name"], date.fromisoformat(body["date"]))
            got = store.received_summary(r["name"], date.fromisoformat(body["date"]))
            if mine is not None and got is not None and all(got.get(k) == v for k, v in mine.items()):
                same += 1
    store.conn.close() if hasattr(store.conn, "close") else None
    received = sorted(m[2] for m in msgs)
    span = received[-1] - received[0] if len(received) > 1 else float("nan")
    return {
        "expected_messages": sum(r["last_seq"] for r in results), "stored_messages": len(msgs),
        "lost": missing, "lost_sample": sample, "doubled": doubled, "devices_with_wrong_bins": bad_bins,
        "expected_bins": len(results) * minutes, "truth_in": truth_in, "stored_in": stored_in,
        "summaries_sent": sums, "summaries_equal_recomputed": same,
        "replay_requests_served": requests, "messages_requeued_by_replay": requeued,
        "messages_stored_after_a_replay_request": recovered,
        "throughput_msg_s": round(len(msgs) / span, 1) if span == span and span > 0 else None,
        "latency_p50_s": round(percentile(latency, 0.5), 3) if latency else None,
        "latency_p99_s": round(percentile(latency, 0.99), 3) if latency else None,
        "latency_max_s": round(max(latency), 3) if latency else None,
        "latency_before_faults_p50_s": round(percentile(clean, 0.5), 3) if clean else None,
        "latency_before_faults_p99_s": round(percentile(clean, 0.99), 3) if clean else None,
        "latency_before_faults_n": len(clean),
    }


def ok(out: dict[str, Any]) -> bool:
    """The invariant: 0 lost, 0 doubled, every bin at its highest revision, visits and summaries equal."""
    return (out["index_complete"] and out["lost"] == 0 and out["doubled"] == 0 and out["devices_with_wrong_bins"] == 0
            and out["stored_messages"] == out["expected_messages"] and out["truth_in"] == out["stored_in"]
            and out["summaries_equal_recomputed"] == out["summaries_sent"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--hours", type=float, default=1.0, help="simulated hours of 1-minute bins (default 1)")
    ap.add_argument("--speed", type=float, default=360.0, help="simulated seconds per real second (default 360)")
    ap.add_argument("--faults", action="store_true", help="district broker kill, bridge link cut, consumer kill, PostgreSQL restart")
    ap.add_argument("--synchronous-commit", choices=("on", "off"), default="on",
                    help="the consumers' PostgreSQL synchronous_commit (fsync stays on; default on)")
    ap.add_argument("--no-link-proxy", action="store_true", help="bridges straight to the central broker (no link fault)")
    ap.add_argument("--pg-restart", choices=("fast", "immediate"), default="fast")
    ap.add_argument("--per-worker", type=int, default=125, help="devices per harness process (default 125)")
    ap.add_argument("--replay-after", type=float, default=10.0, help="the consumers' --replay-after (default 10 s)")
    ap.add_argument("--no-summaries", action="store_true", help="devices send no day summaries at the end")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the index after the clock ends")
    ap.add_argument("--workdir", help="parent of the run's temp dir (default: the system's)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (journals, logs) after the run")
    ap.add_argument("--out", help="also write the figures as JSON here")
    args = ap.parse_args(argv)

    def interrupted(signum: int, frame: Any) -> None:  # SIGTERM: tear down as on Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    out = run(args.devices, args.hours, args.speed, args.faults, args.seed, args.per_worker, args.timeout,
              args.replay_after, not args.no_summaries, args.pg_restart, args.workdir, args.keep,
              args.synchronous_commit, not args.no_link_proxy)
    out["invariant_holds"] = ok(out)
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if out["invariant_holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
