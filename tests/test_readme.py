"""The README's reference sections stay true to the code."""

from __future__ import annotations

from pathlib import Path

from edge.cli import build_parser
from edge.config import reference_markdown

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_config_reference_in_readme_is_current():
    assert reference_markdown().strip() in README, "run `footfall config reference` and paste it into README.md"


def test_every_command_is_in_the_cli_reference():
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [name for name in sub.choices if f"`footfall {name}" not in README]
    assert not missing, f"README.md's command-line reference lacks: {missing}"


def test_readme_opens_with_the_two_commands():
    head = README[:800]
    assert "make demo" in head and "make test" in head
