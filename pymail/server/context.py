"""What every protocol factory is given: the shared services of one pymail process.

Each protocol package exposes ``make_factory(ctx: ServiceContext, listener: ListenerConfig)``
returning a Twisted ``Factory``. The server decides the transport: for ``listener.tls ==
"implicit"`` it listens with TLS itself (the protocol sees an already-secure connection); for
``"starttls"`` the protocol offers STARTTLS/STLS using ``ctx.tls``; ``listener.allow_plaintext_auth``
allows logins before TLS (e.g. on loopback).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymail.config import Config


@dataclass
class ServiceContext:
    config: Config
    hostname: str
    store: Any  # pymail.store.Store
    directory: Any  # pymail.directory.Directory
    authenticator: Any  # pymail.directory.auth.Authenticator
    tls: Any = None  # Twisted context factory for STARTTLS, or None when TLS is unavailable
    queue: Any = None  # pymail.queue, for roles that accept mail
    extras: dict[str, Any] = field(default_factory=dict)
