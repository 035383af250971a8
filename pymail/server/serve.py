"""One serving process: build the shared services, adopt the bound sockets, run the reactor.

Wrapping order for every accepted connection (outermost first):
PROXY protocol header (HAProxy) → implicit TLS → connection tracking (for draining) → protocol.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

# Neither module installs a reactor on import (pymail.runtime.install_reactor must come first).
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory

from pymail.config import Config
from pymail.server.context import ServiceContext
from pymail.server.listen import BoundListener
from pymail.server.roles import factory_maker

log = logging.getLogger("pymail.server")


def build_context(config: Config, roles: list[str]) -> ServiceContext:
    """The services every role shares: directory, store, authenticator, TLS, queue."""
    from pymail.directory import Directory
    from pymail.directory.auth import Authenticator
    from pymail.store import Store
    from pymail.tls import server_context

    directory = Directory(config.directory_url, bcrypt_rounds=config.auth.bcrypt_rounds)
    store = Store(config.mail_root, config.index_root, fsync=config.store.fsync)
    authenticator = Authenticator.from_settings(directory, config.auth)
    tls = None
    if config.tls_cert.exists() and config.tls_key.exists():
        tls = server_context(config.tls_cert, config.tls_key)
    ctx = ServiceContext(config=config, hostname=config.server.hostname, store=store,
                         directory=directory, authenticator=authenticator, tls=tls)
    if any(role in roles for role in ("mx", "submission", "lmtp")):
        from pymail.filters.delivery import FilteringDelivery
        from pymail.queue.service import make_queue

        # Local delivery goes through per-user spam settings and Sieve (docs/filters.md).
        ctx.queue = make_queue(ctx, local_delivery=FilteringDelivery.from_context(ctx))
    return ctx


class NoDelayWrapper(ProtocolWrapper):
    """Every role's connection: Nagle off. Replies are often written in pieces (untagged lines,
    then the tagged OK); with Nagle the last piece waited for the client's delayed ACK, about
    40 ms on Linux, on every command."""

    def makeConnection(self, transport):
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(True)
            except OSError:  # a unix socket (LMTP): no Nagle there anyway
                pass
        super().makeConnection(transport)


class TrackingFactory(WrappingFactory):
    """Knows its open connections (``protocols``) so that draining can wait for them."""

    protocol = NoDelayWrapper


class Server:
    """Adopts bound sockets into the reactor and drains them on SIGTERM/SIGINT."""

    def __init__(self, ctx: ServiceContext, bound: list[BoundListener], grace: float = 30.0,
                 ready_message: str = "pymail: ready (Ctrl-C or SIGTERM stops it cleanly)"):
        self.ready_message = ready_message
        self.ctx = ctx
        self.bound = bound
        self.grace = grace
        self.ports: list[Any] = []
        self.trackers: list[Any] = []
        self.stopping = False
        # Factories are made before the reactor runs, so a broken role fails start-up loudly.
        self.factories = [self.factory_for(bl) for bl in bound]

    def factory_for(self, bl: BoundListener):
        from twisted.protocols.tls import TLSMemoryBIOFactory

        factory = factory_maker(bl.listener.role)(self.ctx, bl.listener)
        tracker = TrackingFactory(factory)
        self.trackers.append(tracker)
        factory = tracker
        if bl.listener.tls == "implicit":
            if self.ctx.tls is None:
                raise RuntimeError(f"{bl.describe()}: implicit TLS needs a certificate ([tls] cert/key)")
            factory = TLSMemoryBIOFactory(self.ctx.tls, False, factory)
        if bl.listener.proxy_protocol:
            from pymail.server.proxy import HeaderFirstFactory

            factory = HeaderFirstFactory(factory)
        return factory

    def start(self) -> None:
        from twisted.internet import reactor

        for bl, factory in zip(self.bound, self.factories):
            port = reactor.adoptStreamPort(bl.sock.fileno(), bl.sock.family, factory)
            # The reactor holds its own duplicate; closing ours lets stopListening really
            # close the socket (new connections are then refused, not queued).
            bl.sock.close()
            self.ports.append(port)
        if self.ctx.queue is not None and hasattr(self.ctx.queue, "start"):
            self.ctx.queue.start()
        # Before the first connection is served (they wait in the listen backlog meanwhile):
        # run a second later, its full collection could fall into a first client's command.
        freeze_startup_objects()
        print(self.ready_message, flush=True)

    def active_connections(self) -> int:
        return sum(len(t.protocols) for t in self.trackers)

    def drain(self, signum: int | None = None) -> None:
        """Stop accepting, let sessions finish within the grace period, then stop."""
        from twisted.internet import reactor, task

        if self.stopping:
            return
        self.stopping = True
        log.info("draining: no new connections, %d open, grace %.0f s",
                 self.active_connections(), self.grace)
        for port in self.ports:
            port.stopListening()
        queue_stopped = [True]
        if self.ctx.queue is not None and hasattr(self.ctx.queue, "stop"):
            # Wait for the queue's stop (it says QUIT to cached outbound connections); mail
            # not delivered by the end of the grace period stays spooled for the next start.
            result = self.ctx.queue.stop()
            if hasattr(result, "addBoth"):
                queue_stopped[0] = False
                result.addBoth(lambda _: queue_stopped.__setitem__(0, True))
        deadline = reactor.seconds() + self.grace

        def check() -> None:
            idle = self.active_connections() == 0 and queue_stopped[0]
            if idle or reactor.seconds() >= deadline:
                for tracker in self.trackers:
                    for proto in list(tracker.protocols):
                        proto.transport.loseConnection()
                loop.stop()
                reactor.callLater(0.2, reactor.stop)

        loop = task.LoopingCall(check)
        loop.start(0.2)

    def run(self) -> None:
        from twisted.internet import reactor

        def on_signal(signum, _frame):
            reactor.callFromThread(self.drain, signum)

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        # The store's one-time work (SQLite, fsyncs, a filesystem probe), here before the
        # reactor runs rather than on its thread, and before any client's first command.
        self.ctx.store.prepare()
        reactor.callWhenRunning(self.start)
        reactor.run(installSignalHandlers=False)


def freeze_startup_objects() -> None:
    """Move what exists once the server has started (modules, classes, settings, the
    directory's engine: several hundred thousand objects that live as long as the process)
    out of the garbage collector's sight (``gc.freeze``), so a full collection — which, with
    10,000 IMAP sessions open, pauses the reactor for tenths of a second — no longer walks
    them."""
    import gc

    gc.collect()
    gc.freeze()

