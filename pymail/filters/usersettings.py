"""Per-user spam settings, kept in the directory's per-user key/value table.

Keys (all optional; a user without them gets the site defaults of ``[filters]``):

- ``spam.threshold``   score at or above which mail is spam for this user (float)
- ``spam.action``      ``tag`` (INBOX, headers only), ``junk`` (Junk folder, the default) or
                       ``reject`` (refuse at or above ``spam.reject_score``, Junk below it)
- ``spam.reject_score`` score at or above which a ``reject`` user refuses mail (float)
- ``spam.allow``       senders never treated as spam: ``user@example.org`` or ``example.org``
                       (a domain also covers its subdomains), one per line
- ``spam.block``       senders always treated as spam, same syntax

The directory's methods are blocking (SQL): call these accessors from a thread. Spam is never
silently discarded: the worst outcome for a message is a refusal the sender sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymail.directory.answers import AnswerCache

ACTIONS = ("tag", "junk", "reject")
KEY_THRESHOLD = "spam.threshold"
KEY_ACTION = "spam.action"
KEY_REJECT_SCORE = "spam.reject_score"
KEY_ALLOW = "spam.allow"
KEY_BLOCK = "spam.block"
LIST_KEYS = {"allow": KEY_ALLOW, "block": KEY_BLOCK}


class SettingsError(ValueError):
    """A bad value given by an admin or user (message safe to show)."""


@dataclass
class SpamSettings:
    threshold: float = 5.0
    action: str = "junk"
    reject_score: float = 10.0
    allow: list[str] = field(default_factory=list)
    block: list[str] = field(default_factory=list)


def normalise_entry(entry: str) -> str:
    """``User@Example.ORG`` → ``User@example.org``; ``@Example.org``/``example.org`` → ``example.org``."""
    entry = entry.strip()
    if not entry or any(c.isspace() for c in entry) or entry.count("@") > 1:
        raise SettingsError(f"{entry!r} is not an address or a domain")
    local, at, domain = entry.rpartition("@")
    domain = domain.lower().rstrip(".")
    if not domain or "." not in domain and domain != "localhost":
        raise SettingsError(f"{entry!r} has no valid domain")
    return f"{local}@{domain}" if local else domain


def _parse_list(value: str | None) -> list[str]:
    out = []
    for line in (value or "").splitlines():
        try:
            out.append(normalise_entry(line))
        except SettingsError:
            continue  # a bad stored line is ignored, never fatal at delivery
    return out


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


CACHE_SECONDS = 5.0   # a user's change reaches deliveries at most this late
_cache = AnswerCache()


def _raw_settings(directory: Any, address: str) -> dict:
    """The user's stored settings, read from the directory at most every CACHE_SECONDS per
    process (one SQL query per delivered message was a tenth of the delivery's CPU)."""
    from pymail.directory.errors import DirectoryError

    raw = _cache.get(directory, address)
    if raw is None:
        try:
            raw = directory.get_settings(address)
        except DirectoryError:  # not a local user (an alias or an outside address): defaults
            raw = {}
        _cache.put(directory, address, raw, CACHE_SECONDS)
    return raw


def forget(address: str | None = None) -> None:
    """Drop cached settings (all, or one address's): after this process changed them."""
    _cache.forget(address)


def load(directory: Any, address: str, site_threshold: float = 5.0,
         site_reject_score: float = 10.0) -> SpamSettings:
    """The spam settings of ``address`` (site defaults for an unknown user or unset keys)."""
    raw = _raw_settings(directory, address)
    action = raw.get(KEY_ACTION, "junk")
    return SpamSettings(
        threshold=_float(raw.get(KEY_THRESHOLD), site_threshold),
        action=action if action in ACTIONS else "junk",
        reject_score=_float(raw.get(KEY_REJECT_SCORE), site_reject_score),
        allow=_parse_list(raw.get(KEY_ALLOW)),
        block=_parse_list(raw.get(KEY_BLOCK)),
    )


def _set(directory: Any, address: str, key: str, value: str | None) -> None:
    """Store one setting; this process's cache forgets the user at once."""
    directory.set_setting(address, key, value)
    forget(address)


def set_threshold(directory: Any, address: str, value: float | None) -> None:
    if value is not None and not -100.0 <= value <= 1000.0:
        raise SettingsError("the threshold must be between -100 and 1000")
    _set(directory, address, KEY_THRESHOLD, None if value is None else repr(float(value)))


def set_action(directory: Any, address: str, action: str | None, reject_score: float | None = None) -> None:
    if action is not None and action not in ACTIONS:
        raise SettingsError(f"the action must be one of {', '.join(ACTIONS)}")
    _set(directory, address, KEY_ACTION, action)
    if reject_score is not None:
        _set(directory, address, KEY_REJECT_SCORE, repr(float(reject_score)))


def list_entries(directory: Any, address: str, which: str) -> list[str]:
    return _parse_list(directory.get_settings(address).get(LIST_KEYS[which]))


def add_entry(directory: Any, address: str, which: str, entry: str) -> None:
    entries = list_entries(directory, address, which)
    entry = normalise_entry(entry)
    if entry not in entries:
        entries.append(entry)
    _set(directory, address, LIST_KEYS[which], "\n".join(entries))


def remove_entry(directory: Any, address: str, which: str, entry: str) -> bool:
    entries = list_entries(directory, address, which)
    entry = normalise_entry(entry)
    if entry not in entries:
        return False
    entries.remove(entry)
    _set(directory, address, LIST_KEYS[which], "\n".join(entries) or None)
    return True


def sender_matches(entries: list[str], sender: str) -> bool:
    """True when the envelope sender is listed, by address or by (parent) domain."""
    if not sender or "@" not in sender:
        return False
    local, _, domain = sender.rpartition("@")
    domain = domain.lower().rstrip(".")
    full = f"{local}@{domain}"
    for entry in entries:
        if "@" in entry:
            if entry.lower() == full.lower():
                return True
        elif domain == entry or domain.endswith("." + entry):
            return True
    return False
