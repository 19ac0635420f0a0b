"""Appearance-based swap repair between tracker and counter (`edge.identity_repair`)."""

from __future__ import annotations

import numpy as np

from edge.appearance import distance, torso_histograms
from edge.box_overlap import overlap_of_smaller
from edge.identity_repair import IdentityRepair

RED, NAVY, GREY = (30, 30, 200), (90, 30, 20), (128, 128, 128)  # BGR


def _scene(people: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    """A grey frame with a person per (left x, coat colour): coat on the torso, dark legs."""
    img = np.full((240, 320, 3), GREY, np.uint8)
    for x, coat in people:
        x = int(x)
        img[60:80, x + 8:x + 22] = (150, 170, 200)  # head
        img[80:130, x:x + 30] = coat
        img[130:180, x + 3:x + 27] = (40, 40, 40)  # legs
    return img


def _box(x: float) -> list[float]:
    return [x, 60, x + 30, 180]


def _walk(repair: IdentityRepair, swap_at_parting: bool, colours=(RED, NAVY), colour: bool = True
          ) -> list[dict[int, int]]:
    """The red person walks right from x=40, the navy one left from x=240, 10 px a frame;
    they meet at frame 10. Frames 8-12: the tracker gives one box over both to track 1
    (track 2 coasts); from frame 13 they are apart, and with ``swap_at_parting`` the
    tracker puts track 1 on the navy person and track 2 on the red one. Per frame: the
    reported id -> the colour index of the person in that box."""
    out = []
    for f in range(20):
        xr, xn = 40 + 10 * f, 240 - 10 * f
        img = _scene([(xr, colours[0]), (xn, colours[1])])
        if 8 <= f <= 12:
            ids, boxes, who = [1], [[min(xr, xn), 60, max(xr, xn) + 30, 180]], [-1]
        elif f > 12 and swap_at_parting:
            ids, boxes, who = [1, 2], [_box(xn), _box(xr)], [1, 0]
        else:
            ids, boxes, who = [1, 2], [_box(xr), _box(xn)], [0, 1]
        rep = repair.update(img, np.array(ids, np.int64), np.array(boxes, np.float32), f / 10.0, colour=colour)
        out.append({int(r): w for r, w in zip(rep.tolist(), who)})
    return out


def test_torso_colours_tell_red_from_navy() -> None:
    img = _scene([(40, RED), (200, NAVY)])
    red, navy = torso_histograms(img, np.array([_box(40), _box(200)]))
    red2 = torso_histograms(_scene([(100, RED)]), np.array([_box(100)]))[0]
    assert distance(red, red2) < 0.05 and distance(red, navy) > 0.9
    assert torso_histograms(img, np.array([[5, 5, 8, 8]]))[0] is None  # too small to say


def test_overlap_is_of_the_smaller_box() -> None:
    ov = overlap_of_smaller(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 100, 100], [5, 0, 15, 10], [20, 20, 30, 30]]))
    assert np.allclose(ov, [[1.0, 0.5, 0.0]])


def test_a_swap_after_a_merge_is_repaired() -> None:
    """Without repair, id 1 would report the navy person after the merge; with it, each
    reported id keeps its person throughout."""
    frames = _walk(IdentityRepair(), swap_at_parting=True)
    assert frames[0] == {1: 0, 2: 1} and frames[-1] == {1: 0, 2: 1}
    assert all(f == {1: 0, 2: 1} for f in frames[13:])


def test_no_swap_when_the_tracker_kept_them_apart_right() -> None:
    frames = _walk(IdentityRepair(), swap_at_parting=False)
    assert all(f == {1: 0, 2: 1} for f in frames[13:])


def test_no_swap_between_people_dressed_alike() -> None:
    """Two red coats: the crossed fit is no better than the straight one (a near tie),
    so the tracker's assignment stands."""
    frames = _walk(IdentityRepair(), swap_at_parting=True, colours=(RED, RED))
    assert all(f == {1: 1, 2: 0} for f in frames[13:])


def test_no_swap_without_a_merge() -> None:
    """The ids are only exchanged after a merge: two tracks apart all the time keep the
    tracker's ids even if their colours would fit better crossed."""
    repair = IdentityRepair()
    for f in range(10):
        img = _scene([(40, RED), (240, NAVY)] if f < 5 else [(40, NAVY), (240, RED)])
        rep = repair.update(img, np.array([1, 2]), np.array([_box(40), _box(240)], np.float32), f / 10.0)
        assert rep.tolist() == [1, 2]
    assert repair.swaps == []


def test_no_swap_on_grey_infrared_frames() -> None:
    """The camera's night picture has no colours: nothing is learnt or resolved, and the
    tracker's assignment stands (a swap there would be a guess)."""
    repair = IdentityRepair()
    frames = _walk(repair, swap_at_parting=True, colour=False)
    assert all(f == {1: 1, 2: 0} for f in frames[13:])
    assert repair.swaps == [] and repair.decisions == []
