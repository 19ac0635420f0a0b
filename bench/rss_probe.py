"""Resident memory of the camera agent: the agent's own camera source on vtest.avi.

    python -m bench.rss_probe                    # one probe in this process: JSON line
    python -m bench.rss_probe --breakdown        # + where the resident pages are (smaps)
    python -m bench.rss_probe --compare /work/main --runs 4
        # fresh processes, this tree and another alternated; the unit's environment
    python -m bench.rss_probe --speed            # ms per window: main's session options vs these

The probe runs what `footfall run` runs for a camera (edge.sources.build_sources):
`CameraSource` with the agent's defaults (the shipped model, cores - 1 inference threads,
the tiled front-end, 10 fps cap, its capture thread), on vtest.avi with one counting
line, until ``--frames`` frames went through its pipeline; then it reads VmRSS and VmHWM
from /proc/self/status. `--compare` starts every probe as a fresh process with the
environment the systemd unit gives the agent (its ``Environment=`` lines), so glibc's
malloc settings there count as they would on a device.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
UNIT = ROOT / "systemd" / "footfall-agent.service"


def status_mib() -> dict[str, int]:
    """VmRSS and VmHWM of this process, MiB."""
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) // 1024
    return out


def smaps_breakdown(top: int = 12) -> dict[str, object]:
    """Resident MiB by mapping: anonymous (heap, thread arenas, numpy/ORT buffers) vs
    file-backed (shared libraries), and the largest mappings by name."""
    by_name: dict[str, int] = defaultdict(int)
    anon = file = 0
    name = ""
    for line in open("/proc/self/smaps"):
        head = line.split()
        if not head:
            continue
        if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            name = head[5] if len(head) > 5 else "[anon]"
            continue
        if head[0] == "Rss:":
            kb = int(head[1])
            by_name[os.path.basename(name) if name.startswith("/") else name] += kb
            if name.startswith("/"):
                file += kb
            else:
                anon += kb
    big = sorted(by_name.items(), key=lambda kv: -kv[1])[:top]
    return {"anon_mib": anon // 1024, "file_mib": file // 1024, "largest_mib": {k: v // 1024 for k, v in big}}


AGENT_TOML = """
[device]
id = "rss-probe"
site = "bench"
timezone = "UTC"

[storage]
state_dir = "{state}"

[bins]
require_clock_sync = false
lines = ["door"]

[mqtt]
host = "127.0.0.1"
port = 9  # nothing listens: the publisher keeps its backlog and retries, as with a broker away
tls = false

[camera]
enabled = true
source = "{video}"

