"""Scenario files (simulator/scenarios/*.toml): who walks through the door, how the
beams behave, and which faults hit the link. Format: docs/simulator.md."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from simulator.people import BeamSpec, CrowdSpec
from simulator.raters import RaterSpec

SCENARIO_DIR = Path(__file__).with_name("scenarios")


@dataclass(frozen=True)
class FaultSpec:
    """Link and board faults over the scenario's run (the [faults] table)."""

    byte_corruption: float = 0.0  # chance each byte on the wire (both ways) is altered
    drop_frame: float = 0.0  # chance an MCU frame vanishes whole
    truncate_frame: float = 0.0  # chance an MCU frame loses its tail
    unplugs: int = 0  # USB unplug/replug cycles, spread over the run
    unplug_s: float = 1.0  # how long (real seconds) the cable stays out
    mcu_resets: int = 0  # board resets with RAM lost (new epoch)
    agent_kills: int = 0  # SIGKILLs of the agent process
    broker_kills: int = 0  # SIGKILLs of the MQTT broker (restarted after broker_down_s)
    broker_down_s: float = 1.0
    disk_fulls: int = 0  # the agent's disk filled to the last byte (for disk_full_s, then freed)
    disk_full_s: float = 1.5
    clock_steps: int = 0  # steps of the agent's wall clock, forward and back (NTP), monotonic untouched
    clock_step_max_s: float = 4 * 3600.0  # step sizes: log-uniform from 1 s to this
    seed: int = 3


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    people: CrowdSpec
    door: BeamSpec
    faults: FaultSpec = field(default_factory=FaultSpec)
    raters: RaterSpec | None = None  # the [raters] table: leavers rating at the exit keypad
    debounce_us: int = 3000  # the firmware's debounce
    speedup: float = 200.0  # virtual seconds per real second on the virtual MCU


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    bad = set(table) - known
    if bad:
        raise ValueError(f"{where}: unknown key(s) {sorted(bad)}; allowed: {sorted(known)}")
    return cls(**table)


def _tuples(table: dict[str, Any]) -> dict[str, Any]:
    """TOML arrays -> tuples (the specs are frozen, hashable dataclasses)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}


def load(path_or_name: str | Path) -> Scenario:
    """A scenario by path or by name (a file in simulator/scenarios)."""
    path = Path(path_or_name)
    if not path.exists():
        path = SCENARIO_DIR / f"{path_or_name}.toml"
    if not path.exists():
        names = sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))
        raise FileNotFoundError(f"no scenario {path_or_name!r}; available: {names}")
    data = tomllib.loads(path.read_text())
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    return Scenario(
        name=top.pop("name", path.stem),
        description=top.pop("description", ""),
        people=_build(CrowdSpec, data.get("people", {}), f"{path}: [people]"),
        door=_build(BeamSpec, data.get("door", {}), f"{path}: [door]"),
        faults=_build(FaultSpec, data.get("faults", {}), f"{path}: [faults]"),
        raters=_build(RaterSpec, _tuples(data["raters"]), f"{path}: [raters]") if "raters" in data else None,
        **top,
    )
