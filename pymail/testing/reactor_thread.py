"""Run Twisted's asyncio reactor in a daemon thread for the length of a test session."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

from pymail import runtime

_thread: threading.Thread | None = None


def start() -> Any:
    """Start (once) and return the running reactor."""
    global _thread
    loop = asyncio.new_event_loop()
    runtime.install_reactor(loop)
    from twisted.internet import reactor

    if _thread is None:
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            reactor.callWhenRunning(ready.set)
            reactor.run(installSignalHandlers=False)

        _thread = threading.Thread(target=run, name="reactor", daemon=True)
        _thread.start()
        if not ready.wait(30):
            raise RuntimeError("reactor did not start within 30 s")
    return reactor


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` on the reactor thread and wait for its result (Deferreds and coroutines too)."""
    from twisted.internet import defer, reactor
    from twisted.internet.threads import blockingCallFromThread

    def wrapped():
        result = fn(*args, **kwargs)
        if asyncio.iscoroutine(result):
            return defer.ensureDeferred(result)
        return result

    return blockingCallFromThread(reactor, wrapped)


def listen_tcp(factory: Any, tls_context_factory: Any = None) -> Any:
    """Listen on 127.0.0.1, port 0 (or implicit TLS when a context factory is given).

    Returns the IListeningPort; ``port.getHost().port`` is the bound port. Stop it with
    ``call(port.stopListening)``.
    """
    from twisted.internet import reactor

    if tls_context_factory is not None:
        return call(reactor.listenSSL, 0, factory, tls_context_factory, interface="127.0.0.1")
    return call(reactor.listenTCP, 0, factory, interface="127.0.0.1")
