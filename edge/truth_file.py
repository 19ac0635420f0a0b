"""A technician's ground truth for a recorded clip: one CSV row per person who crossed.

    frame,direction[,anything else]
    181,out
    303,in

The file comes from outside the program, so it enters here and only here: bounded in
size, every row checked (a frame number >= 0, ``in`` or ``out``), and a bad row is a
`UserError` naming the row and the fix rather than a traceback half-way through a count.
A header row and ``#`` comment lines are allowed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from edge.errors import UserError

MAX_BYTES = 2_000_000
MAX_ROWS = 100_000


def read_truth_csv(path: str | Path) -> list[tuple[int, str]]:
    """(frame, direction) rows of a truth CSV, in file order."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"truth file {p} is {size} bytes; at most {MAX_BYTES} (one row per crossing)")
        text = p.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise UserError(f"cannot read truth file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"truth file {p} is not UTF-8 text; save it as CSV (frame,direction)") from None
    rows: list[tuple[int, str]] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if n == 1 and row[0].strip().lower() == "frame":
            continue
        if len(rows) >= MAX_ROWS:
            raise UserError(f"truth file {p} has more than {MAX_ROWS} rows")
        frame_s, direction = row[0].strip(), (row[1].strip().lower() if len(row) > 1 else "")
        if not frame_s.isdigit() or direction not in ("in", "out"):
            raise UserError(
                f"truth file {p}, row {n}: {','.join(row)[:80]!r} is not 'frame,direction' "
                "(a frame number >= 0, then in or out)"
            )
        rows.append((int(frame_s), direction))
    return rows
