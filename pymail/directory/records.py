"""Plain records the directory hands out (no SQLAlchemy objects leave the package)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class UserRecord:
    address: str
    domain: str
    enabled: bool
    quota_bytes: int | None  # None: no limit
    quota_messages: int | None  # None: no limit
    password_scheme: str  # "BLF-CRYPT", "SHA512-CRYPT"
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class AliasRecord:
    source: str  # "sales@example.com", or "@example.com" for a catch-all
    destinations: tuple[str, ...]


@dataclass(frozen=True)
class Resolution:
    """Where mail for one recipient goes.

    ``local_users``: canonical addresses of local mailboxes; ``external``: outside addresses to
    forward to; ``detail``: the ``+tag`` of a sub-address (``"tag"`` for ``user+tag@domain``)
    when the tag was stripped to find the recipient, else None.
    """

    local_users: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    detail: str | None = None
