"""Who may import whom (README, Architecture): checked on the source, so a new import that
crosses a boundary fails here rather than in a review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> top-level packages it must never import
FORBIDDEN: dict[str, set[str]] = {
    "contract": {"edge", "index_system", "simulator", "bench", "firmware_bridge"},
    "firmware_bridge": {"edge", "index_system", "simulator", "bench"},
    "simulator": {"edge", "index_system", "bench"},
    "edge": {"simulator", "bench"},
    "index_system": {"edge", "simulator", "bench"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_stay_on_their_side(package: str) -> None:
    crossings = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[package]
        if bad:
            crossings.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not crossings, "\n".join(crossings)


def test_only_the_cli_reaches_the_index_side() -> None:
    """The `footfall` command line is shared by both sides; nothing else in edge/ may import
    index_system (the agent on a device runs without it)."""
    users = [p for p in (ROOT / "edge").rglob("*.py") if "index_system" in p.read_text()]
    assert [p.relative_to(ROOT).as_posix() for p in users] == ["edge/cli.py"]
