"""Faults on the wire between the virtual microcontroller and the agent: bytes altered
at a rate, frames dropped whole or cut short. Unplugs, board resets and agent kills are
scheduled by the scenario runner (they act on processes and file descriptors)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass
class FaultStats:
    bytes_corrupted: int = 0
    frames_dropped: int = 0
    frames_truncated: int = 0


class WireFaults:
    """Applies a FaultSpec's byte-level faults to each frame before it is written."""

    def __init__(self, byte_corruption: float = 0.0, drop_frame: float = 0.0,
                 truncate_frame: float = 0.0, seed: int = 0) -> None:
        self.p_byte = byte_corruption
        self.p_drop = drop_frame
        self.p_trunc = truncate_frame
        self.rng = random.Random(seed)
        self.stats = FaultStats()

    def frame(self, data: bytes) -> bytes:
        """One outgoing frame -> what actually reaches the wire."""
        rng = self.rng
        if self.p_drop and rng.random() < self.p_drop:
            self.stats.frames_dropped += 1
            return b""
        if self.p_trunc and rng.random() < self.p_trunc:
            self.stats.frames_truncated += 1
            data = data[: rng.randrange(len(data))]
        return self.corrupt(data)

    def corrupt(self, data: bytes) -> bytes:
        """Alter each byte with probability p (geometric skips: cheap at low rates)."""
        if not self.p_byte or not data:
            return data
        out = None
        i = self._skip()
        while i < len(data):
            if out is None:
                out = bytearray(data)
            out[i] = (out[i] + self.rng.randrange(1, 256)) & 0xFF  # always a different byte
            self.stats.bytes_corrupted += 1
            i += 1 + self._skip()
        return bytes(out) if out is not None else data

    def _skip(self) -> int:
        u = self.rng.random()
        return int(math.log(1.0 - u) / math.log(1.0 - self.p_byte)) if self.p_byte < 1 else 0
