"""The index store on PostgreSQL gives what it gives on SQLite: the same messages delivered to
both (the two devices and two weeks of tests/test_week_view.py, some messages twice, a bin
revised, a duplicate identity), then every report, the week view, the device health, the
day summaries and the lobby pages compared whole. A real PostgreSQL (conftest `pg_url`)."""

from __future__ import annotations

import json
import random
from datetime import date

from day_sim import PREFIX, Device, days, deliver, fast_store, local_midnight, visitors
from edge.cli import main
from index_system.consumer import IndexStore
from index_system.lobby_server import LobbyServer
from test_week_view import END, FIRST, RESIDENTS, SHANGHAI


def two_devices(tmp_path) -> list[Device]:
    """test_week_view's site: two doors, 14 days, the second week busier."""
    rng = random.Random(4)
    out = []
    for name, scale in (("door-a", 1.0), ("door-b", 0.5)):
        dev = Device(tmp_path / f"{name}.db", SHANGHAI, local_midnight(FIRST, SHANGHAI), device=name,
                     capacity=60 if name == "door-a" else None, residents=RESIDENTS if name == "door-a" else None)
        for i, d in enumerate(days(FIRST, 14)):
            dev.journal.add_crossings(visitors(d, SHANGHAI, rng, int((100 + 10 * i) * scale), tag=name))
        dev.run_until(local_midnight(date(2026, 6, 15), SHANGHAI) + 5 * 3600, step_s=6 * 3600)
        out.append(dev)
    return out


def everything(store: IndexStore, db: str, capsys) -> dict:
    """Every figure the index side shows, from one store."""
    lobby = LobbyServer(("127.0.0.1", 0), store, "District", 30)  # rendered without a request
    lobby.server_close()
    out = {"daily": store.daily(), "daily_site": store.daily("site-1"), "week": store.week(), "week_end": store.week(END),
           "totals": store.totals(), "gaps": store.gaps(), "health": store.device_health(1.9e9, 300.0),
           "devices": store.devices(), "last": store.last_date(),
           "summaries": {(dev, d.isoformat()): (store.recompute_summary(dev, d), store.received_summary(dev, d))
                         for dev in ("door-a", "door-b") for d in days(FIRST, 15)},
           "district_page": lobby.render("/", {"day": [END.isoformat()]}),
           "site_page": lobby.render("/site/site-1", {"day": ["2026-06-10"]})}
    for args in (["--json"], ["--week", "--end", END.isoformat(), "--json"], ["--devices", "--json", "--now", "1.9e9"]):
        assert main(["index", "report", "--db", db, *args]) == 0
        out[" ".join(args)] = json.loads(capsys.readouterr().out)
    assert main(["index", "summary", "--db", db, "--device", "door-a", "--day", "2026-06-09"]) == 0
    out["summary_cli"] = json.loads(capsys.readouterr().out)["recomputed"]
    return out


def test_reports_week_view_and_pages_are_the_same_from_sqlite_and_postgresql(tmp_path, pg_url, capsys):
    lite, pg = fast_store(tmp_path / "index.db"), IndexStore(pg_url)
    results = []
    devices = two_devices(tmp_path)
    for dev in devices:
        for store in (lite, pg):
            results.append(deliver(dev, store, duplicate_every=7))
    assert results[0] == results[1] and results[0]["duplicate"] > 0 and "rejected" not in results[0]
    # a higher revision of one bin, then the lower one again, then one identity with another content
    topic, body = next((t, b) for t, b in devices[0].messages() if t.endswith("/bins"))
    revised = {**body, "seq": 10_000, "revision": body["revision"] + 1, "total": {**body["total"], "in": body["total"]["in"] + 5}}
    other = {**body, "total": {**body["total"], "in": body["total"]["in"] + 1}}
    for store in (lite, pg):
        assert [store.ingest(topic, json.dumps(m).encode(), PREFIX, 1.8e9) for m in (revised, body, other)] == \
            ["new", "duplicate", "conflict"]
    a, b = everything(lite, str(tmp_path / "index.db"), capsys), everything(pg, pg_url, capsys)
    assert a["week_end"][0]["visits_week"] > 0 and a["summaries"][("door-a", "2026-06-09")][1] is not None
    assert a["health"][0]["duplicate_identity"] == 1
    for key in a:
        assert a[key] == b[key], key
    # the revised bin won on both, and the gap its seq opened is seen on both
    assert a["totals"]["in"] == sum(d["visits_in"] for d in a["daily"])
    assert any(g[0] == body["device"] and g[3] == 9_999 for g in a["gaps"])


def test_a_second_open_migrates_nothing_twice_and_sees_the_rows(pg_url):
    """Opening twice (two instances, a restart) is harmless; the rows are shared."""
    first = IndexStore(pg_url)
    second = IndexStore(pg_url)
    assert first.totals() == second.totals() == {"in": 0, "out": 0, "bins": 0}
    columns = {r[0] for r in first.conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'devices' AND table_schema = current_schema()")}
    assert {"last_bin_utc", "bin_minutes"} <= columns


def test_a_lost_server_connection_costs_the_message_in_flight_only(pg_url):
    """The server ends the store's connection (as a PostgreSQL restart does): the message in
    flight is refused as `store_error` and kept whole in the quarantine, the next one is
    stored on a new connection, and the kept one can be ingested again."""
    from index_peers import bin_at, topic
    from index_system.store_sql import PgConnection

    import time

    store, admin = IndexStore(pg_url), PgConnection(pg_url)
    first, second = bin_at("dev-a", "site-1", 1, 3), bin_at("dev-a", "site-1", 2, 2)
    admin.execute("SELECT pg_terminate_backend(?)", (store.conn.conn.info.backend_pid,))
    now = time.time()
    assert store.ingest(topic("site-1", "dev-a", "bins"), first, PREFIX, now) == "rejected"
    assert store.ingest(topic("site-1", "dev-a", "bins"), second, PREFIX, now) == "new"
    (kept,) = store.conn.execute("SELECT payload FROM rejects WHERE reason = 'store_error'").fetchone()
    assert bytes(kept) == first
    assert store.ingest(topic("site-1", "dev-a", "bins"), bytes(kept), PREFIX, now) == "new"
    assert store.totals()["bins"] == 2 and store.gaps() == []
    admin.close()
