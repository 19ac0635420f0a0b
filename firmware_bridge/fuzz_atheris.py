"""Coverage-guided fuzzing of the link's parser with atheris, for runs longer than CI's.

    pip install atheris          # needs clang; not a project dependency
    python -m firmware_bridge.fuzz_atheris -max_total_time=3600

Same properties as tests/test_fuzz_frames.py: `MessageReader.feed` never raises, and
a BeamEvent comes out only if its frame is intact (re-encoding it gives bytes that
occur in the input).
"""

from __future__ import annotations

import sys

from firmware_bridge import messages as m


def one_input(data: bytes) -> None:
    reader = m.MessageReader()
    half = len(data) // 2
    for msg in reader.feed(data[:half]) + reader.feed(data[half:]):
        if isinstance(msg, m.BeamEvent):
            assert m.to_frame(msg)[:-1] in data, f"event from a damaged frame: {msg}"


def main() -> None:
    import atheris  # noqa: PLC0415 (optional tool)

    atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
