"""The composed scenes' walkers, gated by the shipped detector, none of them a test person.

The simulator cuts walkers out of real footage (`simulator.sprites`); this runner keeps only
the cut-outs the agent's own detector still sees as a person, so that a scene tests the
tracker and counter rather than the detector's blind spots. It lives in bench/ because it
puts an agent part (the detector) against the world.

The clip is also the real-footage test data (tests/data/vtest_lines.json), so the bank
holds no person who appears in its test part (frames 400-794): walkers are cut only from
frames 0-399, and of those, the ones who look like anyone crossing a line after frame 399
are dropped (`HELD_OUT_PEOPLE`). That leaves two people (a light-blue hooded jacket and a
dark striped top, both gone by frame 210); docs/camera.md "How we measure".
"""

from __future__ import annotations

import functools

import numpy as np

from edge.detector import OnnxDetector
from simulator.sprites import SpriteBank, load_sprite_bank

# Frames the walkers may come from: the clip's dev half.
LAST_DEV_FRAME = 399
# Dev-half cut-outs (`Appearance.key`) that look like a person seen in the test half: compared
# by eye, a contact sheet of the 11 dev-half cut-outs against crops of the 60 people at the
# test-half crossings of every annotated line. At this resolution dark jackets and jeans
# are not told apart, so every cut-out that could be one of them is dropped.
HELD_OUT_PEOPLE = (
    "f232x701",  # dark jacket, jeans, white paper
    "f222x711",  # black clothes
    "f170x504",  # dark leather jacket, dark trousers
    "f367x469",  # dark jacket, jeans
    "f178x598",  # bald man, dark jacket, jeans (crosses again at 598-763)
    "f368x477",  # black coat
    "f373x309",  # dark jacket, jeans
    "f309x186",  # black clothes
    "f113x452",  # black jacket, black trousers
)


@functools.cache
def detector_gated_bank(model: str = "ssdlite_person", held_out: bool = True) -> SpriteBank:
    """One bank per process: the bench, the fusion runner and the tests share it.
    ``held_out=False`` gives the earlier bank (any walker of the clip; in-sample)."""
    gate = OnnxDetector(model, threads=2, score_threshold=0.1)

    def score(img: np.ndarray) -> float:
        d = gate.detect(img)
        return float(d.scores.max()) if len(d) else 0.0

    if not held_out:
        return load_sprite_bank(score=score)
    return load_sprite_bank(score=score, last_frame=LAST_DEV_FRAME, exclude=HELD_OUT_PEOPLE)
