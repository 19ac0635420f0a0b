"""Argument types shared by several commands."""

from __future__ import annotations

import argparse
from datetime import date


def local_day(text: str) -> date:
    """A local calendar date given as YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD, e.g. 2026-03-29") from None
