"""Day summary: the figures on hand-made days, device == consumer on simulated days (DST
days included, with a health gap, duplicates and a late revision), through a real broker
on schedule and on request, and the CLI."""

from __future__ import annotations

import json
import random
import sqlite3

import pytest
from datetime import date
from zoneinfo import ZoneInfo

from day_sim import Device, fast_store, HOURS, days, deliver, figures, local_midnight, visitors
from edge.agent import Agent
from edge.cli import main
from edge.clock import VirtualClock
from contract.messages import validate
from edge.crossing import Crossing
from contract.day_summary import SiteProfile, day_bounds, summarize_day
from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore
from contract.occupancy import OpeningHours
from contract.timebins import bins_between, iso_utc
from harness import agent_config, agent_toml, wait_for

BERLIN = ZoneInfo("Europe/Berlin")


def bin_msgs(day: date, zone: ZoneInfo, minutes: int, counts: dict[int, tuple[int, int]] | None = None,
             flagged: set[int] = frozenset(), missing: set[int] = frozenset()) -> list[dict]:
    """Bins of a day: counts[i] = (in, out) for the i-th bin, zero elsewhere; occupancy folded."""
    start, end = day_bounds(day, zone)
    out = []
    occ = 0
    for i, b in enumerate(bins_between(start, end, minutes, zone)):
        n_in, n_out = (counts or {}).get(i, (0, 0))
        occ = max(0, occ + n_in - n_out)
        if i in missing:
            continue
        out.append({"bin": {"start_utc": iso_utc(b.start_utc)}, "total": {"in": n_in, "out": n_out, "source": "beam"},
                    "occupancy": {"end": occ}, "flags": ["source_down:beam:door-1"] if i in flagged else []})
    return out


def test_figures_on_a_hand_made_day():
    day = date(2026, 6, 3)  # a Wednesday
    hours = OpeningHours.from_mapping({"wed": "09:00-17:00"})
    counts = {36: (10, 0), 37: (5, 2), 40: (1, 3), 60: (0, 20)}  # bin 36 = 09:00
    s = summarize_day(bin_msgs(day, BERLIN, 15, counts, flagged={50, 51}, missing={70}), day=day, zone=BERLIN, minutes=15,
                      profile=SiteProfile(20, hours), source="beam")
    assert s["hours"] == 24 and len(s["hourly"]) == 24
    assert s["visits"] == {"in": 16, "out": 25}
    assert s["balance"] == {"in_minus_out": -9, "out_per_in": round(25 / 16, 4)}
    assert s["peak_hour"] == {"start_local": "2026-06-03T09:00:00+02:00", "in": 15}
    assert s["peak_occupancy"] == {"value": 13, "at_local": "2026-06-03T09:30:00+02:00"}
    assert s["completeness"] == {"expected_bins": 96, "received_bins": 95, "healthy_bins": 93, "share": round(93 / 96, 4)}
    # usage: 32 open bins (09:00-17:00); occupancy 10, 13, 13, 13, 11 x 20 (bins 40..59), 0 after
    open_occ = [10, 13, 13, 13] + [11] * 20 + [0] * 8
    assert s["usage_rate"] == {"capacity": 20, "mean": round(sum(open_occ) / 32 / 20, 4), "peak": 0.65, "open_bins": 32}
    assert summarize_day([], day=day, zone=BERLIN, minutes=15, profile=SiteProfile(), source="beam")["usage_rate"] is None


def test_dst_days_have_23_and_25_hours_and_the_repeated_hour_twice():
    spring = summarize_day(bin_msgs(date(2026, 3, 29), BERLIN, 15), day=date(2026, 3, 29), zone=BERLIN, minutes=15,
                           profile=SiteProfile(), source="beam")
    assert spring["hours"] == 23 and len(spring["hourly"]) == 23 and spring["completeness"]["expected_bins"] == 92
    assert "2026-03-29T02:00:00+01:00" not in {h["start_local"] for h in spring["hourly"]}
    counts = {8: (3, 0), 12: (5, 0)}  # 02:00 CEST and 02:00 CET, the first and second 2 o'clock
    autumn = summarize_day(bin_msgs(date(2026, 10, 25), BERLIN, 15, counts), day=date(2026, 10, 25), zone=BERLIN, minutes=15,
                           profile=SiteProfile(), source="beam")
    assert autumn["hours"] == 25 and len(autumn["hourly"]) == 25 and autumn["completeness"]["expected_bins"] == 100
    two = [h for h in autumn["hourly"] if h["start_local"][11:13] == "02"]
    assert [(h["start_local"][-6:], h["in"]) for h in two] == [("+02:00", 3), ("+01:00", 5)]
    assert autumn["peak_hour"]["start_local"] == "2026-10-25T02:00:00+01:00"