[[camera.lines]]
name = "door"
p1 = [210, 140]
p2 = [210, 300]
inside = [400, 220]
"""


def probe(frames: int, breakdown: bool = False, whole_agent: bool = False) -> dict[str, object]:
    """Run the agent's camera source until ``frames`` frames were processed; memory then.
    ``whole_agent``: the whole agent (`edge.agent.Agent` with `build_sources`: journal,
    binner, publisher, its loop ticking) around it, configured for vtest.avi."""
    import tempfile

    from edge.camera_pipeline import CameraSource
    from edge.counting import CountingLine

    health: list[tuple[str, bool, str]] = []
    crossings: list[object] = []
    t0 = time.monotonic()
    agent = None
    if whole_agent:
        from edge import config
        from edge.agent import Agent
        from edge.sources import build_sources

        tmp = Path(tempfile.mkdtemp(prefix="rss-probe-"))
        (tmp / "agent.toml").write_text(AGENT_TOML.format(state=tmp / "state", video=VTEST))
        agent = Agent(config.load(tmp / "agent.toml"), make_sources=build_sources)
        agent.start()
        [src] = agent.sources
        assert isinstance(src, CameraSource)
    else:
        line = CountingLine("door", (210, 140), (210, 300), (400, 220))
        src = CameraSource(str(VTEST), [line], crossings.extend, lambda c, ok, d: health.append((c, ok, d)))
        src.start()
    next_tick = 0.0
    while src._thread is not None and src._thread.is_alive():
        pipe = src.pipeline
        if pipe is not None and pipe.times.frames >= frames:
            break
        if agent is not None and time.monotonic() >= next_tick:  # the agent's loop: one tick a second
            next_tick = time.monotonic() + 1.0
            agent.tick()
        time.sleep(0.02)
    pipe = src.pipeline
    if agent is not None:
        agent.stopping.set()
        agent.stop()
        health = [(k, v.ok, v.detail) for k, v in agent.health.snapshot().items()]
    else:
        src.stop()
    if pipe is None or pipe.times.frames < frames:
        raise SystemExit(f"camera source stopped early: {health}")
    out: dict[str, object] = {**status_mib(), "frames": pipe.times.frames, "crossings": None if whole_agent else len(crossings),
                              "wall_s": round(time.monotonic() - t0, 1), "whole_agent": whole_agent,
                              "front_end": type(pipe.detector).__name__,
                              "threads": getattr(getattr(pipe.detector, "detector", pipe.detector), "threads", None),
                              "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX")}
    if breakdown:
        out["smaps"] = smaps_breakdown()
    return out


def unit_environment(unit: Path = UNIT) -> dict[str, str]:
    """The ``Environment=`` assignments of the systemd unit (what the agent runs with)."""
    env: dict[str, str] = {}
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if line.startswith("Environment="):
            for item in shlex.split(line[len("Environment="):]):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def fresh(tree: Path, frames: int, unit_env: bool = True, jit: str = "0", whole_agent: bool = False) -> dict[str, object]:
    """One probe in a fresh interpreter running ``tree``'s code with ``tree``'s unit's
    malloc settings; ``jit`` "0": the tracker's plain kernels (the default install)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update({"PYTHONPATH": str(tree), "FOOTFALL_JIT": jit})
    unit = tree / "systemd" / "footfall-agent.service"
    if unit_env and unit.is_file():
        env.update({k: v for k, v in unit_environment(unit).items() if k.startswith("MALLOC_")})
    cmd = [sys.executable, str(ROOT / "bench" / "rss_probe.py"), "--frames", str(frames)]
    out = subprocess.run(cmd + (["--whole-agent"] if whole_agent else []),
                         capture_output=True, text=True, env=env, cwd=tree, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(other: Path, runs: int, frames: int, whole_agent: bool = False) -> dict[str, object]:
    """This tree and ``other`` alternated, ``runs`` fresh processes each; medians."""
    res: dict[str, list[dict[str, object]]] = {"this": [], "other": []}
    for i in range(runs):
        for label, tree in (("other", other), ("this", ROOT)) if i % 2 == 0 else (("this", ROOT), ("other", other)):
            r = fresh(tree, frames, whole_agent=whole_agent)
            r["load"] = round(os.getloadavg()[0], 1)
            res[label].append(r)
            print(label, json.dumps(r), flush=True)
    summary = {label: {k: statistics.median(r[k] for r in rs) for k in ("VmRSS", "VmHWM")} for label, rs in res.items()}
    return {"runs": res, "median": summary}


def session_speed(rounds: int = 8, n: int = 40) -> dict[str, object]:
    """Milliseconds per onnxruntime call on a model-sized window of vtest.avi frames: a
    session opened as main opened it (onnxruntime's defaults) against the detector's own
    (`OnnxDetector._open_session`), alternating rounds in one process; medians. Also
    checks that both give the same outputs."""
    import cv2
    import numpy as np
    import onnxruntime as ort

    from edge.detector import OnnxDetector

    det = OnnxDetector(None)
    opts = ort.SessionOptions()  # main's options: onnxruntime's memory defaults
    opts.intra_op_num_threads = max(1, det.threads)
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sessions = {"main_options": ort.InferenceSession(str(det.manifest.file), sess_options=opts,
                                                     providers=["CPUExecutionProvider"]),
                "new_options": det.session}
    cap = cv2.VideoCapture(str(VTEST))
    spec = det.manifest.input
    tensors = []
    for i in range(n):
        img = cap.read()[1]
        x = 60 * (i % 8)
        tensors.append(det.preprocess(img[100:100 + spec.height, x:x + spec.width])[0])
    cap.release()
    names, feed = det._output_names, spec.name
    same = all(all(np.array_equal(a, b) for a, b in zip(sessions["main_options"].run(names, {feed: t}),
                                                         sessions["new_options"].run(names, {feed: t})))
               for t in tensors)
    ms: dict[str, list[float]] = {k: [] for k in sessions}
    for r in range(rounds):
        order = list(sessions.items()) if r % 2 == 0 else list(sessions.items())[::-1]
        for label, sess in order:
            t0 = time.perf_counter()
            for t in tensors:
                sess.run(names, {feed: t})
            ms[label].append(1000 * (time.perf_counter() - t0) / n)
    return {"ms_per_window": {k: round(statistics.median(v), 2) for k, v in ms.items()},
            "rounds": {k: [round(x, 1) for x in v] for k, v in ms.items()},
            "identical_outputs": same, "threads": det.threads, "load": round(os.getloadavg()[0], 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.rss_probe", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--whole-agent", action="store_true", help="the whole agent around the camera source")
    ap.add_argument("--breakdown", action="store_true", help="also the resident pages by mapping (/proc/self/smaps)")
    ap.add_argument("--compare", type=Path, default=None, help="another checkout (e.g. /work/main), alternated")
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--speed", action="store_true", help="inference ms per window, main's session options vs these")
    args = ap.parse_args(argv)
    if not VTEST.is_file():
        print(f"{VTEST} missing: apt-get install -y opencv-doc", file=sys.stderr)
        return 2
    if args.speed:
        print(json.dumps(session_speed()))
    elif args.compare is not None:
        print(json.dumps(compare(args.compare, args.runs, args.frames, args.whole_agent)["median"]))
    else:
        print(json.dumps(probe(args.frames, args.breakdown, args.whole_agent)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
