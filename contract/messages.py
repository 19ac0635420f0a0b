"""The topic tree and payload kinds shared by the agent and the index consumer.

broker/CONTRACT.md is the prose; the JSON Schemas in contract/schemas/ are the rules; both
sides validate against the same files.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jsonschema

SCHEMA_VERSION = 1
KINDS = ("status", "birth", "bins", "summary", "alarm")


def topic(prefix: str, site: str, device: str, kind: str) -> str:
    if kind not in KINDS and not kind.startswith("cmd/"):
        raise ValueError(f"unknown topic kind {kind!r}")
    return f"{prefix}/{site}/{device}/{kind}"


def parse_topic(prefix: str, name: str) -> tuple[str, str, str] | None:
    """(site, device, kind) of a contract topic, or None for anything else."""
    head = prefix.rstrip("/") + "/"
    if not name.startswith(head):
        return None
    parts = name[len(head):].split("/", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


@cache
def schema(kind: str) -> dict[str, Any]:
    name = kind.replace("/", "-")
    text = resources.files("contract").joinpath("schemas", f"{name}.schema.json").read_text()
    return json.loads(text)


@cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    """Checked once per kind: jsonschema.validate() re-checks the schema on every call,
    which made the consumer spend ~20 ms per message on it. jsonschema is imported here, on
    first use: the agent needs it only when a command arrives, and it costs about 10 MiB
    resident (docs/PERFORMANCE.md "Resident memory")."""
    import jsonschema

    s = schema(kind)
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


def validate(kind: str, payload: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when a payload breaks the contract."""
    import jsonschema.exceptions

    error = jsonschema.exceptions.best_match(_validator(kind).iter_errors(payload))
    if error is not None:
        raise error
