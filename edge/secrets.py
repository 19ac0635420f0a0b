"""Secrets in configuration values: masked wherever they could leave the process.

A camera URL may carry `user:password@`, a query `?token=...`, and `[mqtt] password` is a
secret by name. Masking happens where such text can leave: `config show`, the health
model (hence alarms, status.json and the journal's health log), the log handlers, and the
config hash in the birth message (computed over the configuration without its secrets).
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "********"
SECRET_KEYS = frozenset({"password"})
# scheme://user:password@host  ->  scheme://user:********@host
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):(?P<pw>[^\s@/]*)@")
# ?password=..., &token=..., ;key=...  (URLs of cameras and brokers put secrets there too)
_QUERY = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|pass|token|access_token|key|secret|auth)=)[^&;\s#]*", re.I)


def mask_text(text: str) -> str:
    """The text with every URL password and secret query value replaced by a mask."""
    if "://" not in text and "=" not in text:
        return text
    return _QUERY.sub(rf"\g<head>{MASK}", _USERINFO.sub(rf"\g<head>:{MASK}@", text))


def masked(obj: Any) -> Any:
    """A JSON-like value with secret keys and URL secrets masked (for showing it)."""
    if isinstance(obj, dict):
        return {k: (MASK if k in SECRET_KEYS and v else masked(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [masked(v) for v in obj]
    return mask_text(obj) if isinstance(obj, str) else obj


def without_secrets(obj: Any) -> Any:
    """A JSON-like value with secret keys dropped and URL secrets masked (for hashing it:
    the hash must not change, nor leak anything, when only a password changes)."""
    if isinstance(obj, dict):
        return {k: without_secrets(v) for k, v in obj.items() if k not in SECRET_KEYS}
    if isinstance(obj, list):
        return [without_secrets(v) for v in obj]
    return mask_text(obj) if isinstance(obj, str) else obj


class MaskingFilter(logging.Filter):
    """A handler filter: the formatted message (and traceback text) with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = mask_text(msg)
        if clean != msg:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


def mask_logs(logger: logging.Logger | None = None) -> None:
    """Put the masking filter on every handler of `logger` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
