"""`footfall replay-detections` on real files in MOT-Challenge format."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from edge.cli import main
from edge.mot_format import MotFormatError, read_detections, write_tracks
from simulator.detections import StreamSpec, generate


def write_mot(path, frames):
    with open(path, "w") as fh:
        for i, (boxes, scores) in enumerate(frames, start=1):
            for (x1, y1, x2, y2), s in zip(boxes, scores):
                fh.write(f"{i},-1,{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{s:.3f},-1,-1,-1\n")


def lone_walker(n=40, down=True):
    ys = np.linspace(120, 380, n) if down else np.linspace(380, 120, n)
    return [(np.array([[300.0, y - 100, 340.0, y]]), np.array([0.9])) for y in ys]


def run_cli(capsys, *args):
    rc = main(["replay-detections", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_lone_walker_counts_one_in_with_json(tmp_path, capsys):
    det = tmp_path / "det.txt"
    write_mot(det, lone_walker())
    rc, out, _ = run_cli(capsys, det, "--line", "0,240,640,240", "--inside", "320,470", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert (doc["in"], doc["out"]) == (1, 0)
    (c,) = doc["crossings"]
    assert c["direction"] == "in" and c["track"] == 1
    # The bottom-centre passes 240 + 8 px (hysteresis) around frame 20 of 40.
    assert 18 <= c["frame"] <= 24


def test_plain_output_lists_counts_and_crossings(tmp_path, capsys):
    det = tmp_path / "det.txt"
    write_mot(det, lone_walker(down=False))
    rc, out, _ = run_cli(capsys, det, "--line", "0,240,640,240", "--inside", "320,470", "--fps", "10")
    assert rc == 0
    lines = out.strip().splitlines()
    assert lines[0] == "in: 0  out: 1"
    assert lines[1].startswith("frame ") and lines[1].endswith("track 1  out")


def test_synthetic_crowd_counts_match_the_library_and_truth(tmp_path, capsys):
    stream = generate(StreamSpec(in_view=20, duration_s=40.0, seed=3))
    det = tmp_path / "crowd.txt"
    write_mot(det, [(f.boxes, f.scores) for f in stream.frames])
    tracks = tmp_path / "tracks.txt"
    (x1, y1), (x2, y2) = stream.line
    rc, out, _ = run_cli(capsys, det, "--line", f"{x1},{y1},{x2},{y2}", "--inside",
                         f"{stream.inside[0]},{stream.inside[1]}", "--tracks-out", tracks, "--json")
    assert rc == 0
    doc = json.loads(out)
    # Truth is by box centre, the command counts the bottom-centre: compare totals loosely.
    true_in = sum(c.direction == "in" for c in stream.crossings)
    true_out = len(stream.crossings) - true_in
    assert abs(doc["in"] - true_in) <= max(3, 0.06 * true_in)
    assert abs(doc["out"] - true_out) <= max(3, 0.06 * true_out)
    assert len(doc["crossings"]) == doc["in"] + doc["out"]
    # Tracks come back in the same format, one row per confirmed track and frame.
    with open(tracks) as fh:
        frames = list(read_detections(fh, fill_gaps=False))
    assert frames and all(f.boxes_xyxy.shape[1] == 4 for f in frames)
    text = tracks.read_text().splitlines()
    pairs = [tuple(line.split(",")[:2]) for line in text]
    assert len(pairs) == len(set(pairs))  # no track twice in one frame
    assert {int(p[1]) for p in pairs} >= {c["track"] for c in doc["crossings"]}


def test_missing_frames_are_replayed_as_empty_frames():
    text = "1,-1,10,10,20,40,0.9\n4,-1,10,10,20,40,0.9\n"
    frames = list(read_detections(io.StringIO(text)))
    assert [f.frame for f in frames] == [1, 2, 3, 4]
    assert [len(f.scores) for f in frames] == [1, 0, 0, 1]
    np.testing.assert_allclose(frames[0].boxes_xyxy, [[10, 10, 30, 50]])


def test_score_defaults_to_one_and_comments_are_skipped():
    frames = list(read_detections(io.StringIO("# header\n\n2,7,0,0,5,5\n")))
    assert frames[-1].scores.tolist() == [1.0]


@pytest.mark.parametrize("line, why", [
    ("1,-1,10,10,20", "at least 6"),
    ("1,-1,10,ten,20,40,0.9", "not a number"),
    ("0,-1,10,10,20,40,0.9", "frame must be"),
    ("1.5,-1,10,10,20,40,0.9", "frame must be"),
    ("1,-1,10,10,-20,40,0.9", "positive"),
    ("1,-1,10,10,nan,40,0.9", "finite"),
])
def test_bad_lines_name_the_line_and_the_reason(line, why):
    with pytest.raises(MotFormatError, match=why) as err:
        list(read_detections(io.StringIO("1,-1,0,0,5,5,0.9\n" + line + "\n"), source="d.txt"))
    assert "d.txt:2:" in str(err.value)


def test_write_tracks_round_trips():
    buf = io.StringIO()
    write_tracks(buf, 3, np.array([5]), np.array([[1.0, 2.0, 11.0, 22.0]]), np.array([0.5]))
    assert buf.getvalue() == "3,5,1.00,2.00,10.00,20.00,0.500,-1,-1,-1\n"
    (f,) = list(read_detections(io.StringIO(buf.getvalue()), fill_gaps=False))
    np.testing.assert_allclose(f.boxes_xyxy, [[1, 2, 11, 22]])


def test_user_errors_are_clear_and_exit_2(tmp_path, capsys):
    rc, _, err = run_cli(capsys, tmp_path / "nope.txt", "--line", "0,240,640,240", "--inside", "320,470")
    assert rc == 2 and "cannot read detections" in err
    det = tmp_path / "det.txt"
    det.write_text("1,-1,10,10,20,40,0.9\n1,-1,x\n")
    rc, _, err = run_cli(capsys, det, "--line", "0,240,640,240", "--inside", "320,470")
    assert rc == 2 and "det.txt:2:" in err
    rc, _, err = run_cli(capsys, det, "--line", "0,240,640", "--inside", "320,470")
    assert rc == 2 and "--line needs 4" in err
    rc, _, err = run_cli(capsys, det, "--line", "0,240,640,240", "--inside", "320,240")
    assert rc == 2 and "inside point" in err
    rc, _, err = run_cli(capsys, det, "--line", "0,240,640,240", "--inside", "320,470", "--fps", "0")
    assert rc == 2 and "--fps" in err


def test_empty_file_counts_nothing(tmp_path, capsys):
    det = tmp_path / "empty.txt"
    det.write_text("")
    rc, out, _ = run_cli(capsys, det, "--line", "0,240,640,240", "--inside", "320,470", "--json")
    assert rc == 0 and json.loads(out) == {"in": 0, "out": 0, "crossings": []}


def test_anchor_picks_the_point_of_the_box_that_crosses(tmp_path, capsys):
    """A walker going down: the box's centre reaches the line 50 px (half a box) after
    its bottom edge does, so --anchor centre counts the same crossing later."""
    det = tmp_path / "det.txt"
    write_mot(det, lone_walker(n=80))
    frames = {}
    for anchor in ("bottom_centre", "centre"):
        rc, out, _ = run_cli(capsys, det, "--line", "0,240,640,240", "--inside", "320,470",
                             "--json", "--anchor", anchor)
        assert rc == 0
        (c,) = json.loads(out)["crossings"]
        assert c["direction"] == "in"
        frames[anchor] = c["frame"]
    # 260 px over 80 frames: 50 px is about 15 frames.
    assert 12 <= frames["centre"] - frames["bottom_centre"] <= 18
    with pytest.raises(SystemExit):
        main(["replay-detections", str(det), "--line", "0,240,640,240", "--inside", "320,470",
              "--anchor", "top"])
    assert "invalid choice" in capsys.readouterr().err


def _cli(*args: str) -> list[str]:
    import sys
    return [sys.executable, "-m", "edge.cli", "replay-detections", *args]


def _crowd_file(tmp_path):
    stream = generate(StreamSpec(in_view=20, duration_s=30.0, seed=9))
    det = tmp_path / "crowd.txt"
    write_mot(det, [(f.boxes, f.scores) for f in stream.frames])
    (x1, y1), (x2, y2) = stream.line
    return det, ["--line", f"{x1},{y1},{x2},{y2}", "--inside", f"{stream.inside[0]},{stream.inside[1]}"]


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    """`footfall replay-detections ... | head`: the reader goes away; the command must end
    quietly, nothing on stderr (no BrokenPipeError traceback), with status 141 like a
    command killed by SIGPIPE (edge.cli's convention for every command). Real pipes, real
    subprocesses: once with the read end closed before the command writes anything (EPIPE
    for certain), once through `head -n 2` (EPIPE only if the output outran the pipe)."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    det, geometry = _crowd_file(tmp_path)
    proc = subprocess.Popen(_cli(str(det), *geometry), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=root, env=env)
    proc.stdout.close()  # no reader left: every write gets EPIPE
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == b""

    cmd = " ".join(map(repr, _cli(str(det), *geometry))) + " | head -n 2"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                         cwd=root, env=env, timeout=120)
    assert out.returncode in (0, 141) and out.stderr == ""
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("in: ") and lines[1].startswith("frame ")
