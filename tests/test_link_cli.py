"""`footfall ir walk-test` and `ir monitor` against the virtual board on a real pty."""

from __future__ import annotations

import pytest

from edge.cli import main
from simulator import people
from simulator.virtual_mcu import VirtualMcu


def board(tmp_path, n_in, n_out):
    crowd = people.Crowd()
    pool = people.generate(people.CrowdSpec(count=60, mix={"single": 1}, seed=9)).people
    ins = [p for p in pool if p.truth == "in"][:n_in]
    outs = [p for p in pool if p.truth == "out"][:n_out]
    crowd.people = ins + outs
    assert len(crowd.people) == n_in + n_out
    edges = people.debounce(people.beam_edges(crowd, people.BeamSpec(glitch_per_hour=0, flicker_prob=0)), 0.003)
    mcu = VirtualMcu(tmp_path / "ttyDoor", edges, speedup=200)
    mcu.start()
    return mcu


@pytest.mark.parametrize("told_in,told_out,rc", [(3, 2, 0), (4, 2, 1)])
def test_walk_test_reports_counted_against_told(tmp_path, capsys, told_in, told_out, rc):
    mcu = board(tmp_path, 3, 2)
    try:
        code = main(["ir", "walk-test", "--port", str(tmp_path / "ttyDoor"), "--in", str(told_in),
                     "--out", str(told_out), "--seconds", "4"])
    finally:
        mcu.stop()
    out = capsys.readouterr().out
    assert code == rc
    assert "counted         in 3  out 2" in out
    assert ("PASS" in out) == (rc == 0) and ("FAIL" in out) == (rc == 1)


def test_walk_test_hints_at_swapped_direction(tmp_path, capsys):
    mcu = board(tmp_path, 3, 1)
    try:
        code = main(["ir", "walk-test", "--port", str(tmp_path / "ttyDoor"), "--in", "1", "--out", "3",
                     "--seconds", "4"])
    finally:
        mcu.stop()
    assert code == 1 and "swapped" in capsys.readouterr().out


def test_missing_port_is_a_user_error(tmp_path, capsys):
    assert main(["ir", "monitor", "--port", str(tmp_path / "nope"), "--seconds", "1"]) == 2
    assert "no serial device" in capsys.readouterr().err


def test_monitor_shows_the_board(tmp_path, capsys):
    mcu = board(tmp_path, 2, 1)
    try:
        assert main(["ir", "monitor", "--port", str(tmp_path / "ttyDoor"), "--seconds", "2.5"]) == 0
    finally:
        mcu.stop()
    out = capsys.readouterr().out
    assert "epoch 1" in out and "crossings" in out
    assert "CRC failures" in out and "unknown type" in out and "other version" in out and "malformed" in out
