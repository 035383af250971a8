"""Quota values on the command line: ``1048576``, ``100M``, ``2G``, ``none``."""

from __future__ import annotations

import re

from pymail.cli.errors import UsageError

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"^(\d+)\s*([KMGT]?)(?:I?B)?$", re.IGNORECASE)
UNLIMITED = ("none", "unlimited", "0")  # 0 means no limit, as in Dovecot's quota_rule


def parse_limit(text: str, what: str, units: bool) -> int | None:
    """A positive limit, or None for no limit; raises UsageError."""
    value = text.strip()
    if value.lower() in UNLIMITED:
        return None
    match = _SIZE.match(value)
    if not match or (match.group(2) and not units):
        hint = "a number with an optional K/M/G/T suffix" if units else "a whole number"
        raise UsageError(f"bad {what} {text!r}: expected {hint}, or 'none'")
    return int(match.group(1)) * _UNITS[match.group(2).upper()]


def show_limit(value: int | None) -> str:
    return "unlimited" if value is None else str(value)
