"""contract/inputs.py, the pieces both sides of the wire use at an input's entry."""

from __future__ import annotations

import logging

import pytest

from contract.inputs import InputError, InputGuard, nesting_depth, parse_json


@pytest.mark.parametrize("payload, why", [
    (b"[" * 200_000, "nested deeper than 4"),     # json.loads alone raises RecursionError (or worse)
    (b"[" * 50 + b"]" * 50, "deeper than 4"),
    (b'{"a": NaN}', "NaN is not JSON"),
    (b"\xff\xfe\x00garbage", "not JSON"),
    (b"x" * 300_000, "more than 250000"),
    (b"1" * 5000, "not JSON"),                     # past Python's int digit limit
])
def test_parse_json_refuses_with_input_error_only(payload, why):
    with pytest.raises(InputError, match=why):
        parse_json(payload, max_bytes=250_000, max_depth=4)


def test_parse_json_takes_what_is_within_bounds():
    assert parse_json(b'{"a": [1, {"b": 2}]}', max_bytes=100, max_depth=3) == {"a": [1, {"b": 2}]}
    assert nesting_depth(b"1") == 0 and nesting_depth(b"[]") == 1 and nesting_depth(b'{"a": [[]], "b": "[[[["}') == 3


def test_a_guarded_callback_never_raises_and_the_quarantine_is_bounded(caplog):
    guard = InputGuard("t", logging.getLogger("t"), keep=3)

    def boom(client, userdata, msg):
        raise RecursionError("deep")

    cb = guard.callback("on_message", boom, describe=lambda c, u, m: ("topic/x", m))
    with caplog.at_level(logging.ERROR, logger="t"):
        for i in range(10):
            assert cb(None, None, b"payload %d" % i) is None
    assert guard.counts["failed"] == 10 and len(guard.quarantine) == 3
    assert guard.quarantine[-1].head == b"payload 9" and guard.quarantine[-1].where == "topic/x"
    assert len(caplog.records) == 1, "one line a minute per entry"
    snap = guard.snapshot()
    assert snap["counts"] == {"failed": 10} and snap["recent"][-1]["reason"] == "RecursionError: deep"
