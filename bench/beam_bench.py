"""Beam link benchmark: `python -m bench.beam_bench [--events N]`.

1. Parser: frames/s through the link's parser (pure-Python COBS + CRC-32 + message
   decode), side by side with the same frames decoded by the PyPI `cobs` C extension
   (COBS only, the rest identical), and CRC-16 (`binascii.crc_hqx`) vs CRC-32.
2. End to end over a real pty: a virtual board emitting as fast as the link acks,
   the agent's BeamSource with a real journal file (WAL, synchronous=FULL): events/s
   through parser + journal + decoder + ack, and latency from a frame's arrival at the
   host to the ACK that covers it (p50/p99), on a clean link and at 1% byte corruption.
"""

from __future__ import annotations

import argparse
import binascii
import random
import statistics
import tempfile
import time
from pathlib import Path

from edge.journal_writer import JournalWriter
from edge.beam_source import BeamSettings, BeamSource, DoorSettings
from firmware_bridge import framing
from firmware_bridge import messages as m
from firmware_bridge.link import BeamLink
from simulator.faults import WireFaults
from simulator.virtual_mcu import VirtualMcu


def _frames(n: int) -> bytes:
    rng = random.Random(1)
    return b"".join(m.to_frame(m.BeamEvent(7, i + 1, i % 2, (i // 2) % 2, rng.randrange(2**40))) for i in range(n))


def bench_parser(n: int) -> dict[str, float]:
    stream = _frames(n)
    chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    out: dict[str, float] = {}
    t = time.perf_counter()
    r = m.MessageReader()
    got = sum(len(r.feed(c)) for c in chunks)
    out["ours_frames_per_s"] = got / (time.perf_counter() - t)
    try:
        from cobs import cobs as ccobs
    except ImportError:
        return out
    t = time.perf_counter()
    got = 0
    for part in stream.split(b"\x00")[:-1]:
        raw = ccobs.decode(part)
        payload = raw[:-4]
        if framing.crc32(payload) == int.from_bytes(raw[-4:], "little"):
            m.decode(payload)
            got += 1
    out["peer_cobs_c_frames_per_s"] = got / (time.perf_counter() - t)
    payload = m.encode(m.BeamEvent(7, 1, 0, 1, 12345))
    for name, fn in (("crc16_hqx", lambda: binascii.crc_hqx(payload, 0xFFFF)), ("crc32", lambda: binascii.crc32(payload))):
        t = time.perf_counter()
        for _ in range(200_000):
            fn()
        out[f"{name}_ns"] = (time.perf_counter() - t) / 200_000 * 1e9
    return out


class TimedLink(BeamLink):
    """BeamLink that stamps each event's arrival and the ACK that covers it."""

    arrivals: dict[int, float]
    latencies: list[float]

    def _step(self) -> None:
        feed = self.reader.feed

        def stamped(data: bytes) -> list[m.Message]:
            now = time.perf_counter()
            msgs = feed(data)
            for msg in msgs:
                if isinstance(msg, m.BeamEvent):
                    self.arrivals.setdefault(msg.seq, now)
            return msgs

        self.reader.feed = stamped  # type: ignore[method-assign]
        try:
            super()._step()
        finally:
            self.reader.feed = feed  # type: ignore[method-assign]

    def _ack(self) -> None:
        super()._ack()
        now = time.perf_counter()
        upto = self.expected - 1
        for seq in [s for s in self.arrivals if s <= upto]:
            self.latencies.append(now - self.arrivals.pop(seq))


def bench_link(n_events: int, corruption: float) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="beam-bench-"))
    edges = []
    t = 1.0
    for i in range(n_events // 4):  # dense single-file passes: 4 edges each
        edges += [(t, 0, 1), (t + 0.06, 1, 1), (t + 0.3, 0, 0), (t + 0.36, 1, 0)]
        t += 0.6
    mcu = VirtualMcu(tmp / "tty", edges, speedup=1e9, faults=WireFaults(corruption, seed=5))
    store = JournalWriter.open(tmp / "journal.db")
    src = BeamSource(BeamSettings(doors=[DoorSettings(name="d", port=str(tmp / "tty"))]), store, lambda *a: None)
    pipe = src.doors[0]
    link = TimedLink(pipe.link.port, pipe)
    link.arrivals, link.latencies = {}, []
    pipe.link = link
    src.start()
    t0 = time.perf_counter()
    mcu.start()
    while not mcu.done:
        time.sleep(0.005)
    wall = time.perf_counter() - t0
    src.stop()
    mcu.stop()
    store.close()
    lat = sorted(link.latencies)
    return {
        "events": len(mcu.record),
        "events_per_s": len(mcu.record) / wall,
        "commits": link.stats.acks_sent,
        "ack_latency_p50_ms": statistics.median(lat) * 1e3,
        "ack_latency_p99_ms": lat[int(0.99 * (len(lat) - 1))] * 1e3,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000, help="events per end-to-end run")
    ap.add_argument("--frames", type=int, default=200_000, help="frames for the parser run")
    args = ap.parse_args()
    p = bench_parser(args.frames)
    print(f"parser: ours {p['ours_frames_per_s']:,.0f} frames/s", end="")
    if "peer_cobs_c_frames_per_s" in p:
        print(f"; with the `cobs` C extension {p['peer_cobs_c_frames_per_s']:,.0f} frames/s"
              f" (ours/peer = {p['ours_frames_per_s'] / p['peer_cobs_c_frames_per_s']:.2f})")
        print(f"checksum per event payload: crc_hqx {p['crc16_hqx_ns']:.0f} ns, crc32 {p['crc32_ns']:.0f} ns")
    else:
        print(" (pip install cobs for the peer comparison)")
    for corruption in (0.0, 0.01):
        r = bench_link(args.events, corruption)
        print(f"end to end, {corruption:.0%} byte corruption: {r['events']} events, {r['events_per_s']:,.0f} events/s,"
              f" {r['events'] / r['commits']:.1f} events/commit, frame->ack p50 {r['ack_latency_p50_ms']:.2f} ms,"
              f" p99 {r['ack_latency_p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()
