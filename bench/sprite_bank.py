"""The composed scenes' walkers, gated by the shipped detector.

The simulator cuts walkers out of real footage (`simulator.sprites`); this runner keeps only
the cut-outs the agent's own detector still sees as a person, so that a scene tests the
tracker and counter rather than the detector's blind spots. It lives in bench/ because it
puts an agent part (the detector) against the world.
"""

from __future__ import annotations

import functools

import numpy as np

from edge.detector import OnnxDetector
from simulator.sprites import SpriteBank, load_sprite_bank


@functools.cache
def detector_gated_bank(model: str = "ssdlite_person") -> SpriteBank:
    """One bank per process: the bench, the fusion runner and the tests share it."""
    gate = OnnxDetector(model, threads=2, score_threshold=0.1)

    def score(img: np.ndarray) -> float:
        d = gate.detect(img)
        return float(d.scores.max()) if len(d) else 0.0

    return load_sprite_bank(score=score)
