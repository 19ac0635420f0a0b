"""The agent's one configuration file (TOML), typed and validated before anything starts.

A bad file is refused with messages that name the key, the value and the fix; unknown
keys get a did-you-mean. `footfall config check` and `footfall config show` use this.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge.beam_source import BeamSettings
from edge.errors import UserError
from edge.camera_settings import CameraSettings
from edge.fuser import FusionSettings

DEFAULT_PATH = Path("/etc/footfall/agent.toml")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DeviceSettings(_Section):
    id: str = Field(description="Device id; also its MQTT username and topic segment.")
    site: str = Field(description="Service-center (site) id the index system ranks.")
    timezone: str = Field("Asia/Shanghai", description="IANA zone for bins and re-base times.")

    @field_validator("id", "site")
    @classmethod
    def _topic_safe(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
            raise ValueError("use 1-64 letters, digits, '.', '_' or '-' (it becomes an MQTT topic level)")
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            guess = difflib.get_close_matches(v, _zones(), n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else " (e.g. 'Asia/Shanghai')"
            raise ValueError(f"unknown IANA time zone{hint}") from None
        return v


class StorageSettings(_Section):
    state_dir: Path = Field(Path("/var/lib/footfall"), description="Journal, outbox and status live here.")
    outbox_max_messages: int = Field(
        100_000, ge=1000,
        description="Outbox bound. 30 days of 1-minute bins are 43,200 messages; when full, "
        "counting goes on in the journal, an alarm is raised and bins are queued once it drains.",
    )
    keep_sent_days: float = Field(7.0, ge=0, description="Sent messages kept for replay requests.")
    max_held_crossings: int = Field(
        100_000, ge=1000,
        description="Crossings kept in memory while the disk is full (an alarm says so); committed once space returns.",
    )

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "journal.db"

    @property
    def status_path(self) -> Path:
        return self.state_dir / "status.json"


class BinSettings(_Section):
    minutes: Literal[1, 5, 15] = Field(15, description="Bin length, aligned to local midnight.")
    primary_source: Literal["beam", "camera", "fused"] = Field(
        "beam", description="Source whose counts make the bins' totals and occupancy."
    )
    rebase_local_time: str = Field(
        "04:00", description="Local HH:MM when occupancy restarts from zero, or 'never' (24-hour sites)."
    )
    lines: list[str] = Field(default_factory=list, description="Extra line/door ids always reported (zeros too).")
    require_clock_sync: bool = Field(True, description="Flag bins 'clock_unsynced' until NTP says synced.")

    @field_validator("rebase_local_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if v != "never" and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v):
            raise ValueError("use HH:MM in 24-hour local time (e.g. '04:00'), or 'never'")
        return v


class OpeningHoursSettings(_Section):
    mon: str = Field("00:00-24:00", description="Local opening periods, e.g. '09:00-18:00' or '09:00-12:00,14:00-18:00', or 'closed'.")
    tue: str = Field("00:00-24:00", description="As mon.")
    wed: str = Field("00:00-24:00", description="As mon.")
    thu: str = Field("00:00-24:00", description="As mon.")
    fri: str = Field("00:00-24:00", description="As mon.")
    sat: str = Field("00:00-24:00", description="As mon.")
    sun: str = Field("00:00-24:00", description="As mon.")

    @field_validator("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    @classmethod
    def _spans(cls, v: str) -> str:
        from contract.occupancy import parse_spans

        parse_spans(v)
        return v


class SiteSettings(_Section):
    capacity: int | None = Field(
        None, ge=1, description="People the center holds; gives the usage rate (occupancy / capacity). Unset: no usage rate."
    )
    residents: int | None = Field(
        None, ge=1, le=100_000_000,
        description="Residents the center serves; gives the gathering rate (visits per 1,000 residents). Unset: none.",
    )
    opening_hours: OpeningHoursSettings = Field(
        default_factory=OpeningHoursSettings,
        description="Per weekday, local time. Usage rate is averaged over these hours; drift correction acts outside them. "
        "Default: open all day (no drift correction, usage rate over 24 h).",
    )


class OccupancySettings(_Section):
    drift: Literal["snap", "off"] = Field(
        "snap", description="'snap': occupancy goes to zero after quiet_minutes without crossings while closed; 'off': never."
    )
    quiet_minutes: int = Field(60, ge=1, le=24 * 60, description="Minutes without any crossing, outside opening hours, before the snap.")


class MqttSettings(_Section):
    host: str = Field("localhost", description="Broker host.")
    port: int = Field(8883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1", "auto"] = Field("auto", description="'auto' tries MQTT 5, then 3.1.1.")
    tls: bool = Field(True, description="TLS to the broker (per-device credentials).")
    ca_file: Path | None = None
    cert_file: Path | None = Field(None, description="Client certificate (optional, for mutual TLS).")
    key_file: Path | None = None
    username: str | None = Field(None, description="Defaults to the device id.")
    password: str | None = Field(None, description="Prefer password_file; shown masked.")
    password_file: Path | None = None
    topic_prefix: str = Field("footfall/v1")
    keepalive_s: int = Field(30, ge=5, le=600)
    max_inflight: int = Field(20, ge=1, le=1000, description="Unacknowledged QoS 1 messages at once.")
    reconnect_max_s: float = Field(60.0, ge=1)

    @model_validator(mode="after")
    def _files_readable(self) -> MqttSettings:
        for key in ("ca_file", "cert_file", "key_file", "password_file"):
            path = getattr(self, key)
            if path is not None and not os.access(path, os.R_OK):
                raise ValueError(f"{key} = {str(path)!r} cannot be read: check the path and its permissions")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: set both or neither")
        return self

    def secret(self) -> str | None:
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password


class CommandSettings(_Section):
    """Bounds on the index system's requests (cmd/replay, cmd/summary): a stranger's message
    must not be able to queue unbounded work or delay fresh bins."""

    replay_max_messages: int = Field(1000, ge=1, le=100_000, description="Messages one replay request may re-queue; "
                                     "the rest of a longer range waits for the next request.")
    replay_min_interval_s: float = Field(10.0, ge=0, description="Replay requests closer together than this are refused.")
    summary_max_pending: int = Field(31, ge=1, le=1000, description="Summary requests waiting at once; more are refused.")
    summary_per_tick: int = Field(4, ge=1, le=100, description="Summary requests served per agent tick (about a second).")


class AgentConfig(_Section):
    device: DeviceSettings
    storage: StorageSettings = Field(default_factory=StorageSettings)
    bins: BinSettings = Field(default_factory=BinSettings)
    site: SiteSettings = Field(default_factory=SiteSettings)
    occupancy: OccupancySettings = Field(default_factory=OccupancySettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    commands: CommandSettings = Field(default_factory=CommandSettings, description="Bounds on the index system's requests.")
    beams: BeamSettings = Field(default_factory=BeamSettings, description="Door infrared beams (docs/beams.md).")
    camera: CameraSettings = Field(default_factory=CameraSettings, description="Camera source and counting lines (docs/camera.md).")
    fusion: FusionSettings = Field(default_factory=FusionSettings, description="One count from beams and camera (docs/fusion.md).")

    @model_validator(mode="after")
    def _fusion_doors_exist(self) -> "AgentConfig":
        doors = {d.name for d in self.beams.doors}
        for pair in self.fusion.pairs:
            if pair.door not in doors:
                raise ValueError(f"fusion.pairs: door {pair.door!r} is not a [[beams.doors]] name"
                                 f" (known: {sorted(doors) or 'none'})")
        if self.fusion.enabled and not (self.beams.enabled and self.camera.enabled):
            raise ValueError("fusion.enabled needs beams.enabled and camera.enabled (it pairs beam doors with camera lines)")
        lines = {ln.name for ln in self.camera.lines}
        for pair in self.fusion.pairs:
            if self.camera.enabled and pair.line not in lines:
                raise ValueError(f"fusion.pairs: camera line {pair.line!r} (door {pair.door!r}) is not a [[camera.lines]] name"
                                 f" (known: {sorted(lines) or 'none'}); set camera_line")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.device.timezone)

    def occupancy_rule(self) -> Any:
        """The pure occupancy rule (contract.occupancy.OccupancyRule) these settings describe."""
        from contract.occupancy import OccupancyRule, OpeningHours

        hours = OpeningHours.from_mapping(self.site.opening_hours.model_dump())
        return OccupancyRule(self.occupancy.drift, self.occupancy.quiet_minutes, hours)

    def declared_lines(self) -> list[str]:
        """Every door and counting line: bins report them even when nobody passed."""
        doors = [d.name for d in self.beams.doors] if self.beams.enabled else []
        cams = [ln.name for ln in self.camera.lines] if self.camera.enabled else []
        return list(dict.fromkeys([*doors, *cams, *self.bins.lines]))

    def digest(self) -> str:
        """A short hash of the effective config without its secrets (sent in the birth message)."""
        from edge.secrets import without_secrets

        blob = json.dumps(without_secrets(self.model_dump(mode="json")), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def masked(self) -> dict[str, Any]:
        from edge.secrets import masked

        return masked(self.model_dump(mode="json"))


class ConfigError(UserError):
    """The configuration cannot be used; the message lists every problem and its fix
    (a UserError: the CLI prints it without a traceback and exits 2)."""


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    return Path(path or os.environ.get("FOOTFALL_CONFIG") or DEFAULT_PATH)


def load(path: str | os.PathLike[str] | None = None) -> AgentConfig:
    """Read and validate the configuration, or raise ConfigError naming each bad key."""
    p = resolve_path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file. Write one (see README 'Configuration') or pass --config.") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot be read ({exc.strerror}).") from None
    return parse(text, source=str(p))


def parse(text: str, source: str = "<config>") -> AgentConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}. Fix the syntax at that line.") from None
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = [_explain(err, data) for err in exc.errors()]
        raise ConfigError(f"{source}: {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)) from None


def _explain(err: dict[str, Any], data: dict[str, Any]) -> str:
    loc = [str(part) for part in err["loc"]]
    key = ".".join(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _known_keys(loc[:-1])
        guess = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean {'.'.join(loc[:-1] + [guess[0]])!r}?" if guess else f"known keys here: {', '.join(sorted(known))}"
        return f"{key}: unknown key; {hint}"
    if kind == "missing":
        return f"{key}: required, but missing; add it (see README 'Configuration')"
    value = err.get("input")
    msg = err["msg"].removeprefix("Value error, ")
    return f"{key} = {value!r}: {msg}"


def _known_keys(loc: list[str]) -> list[str]:
    model: type[BaseModel] = AgentConfig
    for part in loc:
        field = model.model_fields.get(part)
        ann = getattr(field, "annotation", None) if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return list(model.model_fields)


def _zones() -> list[str]:
    import zoneinfo

    return sorted(zoneinfo.available_timezones())


def reference_markdown() -> str:
    """Every section and key with type, default and description: the README's reference.

    A key whose value is itself a table (e.g. `site.opening_hours`) gets its own section."""
    out: list[str] = []
    todo: list[tuple[str, type[BaseModel]]] = []
    for section, field in AgentConfig.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            model = next(a for a in getattr(model, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel))
        todo.append((section, model))
    while todo:
        section, model = todo.pop(0)
        head = f"[{section[2:]}]" if section.startswith("[[") else section  # [[x.y]]: an array of tables
        out += [f"### `[{head}]`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        nested: list[tuple[str, type[BaseModel]]] = []
        for key, f in model.model_fields.items():
            name = f"{section.lstrip('[')}.{key}"
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
                out.append(f"| `{key}` | table | see `[{name}]` | {f.description or ''} |")
                nested.append((name, f.annotation))
                continue
            item = next(iter(getattr(f.annotation, "__args__", ())), None)
            if getattr(f.annotation, "__origin__", None) is list and isinstance(item, type) and issubclass(item, BaseModel):
                out.append(f"| `{key}` | array of tables | `[]` | {f.description or ''}; see `[[{name}]]` |")
                nested.append((f"[[{name}", item))
                continue
            value = f.default_factory() if f.default_factory is not None else f.default
            default = "required" if f.is_required() else json.dumps(value, default=str)
            typ = str(f.annotation).replace("typing.", "").replace("pathlib.", "").replace("<class '", "").replace("'>", "")
            out.append(f"| `{key}` | `{typ}` | `{default}` | {f.description or ''} |")
        out.append("")
        todo[0:0] = nested
    return "\n".join(out)
