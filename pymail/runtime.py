"""The one runtime every role shares: Twisted on the asyncio reactor, plus a thread pool.

Rules (see docs/architecture.md):
- ``install_reactor()`` runs once, first thing, in every process that serves (pymail-server, the
  test reactor thread); asyncio code (aiosmtpd) then shares the reactor's loop.
- Anything slow or blocking (bcrypt, fsync, SQL, store I/O, big MIME parsing) goes through
  ``run_blocking``, never straight on the reactor thread.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_installed = False


def install_reactor(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Install Twisted's asyncio reactor (idempotent)."""
    global _installed
    if _installed:
        return
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        if reactor.__class__.__name__ != "AsyncioSelectorReactor":
            raise RuntimeError("a non-asyncio Twisted reactor was installed before pymail's")
        _installed = True
        return
    from twisted.internet import asyncioreactor

    if loop is None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    _installed = True


def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any):
    """Run ``fn`` in the reactor's thread pool; returns a Deferred firing with its result."""
    from twisted.internet import reactor, threads

    return threads.deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args, **kwargs)


async def blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``await blocking(fn, ...)`` from ``async def`` code run with ``ensureDeferred``."""
    return await run_blocking(fn, *args, **kwargs)