def test_device_summary_equals_consumer_recomputation_on_simulated_days(tmp_path, capsys):
    rng = random.Random(7)
    for zone, first, n in ((BERLIN, date(2026, 3, 27), 4), (BERLIN, date(2026, 10, 23), 4),
                           (ZoneInfo("Asia/Kathmandu"), date(2026, 6, 1), 2)):
        dev = Device(tmp_path / f"{zone.key.replace('/', '_')}-{first}.db", zone, local_midnight(first, zone) + 7 * 3600,
                     residents=8_000 if zone.key == "Asia/Kathmandu" else None)  # one site declares its population
        for d in days(first, n):
            dev.journal.add_crossings(visitors(d, zone, rng, 250))
        # the beam link is down for two hours on the second day: flagged bins
        down = local_midnight(days(first, 2)[1], zone) + 12 * 3600
        dev.journal.log_health(down, "beam:door-1", False, "link down")
        dev.journal.log_health(down + 2 * 3600, "beam:door-1", True, "")
        dev.run_until(local_midnight(days(first, n + 1)[-1], zone) + 5 * 3600)
        # a late crossing for an already summarised day: bins and the summary are revised
        late_day = days(first, 2)[1]
        dev.journal.add_crossings([Crossing(local_midnight(late_day, zone) + 10.5 * 3600, "door-1", "in", "beam", 1.0, "late:1")])
        dev.run_until(dev.now + 3600)
        store_path = tmp_path / f"index-{zone.key.replace('/', '_')}-{first}.db"
        store = fast_store(store_path)
        result = deliver(dev, store, duplicate_every=7)
        assert result.get("rejected", 0) == 0 and result["duplicate"] > 0
        sent = dev.summaries_sent()
        assert sorted(sent) == [d.isoformat() for d in days(first, n)]
        truth = dev.truth_in_per_day()
        for day_s, s in sent.items():
            validate("summary", s)
            recomputed = store.recompute_summary("dev-a", date.fromisoformat(day_s))
            assert figures(s) == recomputed, f"{zone.key} {day_s}: device and consumer disagree"
            assert store.received_summary("dev-a", date.fromisoformat(day_s))["revision"] == s["revision"]
            assert s["visits"]["in"] == truth[day_s]
            if dev.residents:  # the gathering rate: the simulator's entries per 1,000 residents
                assert s["gathering_rate"] == {"residents": 8_000, "per_1000": round(truth[day_s] * 1000 / 8_000, 4)}
                assert s["gathering_rate"]["per_1000"] > 0 and s["profile"]["residents"] == 8_000
            else:  # additive: a site without residents sends the summary exactly as before
                assert "gathering_rate" not in s and "residents" not in s["profile"]
            assert s["hours"] == round((day_bounds(date.fromisoformat(day_s), zone)[1] - day_bounds(date.fromisoformat(day_s), zone)[0]) / 3600)
        assert sent[late_day.isoformat()]["revision"] == 1 and sent[first.isoformat()]["revision"] == 0
        flagged = sent[late_day.isoformat()]["completeness"]
        assert flagged["healthy_bins"] == flagged["expected_bins"] - 8  # 2 h of 15-min bins
        if first == date(2026, 3, 27):
            assert sent["2026-03-29"]["hours"] == 23
        if first == date(2026, 10, 23):
            assert sent["2026-10-25"]["hours"] == 25
        # the first day began at 07:00 (the device's first bin): the bins before are gaps
        assert sent[first.isoformat()]["completeness"]["received_bins"] == sent[first.isoformat()]["completeness"]["expected_bins"] - 28
        # the consumer's CLI shows both and says they agree
        store.conn.close()
        assert main(["index", "summary", "--db", str(store_path), "--device", "dev-a", "--day", late_day.isoformat()]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert shown["agree"] is True and shown["received"]["revision"] == 1 and shown["why"] == []
        # a bin the consumer lost: it says so, and why
        with sqlite3.connect(store_path) as c:
            c.execute("DELETE FROM bins WHERE device = 'dev-a' AND local_date = ? AND visits_in > 0 AND rowid ="
                      " (SELECT MIN(rowid) FROM bins WHERE local_date = ? AND visits_in > 0)",
                      (late_day.isoformat(), late_day.isoformat()))
        assert main(["index", "summary", "--db", str(store_path), "--device", "dev-a", "--day", late_day.isoformat()]) == 1
        shown = json.loads(capsys.readouterr().out)
        assert shown["agree"] is False
        assert "the consumer has 1 fewer bins than the device summarised" in shown["why"][0], shown["why"]
        assert "visits" in shown["why"][-1] and "completeness" in shown["why"][-1]


def test_summary_published_at_rebase_and_on_request_through_a_broker(broker, tmp_path):
    day = date(2026, 3, 29)  # spring forward
    start = local_midnight(day, BERLIN)
    clock = VirtualClock(start)
    extra = "\n[site]\ncapacity = 30\n[site.opening_hours]\n" + "\n".join(f'{k} = "{v}"' for k, v in HOURS.items()) + "\n"
    cfg = agent_config(tmp_path, broker.port, tz="Europe/Berlin", minutes=15, extra=extra)
    cons = IndexConsumer(ConsumerSettings(port=broker.port, replay_after_s=1.0), IndexStore(tmp_path / "index.db"))
    cons.start()
    assert cons.connected.wait(10)
    agent = Agent(cfg, clock)
    agent.open()
    agent.publisher.start()
    drained = lambda: agent.writer.call(lambda j: agent.outbox.backlog()) == 0 and agent.publisher.inflight() == 0  # noqa: E731
    try:
        agent.writer.add_crossings(visitors(day, BERLIN, random.Random(3), 120))
        clock.advance(26 * 3600)  # 03:00 next day: before the 04:00 re-base
        wait_for(drained, step=agent.tick, what="drain")
        assert cons.store.received_summary("dev-a", day) is None
        clock.advance(3600 + 60)  # past 04:00: the summary is due
        wait_for(lambda: cons.store.received_summary("dev-a", day) is not None, step=agent.tick, what="scheduled summary")
        got = cons.store.received_summary("dev-a", day)
        assert got["trigger"] == "schedule" and got["hours"] == 23 and got["visits"]["in"] == 120
        assert got["usage_rate"]["capacity"] == 30
        assert figures(got) == cons.store.recompute_summary("dev-a", day)
        # the index system asks for it again (and for a malformed date, which is ignored)
        cons.client.publish("footfall/v1/site-1/dev-a/cmd/summary", json.dumps({"date": "29-03-2026"}), qos=1)
        cons.client.publish("footfall/v1/site-1/dev-a/cmd/summary", json.dumps({"date": day.isoformat()}), qos=1)
        wait_for(lambda: cons.store.received_summary("dev-a", day)["trigger"] == "request", step=agent.tick, what="requested summary")
        again = cons.store.received_summary("dev-a", day)
        assert figures(again) == figures(got) and again["revision"] == got["revision"]
    finally:
        agent.stop()
        cons.stop()


def test_cli_summary_prints_the_device_figures_and_queues_a_request(tmp_path, capsys):
    day = date(2026, 3, 29)
    start = local_midnight(day, BERLIN)
    cfg_path = agent_toml(tmp_path, 1883, tz="Europe/Berlin", minutes=15)
    cfg = agent_config(tmp_path, 1883, tz="Europe/Berlin", minutes=15)
    agent = Agent(cfg, VirtualClock(start))
    agent.open()
    try:
        agent.writer.add_crossings(visitors(day, BERLIN, random.Random(5), 80))
        agent.clock.advance(25 * 3600)
        agent.writer.call(lambda j: agent.binner.tick(agent.clock.wall()))
    finally:
        agent.writer.stop()
    assert main(["--config", str(cfg_path), "summary", "--day", day.isoformat(), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["visits"]["in"] == 80 and s["hours"] == 23 and s["completeness"]["share"] == 1.0
    assert main(["--config", str(cfg_path), "summary", "--day", day.isoformat(), "--publish"]) == 0
    text = capsys.readouterr().out
    assert "visits in 80" in text and "queued" in text
    import sqlite3

    rows = sqlite3.connect(cfg.storage.journal_path).execute("SELECT local_date, origin FROM summary_requests").fetchall()
    assert rows == [(day.isoformat(), "cli")]


def test_cli_summary_refuses_a_bad_date_and_a_missing_journal(tmp_path, capsys):
    cfg_path = agent_toml(tmp_path, 1883)
    with pytest.raises(SystemExit):
        main(["--config", str(cfg_path), "summary", "--day", "29.03.2026"])
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert main(["--config", str(cfg_path), "summary", "--day", "2026-03-29"]) == 2
    assert "has not counted anything yet" in capsys.readouterr().err


def test_why_not_says_the_day_is_not_over_and_what_is_missing():
    from index_system.cli import why_not

    day = summarize_day([], day=date(2026, 6, 1), zone=BERLIN, minutes=15, profile=SiteProfile(), source="beam")
    mid_day = local_midnight(date(2026, 6, 1), BERLIN) + 12 * 3600
    assert why_not(day, day, mid_day) == []
    assert why_not(None, None, mid_day) == ["the consumer stored no bins of this device for this day"]
    [reason] = why_not(None, day, mid_day)
    assert reason.startswith("no summary received yet: the day is not over (it ends 2026-06-01T22:00:00Z)")
    later = dict(day, completeness=dict(day["completeness"], received_bins=48))
    reasons = why_not(day, later, mid_day)
    assert reasons[0] == "the day is not over yet (it ends 2026-06-01T22:00:00Z): bins are still arriving"
    assert "48 bins the device's summary did not include" in reasons[1] and reasons[2] == "figures that differ: completeness"
