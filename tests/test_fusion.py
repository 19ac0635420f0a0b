"""Fusion of beam and camera crossings: the matching rule on hand-made events, no double
counts (hypothesis), restart idempotence on a real journal file, the discrepancy monitor,
the [fusion] config, and a short run of the real pipelines on a 20%-abreast crowd."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.crossing import Crossing
from edge.fuser import Fuser, FusionSettings
from edge.fusion import DiscrepancyMonitor, Fusion, FusionParams, HealthTimeline, fuse
from edge.journal import Journal

DOOR = "door1"


def beam(t: float, d: str = "in", conf: float = 1.0, ref: str | None = None) -> Crossing:
    return Crossing(t, DOOR, d, "beam", conf, ref or f"mcu:{DOOR}:1:{int(t * 1000)}")  # type: ignore[arg-type]


def cam(t: float, d: str = "in", ref: str | None = None, line: str = DOOR) -> Crossing:
    return Crossing(t, line, d, "camera", 1.0, ref or f"cam:r:{int(t * 1000)}:{line}:1")  # type: ignore[arg-type]


def counts(cs: list[Crossing]) -> dict[str, int]:
    c = Counter(x.direction for x in cs)
    return {"in": c["in"], "out": c["out"]}


# -- the rule on hand-made events ------------------------------------------------------

def test_pair_abreast_counts_the_cameras_two_people_once_each() -> None:
    # two people abreast break the beams as one clean pass; the camera sees both
    fused = fuse([beam(10.2)], [cam(10.0), cam(10.05, ref="cam:r:2:door1:1")], door=DOOR)
    assert counts(fused) == {"in": 2, "out": 0}
    assert all(c.source == "fused" and c.line == DOOR for c in fused)


def test_long_blockage_with_three_camera_crossings_counts_three() -> None:
    fused = fuse([beam(20.0, conf=0.4)], [cam(19.5), cam(19.8), cam(20.3)], door=DOOR)
    assert counts(fused) == {"in": 3, "out": 0}


def test_beams_win_when_the_camera_missed_someone() -> None:
    fused = fuse([beam(5.0), beam(5.6, ref="b2")], [cam(5.1)], door=DOOR)
    assert counts(fused) == {"in": 2, "out": 0}


def test_directions_are_counted_apart_within_one_episode() -> None:
    fused = fuse([beam(5.0, "in"), beam(5.4, "out", ref="b2")], [cam(5.1, "in"), cam(5.3, "out", ref="c2"),
                                                                  cam(5.35, "out", ref="c3")], door=DOOR)
    assert counts(fused) == {"in": 1, "out": 2}


def test_crossings_further_apart_than_the_window_are_separate_episodes() -> None:
    # by default a camera crossing the healthy beams saw nothing of is not counted (a
    # camera error, or its own sighting of someone the beams counted > window_s away)
    fused = fuse([beam(1.0), beam(10.0, ref="b2")], [cam(5.0)], FusionParams(window_s=1.0), door=DOOR)
    assert counts(fused) == {"in": 2, "out": 0}
    late = fuse([beam(1.0)], [cam(2.5)], FusionParams(window_s=1.0), door=DOOR)  # the camera 1.5 s late
    assert counts(late) == {"in": 1, "out": 0}
    alone = fuse([beam(1.0), beam(10.0, ref="b2")], [cam(5.0)], FusionParams(window_s=1.0, camera_alone=True), door=DOOR)
    assert counts(alone) == {"in": 3, "out": 0}


def test_camera_down_falls_back_to_the_beams() -> None:
    # the camera is unhealthy (dark) from t=100: its crossings there are not trusted
    b = [beam(101.0), beam(110.0, ref="b2")]
    c = [cam(101.0), cam(101.1, ref="c2"), cam(101.2, ref="c3"), cam(120.0, ref="c4")]
    fused = fuse(b, c, door=DOOR, camera_health=[(100.0, False)])
    assert counts(fused) == {"in": 2, "out": 0}
    # and back again: from t=105 the camera is trusted
    fused = fuse(b + [beam(130.0, ref="b3")], c + [cam(130.0, ref="c5"), cam(130.1, ref="c6")], door=DOOR,
                 camera_health=[(100.0, False), (125.0, True)])
    assert counts(fused) == {"in": 4, "out": 0}  # 101, 110, (120 camera unhealthy: none), 130 x2


def test_camera_down_with_no_camera_events_counts_every_beam_crossing() -> None:
    b = [beam(float(t), ref=f"b{t}") for t in range(0, 100, 5)]
    assert counts(fuse(b, [], door=DOOR, camera_health=[(0.0, False)])) == {"in": 20, "out": 0}


def test_beams_down_falls_back_to_the_camera() -> None:
    fused = fuse([beam(50.0)], [cam(50.0), cam(50.1, ref="c2")], door=DOOR, beam_health=[(10.0, False, "link")])
    assert counts(fused) == {"in": 2, "out": 0}
    fused = fuse([beam(50.0), beam(50.5, ref="b2")], [cam(50.0)], door=DOOR, beam_health=[(10.0, False, "link")])
    assert counts(fused) == {"in": 1, "out": 0}


def test_health_timeline_needs_every_part_healthy() -> None:
    h = HealthTimeline([(10.0, False, "link"), (20.0, True, "link"), (15.0, False, "beams")])
    assert h.ok_at(5.0) and not h.ok_at(12.0) and not h.ok_at(25.0)
    assert not h.ok_during(5.0, 11.0)
    assert h.down_since(25.0) == 15.0 and h.down_since(25.0, "link") is None and h.down_since(12.0, "link") == 10.0
    h.add(30.0, True, "beams")
    assert h.ok_at(31.0) and h.down_since(31.0) is None


def test_fused_refs_derive_from_the_constituents() -> None:
    b, c = [beam(10.2)], [cam(10.0), cam(10.05, ref="c2")]
    one, two = fuse(b, c, door=DOOR), fuse(list(reversed(b)), list(reversed(c)), door=DOOR)
    assert [x.source_ref for x in one] == [x.source_ref for x in two]
    assert len({x.source_ref for x in one}) == 2
    other = fuse(b, [cam(10.0), cam(10.05, ref="c3")], door=DOOR)
    assert {x.source_ref for x in one}.isdisjoint({x.source_ref for x in other})


def test_an_episode_is_emitted_once_its_window_has_closed() -> None:
    f = Fusion(DOOR, FusionParams(window_s=1.0))
    f.add([beam(10.0), cam(10.2)])
    assert f.close(10.9) == []  # a crossing at 11.0 could still join
    assert f.close(11.1) == []  # the window after the last crossing (10.2) is still open
    assert f.resume_utc == 10.0
    eps = f.close(11.3)
    assert len(eps) == 1 and counts(list(eps[0].fused)) == {"in": 1, "out": 0}
    assert f.resume_utc == 11.3
    f.add([cam(11.0, ref="late")])  # before the watermark: too late to fuse
    assert f.late == 1 and f.close(100.0) == []


def test_fused_crossings_cannot_be_fused_again() -> None:
    with pytest.raises(ValueError, match="fused"):
        Fusion(DOOR).add([Crossing(1.0, DOOR, "in", "fused", 1.0, "fused:x")])


# -- no double counts -------------------------------------------------------------------

truth_st = st.lists(st.tuples(st.floats(0, 600, allow_nan=False), st.sampled_from(["in", "out"])), max_size=60)


@settings(max_examples=150, deadline=None)
@given(truth=truth_st, seed=st.integers(0, 2**16))
def test_both_sensors_seeing_the_same_people_count_them_once(truth: list[tuple[float, str]], seed: int) -> None:
    """Each person is seen by both sources within +-0.3 s: fused = the truth exactly, for any
    spacing of the people (episodes merge people close together and still count each once)."""
    rng = random.Random(seed)
    b = [Crossing(t + rng.uniform(-0.3, 0.3), DOOR, d, "beam", 1.0, f"b{i}") for i, (t, d) in enumerate(truth)]  # type: ignore[arg-type]
    c = [Crossing(t + rng.uniform(-0.3, 0.3), DOOR, d, "camera", 1.0, f"c{i}") for i, (t, d) in enumerate(truth)]  # type: ignore[arg-type]
    fused = fuse(b, c, door=DOOR)
    assert counts(fused) == counts(b)
    assert len({x.source_ref for x in fused}) == len(fused)


event_st = st.lists(st.tuples(st.floats(0, 300, allow_nan=False), st.sampled_from(["in", "out"]),
                              st.sampled_from(["beam", "camera"])), max_size=80)


@settings(max_examples=150, deadline=None)
@given(events=event_st, cuts=st.lists(st.floats(0, 320, allow_nan=False), max_size=8),
       down=st.lists(st.tuples(st.floats(0, 300, allow_nan=False), st.booleans()), max_size=4))
def test_streaming_equals_whole_run_and_never_exceeds_the_sum(events, cuts, down) -> None:
    """Fed in arrival order and closed at arbitrary watermarks, fusion emits exactly what a
    whole-run fusion does; per direction the fused count lies between the beams' (with
    `camera_alone`: the larger source's) and the two sources' sum (each person at most
    once per source)."""
    cs = [Crossing(t, DOOR, d, s, 1.0, f"{s}{i}") for i, (t, d, s) in enumerate(events)]  # type: ignore[arg-type]
    b = [c for c in cs if c.source == "beam"]
    k = [c for c in cs if c.source == "camera"]
    whole = fuse(b, k, door=DOOR, camera_health=down)
    f = Fusion(DOOR, FusionParams(), camera_health=HealthTimeline(down))
    streamed: list[Crossing] = []
    order = sorted(cs, key=lambda c: c.t_utc)
    fed = 0
    for w in sorted(cuts) + [float("inf")]:
        new = [c for c in order[fed:] if c.t_utc < w]
        fed += len(new)
        f.add(new + new[:2])  # a crossing read twice is taken once
        streamed += [x for ep in f.close(w) for x in ep.fused]
    assert sorted((x.source_ref, x.t_utc) for x in streamed) == sorted((x.source_ref, x.t_utc) for x in whole)
    assert f.late == 0
    alone = fuse(b, k, FusionParams(camera_alone=True), door=DOOR, camera_health=down)
    for d in ("in", "out"):
        nb, nk, nf, na = (sum(x.direction == d for x in xs) for xs in (b, k, whole, alone))
        assert nf <= na <= nb + nk
        if not down:
            assert nf >= nb and na >= max(nb, nk)


# -- the agent component on a real journal ------------------------------------------------

def _settings(**kw) -> FusionSettings:
    return FusionSettings(enabled=True, pairs=[{"door": DOOR, "camera_line": "cam1"}], lag_s=5.0, **kw)


def _inputs(n: int = 120, seed: int = 4) -> list[Crossing]:
    rng = random.Random(seed)
    out, t = [], 1000.0
    for i in range(n):
        t += rng.uniform(0.5, 6.0)
        d = rng.choice(["in", "out"])
        size = rng.choice([1, 1, 1, 2, 3])
        out.append(Crossing(t + 0.15, DOOR, d, "beam", 1.0 if size == 1 else 0.7, f"mcu:{DOOR}:1:{i}"))  # type: ignore[arg-type]
        for k in range(size if rng.random() > 0.1 else size - 1):
            out.append(Crossing(t + rng.uniform(-0.2, 0.2), "cam1", d, "camera", 1.0, f"cam:r:{i}:cam1:{k}"))  # type: ignore[arg-type]
    return sorted(out, key=lambda c: c.t_utc)


def _run(path, inputs: list[Crossing], crash_at: set[int] = frozenset(), rollback_at: set[int] = frozenset()) -> list[tuple]:
    """Arrivals in time order, a fuser tick every second of virtual time; at `crash_at`
    ticks the fuser is thrown away (a restart); at `rollback_at` its transaction rolls back."""
    j = Journal(path)
    fuser = Fuser(_settings())
    now, i, tick = inputs[0].t_utc, 0, 0
    end = inputs[-1].t_utc + 30
    while now < end:
        now += 1.0
        tick += 1
        arrived = []
        while i < len(inputs) and inputs[i].t_utc <= now - 0.5:  # delivered half a second late
            arrived.append(inputs[i])
            i += 1
        if arrived:
            j.add_crossings(arrived)
        if tick in crash_at:
            fuser = Fuser(_settings())
        if tick in rollback_at:
            j.conn.execute("BEGIN IMMEDIATE")
            fuser.tick(j.conn, now)
            j.conn.execute("ROLLBACK")
            fuser.reset()
            continue
        with j.transaction() as conn:
            fuser.tick(conn, now)
    rows = j.conn.execute("SELECT t_utc, line, direction, confidence, source_ref FROM crossings"
                          " WHERE source = 'fused' ORDER BY source_ref").fetchall()
    j.close()
    return rows


def test_fuser_writes_fused_crossings_beside_the_sources(tmp_path) -> None:
    inputs = _inputs()
    rows = _run(tmp_path / "j.db", inputs)
    expected = fuse([c for c in inputs if c.source == "beam"],
                    [Crossing(c.t_utc, DOOR, c.direction, "camera", c.confidence, c.source_ref) for c in inputs
                     if c.source == "camera"], door=DOOR)
    assert len(rows) == len(expected) > 120
    assert {r[4] for r in rows} == {c.source_ref for c in expected}
    j = Journal(tmp_path / "j.db")
    by_source = dict(j.conn.execute("SELECT source, COUNT(*) FROM crossings GROUP BY source").fetchall())
    assert by_source["beam"] == sum(c.source == "beam" for c in inputs)
    assert by_source["camera"] == sum(c.source == "camera" for c in inputs)


def test_restarts_and_rollbacks_re_derive_the_same_fused_crossings(tmp_path) -> None:
    inputs = _inputs()
    clean = _run(tmp_path / "a.db", inputs)
    rough = _run(tmp_path / "b.db", inputs, crash_at={3, 40, 41, 200, 333}, rollback_at={50, 51, 52, 120, 260})
    assert rough == clean


def test_fuser_ignores_other_lines_and_is_off_by_default(tmp_path) -> None:
    j = Journal(tmp_path / "j.db")
    j.add_crossings([beam(10.0), cam(10.0, line="elsewhere")])
    with j.transaction() as conn:
        assert Fuser(FusionSettings()).tick(conn, 100.0) == 0
        assert Fuser(_settings()).tick(conn, 100.0) == 1  # the beam crossing alone
    j.close()


@pytest.mark.parametrize("hold_s, late", [(900.0, 0), (0.0, 2)])
def test_a_downed_beam_link_holds_episodes_open_for_its_buffered_events(tmp_path, hold_s: float, late: int) -> None:
    j = Journal(tmp_path / "j.db")
    fuser = Fuser(_settings(hold_s=hold_s))
    j.log_health(1000.0, f"beams:{DOOR}:link", False, "unplugged")
    j.add_crossings([cam(1010.0, line="cam1"), cam(1020.0, line="cam1")])
    for now in (1030.0, 1060.0, 1090.0):
        with j.transaction() as conn:
            fuser.tick(conn, now)
    # the cable is back: the board delivers the passes it kept, with their own times
    j.log_health(1100.0, f"beams:{DOOR}:link", True, "link up")
    j.add_crossings([beam(1010.1), beam(1020.1)])
    with j.transaction() as conn:
        fuser.tick(conn, 1120.0)
    assert fuser.doors[DOOR].fusion.late == late
    fused = j.conn.execute("SELECT COUNT(*) FROM crossings WHERE source = 'fused'").fetchone()[0]
    assert fused == 2  # each person once, whether fused with the late beams or not
    j.close()


# -- the discrepancy monitor ------------------------------------------------------------------

def _episodes(nb: int, nc: int, t: float, d: str = "in"):
    f = Fusion(DOOR)
    f.add([Crossing(t + 0.01 * i, DOOR, d, "beam", 1.0, f"b{t}{i}") for i in range(nb)])  # type: ignore[arg-type]
    f.add([Crossing(t + 0.01 * i, DOOR, d, "camera", 1.0, f"c{t}{i}") for i in range(nc)])  # type: ignore[arg-type]
    return f.close(float("inf"))


def test_discrepancy_monitor_alarms_when_the_sources_drift_apart() -> None:
    m = DiscrepancyMonitor(window_s=3600, bound=0.3, min_count=30)
    for k in range(40):
        for ep in _episodes(1, 1, 10.0 * k):
            m.add(ep)
    assert m.verdict(400.0).ok
    for k in range(40, 120):  # a moved camera: it now sees one person in three
        for ep in _episodes(1, 1 if k % 3 == 0 else 0, 10.0 * k):
            m.add(ep)
    v = m.verdict(1200.0)
    assert not v.ok and "in: beams" in v.detail and "over the bound" in v.detail
    assert m.verdict(1200.0 + 7200).ok  # the window rolled past it: too few to judge


def test_discrepancy_monitor_catches_swapped_directions_and_ignores_unhealthy_spells() -> None:
    m = DiscrepancyMonitor(window_s=3600, bound=0.3, min_count=10)
    for k in range(20):  # beams wired the wrong way round: totals agree, directions do not
        for ep in _episodes(1, 0, 10.0 * k, "in") + _episodes(0, 1, 10.0 * k + 5, "out"):
            m.add(ep)
    assert not m.verdict(300.0).ok
    quiet = DiscrepancyMonitor(window_s=3600, bound=0.3, min_count=10)
    f = Fusion(DOOR, camera_health=HealthTimeline([(0.0, False)]))
    f.add([beam(float(t), ref=f"b{t}") for t in range(0, 200, 5)])
    for ep in f.close(float("inf")):
        quiet.add(ep)
    assert quiet.verdict(300.0).ok  # a dark camera is a health matter, not a discrepancy


# -- configuration -----------------------------------------------------------------------------

def test_fusion_config_is_validated() -> None:
    from edge.config import ConfigError, parse

    base = ('[device]\nid = "d1"\nsite = "s1"\n[[beams.doors]]\nname = "door1"\nport = "/dev/null"\n'
            '[camera]\nenabled = true\n[[camera.lines]]\nname = "cam1"\np1 = [210, 140]\np2 = [210, 300]\ninside = [400, 220]\n')
    cfg = parse(base + '[fusion]\nenabled = true\nwindow_s = 0.8\n[[fusion.pairs]]\ndoor = "door1"\ncamera_line = "cam1"\n')
    assert cfg.fusion.enabled and cfg.fusion.pairs[0].line == "cam1" and cfg.fusion.params().window_s == 0.8
    with pytest.raises(ConfigError, match="not a \\[\\[beams.doors\\]\\] name"):
        parse(base + '[[fusion.pairs]]\ndoor = "door9"\n')
    with pytest.raises(ConfigError, match="did you mean 'fusion.window_s'"):
        parse(base + '[fusion]\nwindow = 1.0\n')
    with pytest.raises(ConfigError, match="camera line 'door1' .* is not a \\[\\[camera.lines\\]\\] name"):
        parse(base + '[fusion]\nenabled = true\n[[fusion.pairs]]\ndoor = "door1"\n')
    assert "cam1" in cfg.declared_lines() and "door1" in cfg.declared_lines()
    with pytest.raises(ConfigError, match="no \\[\\[fusion.pairs\\]\\]"):
        parse(base + '[fusion]\nenabled = true\n')


# -- the real pipelines on a 20%-abreast crowd ------------------------------------------------

def _abreast_sample_seed(count: int) -> int:
    """The first crowd seed whose sample is a 20%-abreast day in each direction (15-30% of
    that direction's passers in pairs or trios, at least 10 passers): chosen by the crowd's
    make-up alone, before anything is counted."""
    from bench.fusion_accuracy import crowd_of

    for seed in range(100):
        crowd, _ = crowd_of("abreast_mix", count, seed)
        shares = []
        for d in ("in", "out"):
            ps = [p for p in crowd.people if p.truth == d]
            shares.append(len(ps) >= 10 and 0.15 <= sum(p.unit in ("pair", "trio") for p in ps) / len(ps) <= 0.3)
        if all(shares):
            return seed
    raise AssertionError("no 20%-abreast sample among 100 seeds")


@pytest.mark.timeout(300)
def test_fused_beats_both_sources_on_a_small_abreast_day() -> None:
    """Real composed camera scenes through the shipped detector and tracker, the beam
    decoder on the simulated beams, one crowd (20% of passers two or three abreast)."""
    from bench.fusion_accuracy import scores, streams_for

    s = streams_for("abreast_mix", count=30, seed=_abreast_sample_seed(30), threads=2)
    sc = scores(s)
    for d in ("in", "out"):
        acc = {k: sc[k][d]["gross_accuracy"] for k in ("beam", "camera", "fused")}
        assert sc["beam"][d]["true"] >= 10
        assert acc["fused"] >= max(acc["beam"], acc["camera"]), (d, acc)


def test_the_agent_bins_fused_counts_beside_each_source(tmp_path) -> None:
    """The real agent (journal thread, binner, outbox; no broker): its tick fuses and the
    bin it queues carries beam, camera and fused counts, totals from `fused`."""
    import json

    from edge.agent import Agent
    from edge.clock import VirtualClock
    from edge.config import parse

    cfg = parse(f'[device]\nid = "d1"\nsite = "s1"\n[storage]\nstate_dir = "{tmp_path}"\n[mqtt]\ntls = false\nport = 1\n'
                '[bins]\nminutes = 1\nprimary_source = "fused"\nrequire_clock_sync = false\n'
                '[[beams.doors]]\nname = "door1"\nport = "/dev/null"\n'
                '[camera]\nenabled = true\n[[camera.lines]]\nname = "door1"\np1 = [1, 1]\np2 = [1, 100]\ninside = [50, 50]\n'
                '[fusion]\nenabled = true\nlag_s = 5\n[[fusion.pairs]]\ndoor = "door1"\n')
    clock = VirtualClock()
    agent = Agent(cfg, clock=clock)
    agent.open()
    try:
        t0 = clock.wall()
        agent.writer.add_crossings([beam(t0 + 3), cam(t0 + 3.1), cam(t0 + 3.2, ref="c2"), beam(t0 + 20, "out", ref="b2")])
        for _ in range(130):
            clock.advance(1.0)
            agent.tick()
        bins = agent.writer.call(lambda j: [json.loads(r[0]) for r in j.conn.execute(
            "SELECT payload FROM outbox WHERE topic LIKE '%/bins' ORDER BY id")])
        busy = [b for b in bins if any(b["lines"][DOOR].values())]
        assert busy[-1]["lines"][DOOR] == {"beam": {"in": 1, "out": 1}, "camera": {"in": 2, "out": 0},
                                           "fused": {"in": 2, "out": 1}}
        assert busy[-1]["total"] == {"in": 2, "out": 1, "source": "fused"}
        assert agent.health.snapshot()[f"fusion:{DOOR}"].ok
    finally:
        agent.writer.stop()
