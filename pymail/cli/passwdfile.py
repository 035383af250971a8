"""Reading a Dovecot passwd-file (https://doc.dovecot.org/configuration_manual/authentication/passwd_file/).

Each line is ``user:password:uid:gid:gecos:home:shell:extra_fields``; only ``user`` and
``password`` are required. ``password`` carries its scheme (``{BLF-CRYPT}$2y$...``,
``{SHA512-CRYPT}$6$...``, or a bare ``$2y$``/``$6$`` crypt string) and is imported as it is.
From the extra fields (space separated ``key=value``), pymail takes the quota rule
(``userdb_quota_rule=*:storage=1G`` / ``*:messages=1000``) and ``nologin`` (user disabled).
uid/gid/home are ignored: pymail's maildirs live under its own mail root.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymail.directory import DirectoryError, passwords
from pymail.directory.addresses import normalise_address

_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_STORAGE = re.compile(r"^(\d+)([BKMGT]?)$", re.IGNORECASE)


class PasswdFileError(ValueError):
    """A bad line; ``str()`` names the line number."""


@dataclass
class PasswdEntry:
    line: int
    address: str
    password_hash: str
    quota_bytes: int | None = None
    quota_messages: int | None = None
    enabled: bool = True


def parse_passwd_file(text: str, default_domain: str | None = None) -> list[PasswdEntry]:
    """All entries, or PasswdFileError listing every bad line (nothing half-read)."""
    entries: list[PasswdEntry] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = parse_line(line, number, default_domain)
        except PasswdFileError as exc:
            problems.append(str(exc))
            continue
        if entry.address in seen:
            problems.append(f"line {number}: {entry.address} already appears on line {seen[entry.address]}")
            continue
        seen[entry.address] = number
        entries.append(entry)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise PasswdFileError(shown)
    return entries


def parse_line(line: str, number: int, default_domain: str | None = None) -> PasswdEntry:
    fields = line.split(":", 7)
    if len(fields) < 2:
        raise PasswdFileError(f"line {number}: expected user:password[:uid:gid:gecos:home:shell:extra]")
    user, hashed = fields[0].strip(), fields[1].strip()
    if "@" not in user:
        if not default_domain:
            raise PasswdFileError(f"line {number}: user {user!r} has no @domain (give --domain)")
        user = f"{user}@{default_domain}"
    try:
        address = normalise_address(user)
    except DirectoryError as exc:
        raise PasswdFileError(f"line {number}: {exc}") from None
    if not hashed:
        raise PasswdFileError(f"line {number}: {address} has no password hash")
    if not passwords.is_supported(hashed):
        scheme = passwords.split_scheme(hashed)[0] or "plain text or unknown"
        raise PasswdFileError(f"line {number}: {address}: unsupported password scheme {scheme} "
                              "(supported: BLF-CRYPT, SHA512-CRYPT)")
    entry = PasswdEntry(number, address, hashed)
    extra = fields[7] if len(fields) > 7 else ""
    for item in extra.split():
        key, _, value = item.partition("=")
        key = key.lower().removeprefix("userdb_")
        if key == "nologin":
            entry.enabled = False
        elif re.fullmatch(r"quota_rule\d*", key):
            _apply_quota_rule(entry, value, number)
    return entry


def _apply_quota_rule(entry: PasswdEntry, rule: str, number: int) -> None:
    # Dovecot quota rule: "<mailbox>:<kind>=<limit>"; only the "*" (all mail) rule sets a limit.
    mailbox, _, setting = rule.partition(":")
    if mailbox != "*":
        return
    kind, _, value = setting.partition("=")
    if kind == "storage":
        match = _STORAGE.match(value)
        if not match:
            raise PasswdFileError(f"line {number}: bad quota rule {rule!r}")
        limit = int(match.group(1)) * _UNITS[match.group(2).upper()]
        entry.quota_bytes = limit or None  # 0 means unlimited in Dovecot
    elif kind == "messages":
        if not value.isdigit():
            raise PasswdFileError(f"line {number}: bad quota rule {rule!r}")
        entry.quota_messages = int(value) or None
