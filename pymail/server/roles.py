"""Which package serves which role, found by import so that each role stays optional.

A role's package exposes ``make_factory(ctx, listener)`` (docs/seams.md). The server imports it
only when a listener of that role is configured, so ``--roles imap`` never loads SMTP code.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

# role -> modules to try, in order, for make_factory
FACTORY_MODULES: dict[str, tuple[str, ...]] = {
    "mx": ("pymail.smtp.server", "pymail.smtp"),
    "submission": ("pymail.smtp.server", "pymail.smtp"),
    "lmtp": ("pymail.smtp.lmtp", "pymail.smtp.server", "pymail.smtp"),
    "imap": ("pymail.imap.server", "pymail.imap"),
    "pop3": ("pymail.pop3.server", "pymail.pop3"),
    "managesieve": ("pymail.filters.managesieve.server", "pymail.filters.managesieve"),
}


class RoleUnavailable(Exception):
    """The package of a role has no server in this build."""


def factory_maker(role: str) -> Callable[..., Any]:
    for name in FACTORY_MODULES[role]:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that module does not exist: try the next candidate
            raise
        maker = getattr(module, "make_factory", None)
        if maker is not None:
            return maker
    raise RoleUnavailable(f"no server for role {role!r} in this build")
