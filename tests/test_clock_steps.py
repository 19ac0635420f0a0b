"""The agent's wall clock stepped forward and back (an NTP step), its monotonic clock not:
the fault day's runner (bench/stepped_clock.py) and the agent's intervals, which must run
on the monotonic clock. The fault day itself strikes steps among its other faults
(tests/test_beam_day.py)."""

from __future__ import annotations

import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from bench.stepped_clock import SteppedWall, read_offset, write_offset
from edge.agent import Agent
from edge.clock import VirtualClock
from harness import agent_config, wait_for
from simulator.local_broker import free_port

HOUR = 3600.0


class SteppedClock(VirtualClock):
    """A virtual clock whose wall can also be stepped, both ways, monotonic untouched."""

    def __init__(self, start_utc: float) -> None:
        super().__init__(start_utc)
        self.offset = 0.0

    def wall(self) -> float:
        return super().wall() + self.offset

    def step(self, seconds: float) -> None:
        self.offset += seconds


def test_stepped_wall_adds_the_files_offset_within_the_reread_period(tmp_path):
    path = tmp_path / "offset"
    wall = SteppedWall(path, reread_s=0.05)
    assert abs(wall.time() - time.time()) < 1.0  # no file yet: offset 0
    write_offset(path, -2 * HOUR)
    time.sleep(0.06)
    mono = time.monotonic()
    assert abs(wall.time() - (time.time() - 2 * HOUR)) < 1.0
    assert abs(wall.time_ns() / 1e9 - (time.time() - 2 * HOUR)) < 1.0
    assert abs(time.monotonic() - mono) < 1.0  # the monotonic clock is not stepped
    write_offset(path, 5.5)
    cached = wall.time()  # within the period the cached offset holds
    assert abs(cached - (time.time() - 2 * HOUR)) < 1.0 or abs(cached - (time.time() + 5.5)) < 1.0
    time.sleep(0.06)
    assert abs(wall.time() - (time.time() + 5.5)) < 1.0


def test_a_torn_or_bad_offset_file_keeps_the_last_offset(tmp_path):
    path = tmp_path / "offset"
    assert read_offset(path, 7.0) == 0.0  # no file: no step
    for text in ("", "12.", "nan", "inf", "abc"):
        path.write_text(text)
        assert read_offset(path, 7.0) == (12.0 if text == "12." else 7.0)


def test_the_alive_mark_keeps_up_after_the_clock_steps_back(tmp_path):
    """alive_until_utc (where a SIGKILLed agent's outage starts in health and bin flags)
    was written every 10 s of *wall* time: after a step back of an hour it froze for an
    hour, and a kill in that hour put the outage's start an hour late."""
    clock = SteppedClock(time.time())
    agent = Agent(agent_config(tmp_path, free_port()), clock)  # no broker: this is about the journal
    agent.open()
    try:
        agent.tick()
        clock.step(-HOUR)
        clock.advance(11)
        agent.tick()
        alive = float(agent.writer.call(lambda j: j.get_meta("alive_until_utc")))
        assert alive == clock.wall()
    finally:
        agent.stop()


def test_a_refused_publish_pauses_30_monotonic_seconds_even_if_the_clock_steps_back(broker, tmp_path):
    """After the broker refuses a message the publisher pauses 30 s; timed on the wall
    clock, a step back of an hour made that pause an hour long (nothing published)."""
    clock = SteppedClock(time.time())
    agent = Agent(agent_config(tmp_path, broker.port), clock)
    agent.open()  # queues the birth message
    pub = agent.publisher
    pub.start()
    try:
        wait_for(lambda: pub.connected, what="publisher connected")
        # what paho calls when an MQTT 5 broker refuses a publish
        pub._on_publish(pub.client, None, 1, ReasonCode(PacketTypes.PUBACK, "Not authorized"), None)
        assert pub.pump() == 0  # pausing
        clock.step(-HOUR)
        clock.advance(31)
        assert pub.pump() >= 1  # the pause is over: the birth goes out
    finally:
        agent.stop()


def test_board_events_after_a_step_are_stamped_on_the_stepped_clock(tmp_path):
    """A board's events map to UTC through the last heartbeat; that heartbeat's receipt was
    taken as a wall time, so an event after a step forward of an hour (up to a heartbeat
    period later at a door, a whole unplug's worth after one) was binned an hour early."""
    from edge.beam_source import DoorPipeline, DoorSettings
    from edge.journal_writer import JournalWriter
    from firmware_bridge import messages as m

    store = JournalWriter.open(tmp_path / "j.db")
    clock = SteppedClock(1_800_000_000.0)
    pipe = DoorPipeline(DoorSettings(name="d1", port="/dev/null"), store, lambda *a: None, clock)
    try:
        pipe.on_hello(m.Hello(1, 0, 0, 5, 96, ()))
        pipe.on_heartbeat(m.Heartbeat(5, 100_000_000, 0, 0, 0, 0, (0, 0)), 0)  # board at 100 s
        clock.step(HOUR)  # NTP: the host's clock was an hour slow
        clock.advance(0.5)
        pipe.commit(5, [m.BeamEvent(5, 1, 0, 1, 100_400_000)])  # 0.4 s after the heartbeat
        clock.step(-2 * HOUR)  # and back, past where it was
        clock.advance(0.5)
        pipe.commit(5, [m.BeamEvent(5, 2, 0, 0, 100_900_000)])
        rows = [r for _, r in store.beam_events_after("d1", 0)]
        assert [r.t_utc for r in rows] == [1_800_000_000.0 + HOUR + 0.4, 1_800_000_000.0 - HOUR + 0.9]
    finally:
        store.close()


def test_replay_requests_are_spaced_on_the_monotonic_clock(tmp_path):
    """Replay requests are refused closer than `replay_min_interval_s`; timed on the wall
    clock, a step back of an hour refused every request for an hour (holes unfilled)."""
    from edge.publisher import CommandRefused

    clock = SteppedClock(time.time())
    agent = Agent(agent_config(tmp_path, free_port()), clock)
    agent.open()
    pub = agent.publisher
    try:
        pub._replay({"epoch": 1, "from_seq": 1, "to_seq": 1})
        try:
            pub._replay({"epoch": 1, "from_seq": 1, "to_seq": 1})
            raise AssertionError("a second request at once must be refused")
        except CommandRefused:
            pass
        clock.step(-HOUR)
        clock.advance(pub.limits.replay_min_interval_s + 1)
        pub._replay({"epoch": 1, "from_seq": 1, "to_seq": 1})  # raises CommandRefused on the wall clock
    finally:
        agent.stop()


def test_the_fault_days_steps_go_both_ways_and_end_at_the_days_highest_offset():
    import itertools
    import random

    from bench.fault_day import STEP_MIN_S, plan_clock_steps

    seed = random.SystemRandom().randrange(2**32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    for n in (5, 20):
        steps = plan_clock_steps(rng, n, 4 * HOUR)
        offsets = list(itertools.accumulate(steps))
        assert len(steps) == n
        assert sum(s > 0 for s in steps) >= n // 2 and sum(s < 0 for s in steps) >= n // 2 - 1
        assert all(STEP_MIN_S <= abs(s) <= 4 * HOUR for s in steps[:-1])
        assert steps[-1] > 0 and offsets[-1] >= max(offsets)  # the agent closes new bins again
