"""The Crossing: the one currency between counting sources and the journal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["in", "out"]
Source = Literal["beam", "camera", "fused"]
DIRECTIONS: tuple[Direction, ...] = ("in", "out")
SOURCES: tuple[Source, ...] = ("beam", "camera", "fused")


@dataclass(frozen=True, slots=True)
class Crossing:
    """One person passing a door or counting line.

    `source_ref` is the source's own identity for the event (``mcu:<epoch>:<seq>`` for
    beams, ``cam:<run>:<track>:<line>:<n>`` for the camera): the journal refuses a
    second crossing with the same (source, source_ref), which makes replays harmless.
    """

    t_utc: float  # seconds since the Unix epoch, UTC
    line: str  # door or counting-line id from the config
    direction: Direction
    source: Source
    confidence: float  # 0..1; below 1 for estimates (long blockages, weak tracks)
    source_ref: str

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', not {self.direction!r}")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {self.source!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence must be within 0..1, not {self.confidence}")
