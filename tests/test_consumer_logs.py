"""`footfall index run` tells a person what it does: connecting, and each replay it asks for
(a real Mosquitto; a device's real messages with one held back, as a broker crash loses one)."""

from __future__ import annotations

import json
import logging
import time

import paho.mqtt.client as mqtt

from day_sim import morning_outbox
from harness import wait_for
from index_system.consumer import ConsumerSettings, IndexConsumer, IndexStore


def test_the_consumer_logs_its_replay_requests(broker, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    msgs = morning_outbox(tmp_path, seed=3, n=30, hours=12)
    held = msgs[5][2]
    cons = IndexConsumer(ConsumerSettings(port=broker.port, replay_after_s=0.5), IndexStore(tmp_path / "index.db"))
    cons.start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fake-device")
    asked: list[dict] = []
    pub.on_message = lambda c, u, m: asked.append(json.loads(m.payload))
    pub.connect("127.0.0.1", broker.port)
    pub.subscribe("footfall/v1/site-1/dev-a/cmd/replay", qos=1)
    pub.loop_start()
    try:
        assert cons.connected.wait(10)
        for topic, payload, seq in msgs:
            if seq != held:
                pub.publish(topic, payload, qos=1).wait_for_publish(5)
        wait_for(lambda: cons.store.gaps() == [("dev-a", 1, held, held)], 20, what="the gap at the consumer")
        cons.request_replays()
        time.sleep(0.6)
        wait_for(lambda: asked, 10, step=cons.request_replays, what="the replay request on the broker")
    finally:
        pub.loop_stop()
        pub.disconnect()
        cons.stop()
    assert asked[0] == {"epoch": 1, "from_seq": held, "to_seq": held}
    said = [r for r in caplog.records if "to replay" in r.getMessage()]
    assert said and said[0].levelno == logging.INFO
    assert f"asked dev-a (site site-1) to replay epoch 1 seq {held}..{held}" in said[0].getMessage()
    assert any("index consumer: connected to localhost:" in r.getMessage() for r in caplog.records)
