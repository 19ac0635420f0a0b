"""The agent over TLS with per-device credentials to the shipped broker config and ACL."""

from __future__ import annotations

import time

from edge.agent import Agent
from edge.clock import VirtualClock
from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore
from harness import agent_config, wait_for
from simulator.local_broker import SECURE_USERS
from test_publish_e2e import crossings


def tls_extra(tmp_path, broker, username: str) -> str:
    pw = tmp_path / f"{username}.password"
    pw.write_text(SECURE_USERS[username] + "\n")
    return (f'tls = true\nca_file = "{broker.tls.ca_cert}"\npassword_file = "{pw}"\n'
            f'username = "{username}"\n')


def secure_config(tmp_path, broker, device: str, username: str):
    agent_config(tmp_path, broker.port, device=device)  # writes the plain config
    cfg_path = tmp_path / f"{device}.toml"
    text = cfg_path.read_text().replace("tls = false\n", tls_extra(tmp_path, broker, username))
    cfg_path.write_text(text)
    from edge import config

    return config.load(cfg_path)


def test_tls_credentials_acl_and_replay(secure_broker, tmp_path):
    start = time.time() - 2 * 3600
    clock = VirtualClock(start)
    agent = Agent(secure_config(tmp_path, secure_broker, "dev-a", "dev-a"), clock)
    cons = IndexConsumer(ConsumerSettings(host="localhost", port=secure_broker.port, username="index",
                                          password=SECURE_USERS["index"], tls=True, ca_file=str(secure_broker.tls.ca_cert),
                                          replay_after_s=0.5), IndexStore(tmp_path / "index.db"))
    cons.start()
    assert cons.connected.wait(10)
    agent.open()
    agent.publisher.start()
    try:
        agent.writer.add_crossings(crossings(start + 5, 90))
        clock.advance(3600)
        wait_for(lambda: cons.store.totals()["bins"] == 60, step=agent.tick, what="bins over TLS")
        assert cons.store.totals()["in"] == sum(1 for i in range(90) if i % 3)
        # the index system notices a hole (here: we forget messages 5..9) and the device resends them
        cons.store.conn.execute("DELETE FROM messages WHERE seq BETWEEN 5 AND 9")
        cons.store.rescan()  # gaps are tracked per message; a repair of the table is re-read
        assert cons.store.gaps() == [("dev-a", 1, 5, 9)]

        def step() -> None:
            agent.tick()
            cons.request_replays()

        wait_for(lambda: not cons.store.gaps(), step=step, what="replayed over TLS through the ACL")
    finally:
        agent.stop()
        cons.stop()


def test_device_publishing_as_another_is_refused_and_keeps_its_counts(secure_broker, tmp_path):
    """Misconfigured: device id dev-b but dev-a's credentials. The ACL refuses every
    publish (MQTT 5 PUBACK 'not authorized'); nothing is marked sent, health says why."""
    start = time.time() - 3600
    clock = VirtualClock(start)
    agent = Agent(secure_config(tmp_path, secure_broker, "dev-b", "dev-a"), clock)
    agent.open()
    agent.publisher.start()
    try:
        agent.writer.add_crossings(crossings(start + 5, 20))
        clock.advance(1800)
        wait_for(lambda: "refused" in agent.health.snapshot()["mqtt"].detail, step=agent.tick, what="refusal seen")
        backlog = agent.writer.call(lambda j: agent.outbox.backlog())
        assert backlog >= 30 and agent.publisher.sent_count == 0
        assert "not authorized" in agent.health.snapshot()["mqtt"].detail.lower()
    finally:
        agent.stop()
