"""Shared paths for the camera tests: the real footage and the shipped model."""

from __future__ import annotations

from pathlib import Path

import pytest

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
DATA = Path(__file__).resolve().parent / "data"

INSTALL_HINT = f"{VTEST} absent: run `make test` (scripts/install-system-deps.sh) or apt-get install -y opencv-doc"


def require_vtest() -> Path:
    """The footage, or a failure that says how to get it (a missing resource never skips)."""
    if not VTEST.is_file():
        pytest.fail(INSTALL_HINT, pytrace=False)
    return VTEST


# a test that needs the footage fails with the install hint when it is absent (tests/conftest.py)
needs_vtest = pytest.mark.usefixtures("vtest_avi")


def read_vtest_frames(start: int = 0, count: int = 1):
    """Decode frames [start, start + count) of vtest.avi with OpenCV."""
    import cv2

    cap = cv2.VideoCapture(str(VTEST))
    cap.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    for _ in range(count):
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames
