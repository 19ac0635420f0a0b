"""Argument types shared by several commands."""

from __future__ import annotations

import argparse
from datetime import date

from edge.errors import UserError


def local_day(text: str) -> date:
    """A local calendar date given as YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-29") from None


def floats(text: str, n: int, what: str) -> tuple[float, ...]:
    """``n`` comma-separated numbers (a line's x1,y1,x2,y2, a point's x,y)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise UserError(f"{what} needs {n} comma-separated numbers, got {text!r}")
    return values
