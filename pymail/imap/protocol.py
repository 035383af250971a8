"""The thin Twisted side of IMAP: bytes in, framed commands to the session, bytes out.

A byte-level ``Protocol`` (not ``IMAP4Server``, not ``LineReceiver``): ``CommandFramer`` cuts
commands (literals included), a single coroutine runs them one at a time in arrival order, and
reading pauses while too many pipelined commands wait. Implements the ``io`` side the session
expects (``send``, ``next_line``, ``start_tls``, ``close``, ``claim_user``, ``is_secure``).

Limits (issue 4): line length and literal size (``CommandFramer``; a too-big synchronising
literal is refused before any byte of it is read), commands in flight (back-pressure), nesting
depth (parser), connections per IP (at connect) and per user (at login), autologout (RFC 3501
§5.4, re-armed by any input, IDLE included).
"""

from __future__ import annotations

import collections
import logging
import zlib

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from pymail.imap import serialize
from pymail.imap.idlehub import IdleHub
from pymail.imap.parser import (CommandFramer, Continue, Fatal, Frame, ParseError, Refused,
                                parse_command)
from pymail.imap.session import LOGOUT, NOT_AUTHENTICATED, Session
from pymail.imap.settings import ImapSettings
from pymail.runtime import run_blocking

log = logging.getLogger("pymail.imap")

_CLOSED = object()
SHUTDOWN_BYE = b"* BYE [UNAVAILABLE] Server shutting down, please reconnect\r\n"


def _is_starttls(data: bytes) -> bool:
    parts = data.split(None, 2)
    return len(parts) == 2 and parts[1].upper() == b"STARTTLS"


@implementer(IPushProducer)
def _no_delay(transport) -> None:
    """Turn Nagle off: a command's untagged lines and its tagged reply are often separate
    writes (a thread hop apart), and with Nagle the second waits for the client's delayed ACK
    (~40 ms on Linux) — that, not the server's work, was most of a warm SELECT's round trip."""
    while transport is not None:
        set_no_delay = getattr(type(transport), "setTcpNoDelay", None)
        if set_no_delay is not None:
            try:
                set_no_delay(transport, True)
            except (OSError, AttributeError):
                pass
            return
        transport = getattr(transport, "transport", None)  # TLS wrapper → the TCP transport


class WriteGate:
    """Registered with the transport during a bulk FETCH: the transport pauses it when its
    write buffer is full, and ``drained()`` waits for the resume."""

    def __init__(self):
        self.paused = False
        self._waiters: list[defer.Deferred] = []

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def stopProducing(self) -> None:  # connection gone: let the command finish (sends are dropped)
        self.resumeProducing()

    def wait(self) -> defer.Deferred:
        if not self.paused:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiters.append(d)
        return d


class ImapProtocol(Protocol):
    CLOSED = _CLOSED

    def __init__(self, factory: "ImapFactory"):
        self.factory = factory
        self.settings: ImapSettings = factory.settings
        self.framer = CommandFramer(self.settings.max_line_length, self.settings.max_literal_size)
        self.session = Session(factory.ctx, factory.listener, self.settings, self)
        self._inbox: collections.deque = collections.deque()
        self._waiter: defer.Deferred | None = None
        self._discard = False  # after a STARTTLS line, until TLS starts (RFC 3501 §6.2.1)
        self._paused = False
        self._closed = False
        self._autologout = None
        self._inflater = None
        self._deflater = None
        self._running: str | None = None  # the command being executed
        self._notify_polling = False
        self._gate: WriteGate | None = None
        self._draining = False
        self._user: str | None = None
        self.remote_ip = "0.0.0.0"

    # --- connection ------------------------------------------------------------------------
    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.remote_ip = getattr(peer, "host", "0.0.0.0")
        if not self.factory.claim_ip(self.remote_ip):
            self._ip_claimed = False
            self.transport.write(b"* BYE [UNAVAILABLE] Too many connections from your address\r\n")
            self._closed = True
            self.transport.loseConnection()
            return
        self._ip_claimed = True
        self.factory.live.add(self)
        _no_delay(self.transport)
        self._arm_autologout()
        caps = " ".join(self.session.capabilities())
        self.transport.write(f"* OK [CAPABILITY {caps}] {self.factory.hostname} IMAP4rev1 ready\r\n".encode())
        defer.ensureDeferred(self._run()).addErrback(self._crashed)

    def connectionLost(self, reason=None) -> None:
        self._closed = True
        self.factory.live.discard(self)
        self.factory.notify_sessions.discard(self)
        if self._autologout is not None and self._autologout.active():
            self._autologout.cancel()
        if getattr(self, "_ip_claimed", False):
            self.factory.release_ip(self.remote_ip)
            self._ip_claimed = False
        if self._user is not None:
            self.factory.release_user(self._user)
            self._user = None
        self._push(_CLOSED)

    def _crashed(self, failure) -> None:
        log.error("imap session crashed: %s", failure.getTraceback())
        self.close()

    # --- input -----------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        self._arm_autologout()
        if self._discard or self._closed:
            return
        if self._inflater is not None:
            try:
                data = self._inflater.decompress(data)
            except zlib.error:
                self.send(b"* BYE Corrupt compressed stream\r\n")
                self.close()
                return
        for ev in self.framer.feed(data):
            if isinstance(ev, Continue):
                self.send(serialize.continuation("Ready"))
                continue
            if isinstance(ev, Frame) and _is_starttls(ev.data):
                # Anything after the STARTTLS line in this read is plaintext the client had no
                # right to send: drop it, never run it (RFC 3207 §4.2, RFC 2595 §3.1). The flag
                # is set before the push: the command may run (and clear it) within the push.
                self.framer.take_rest()
                self._discard = True
                self._push(ev)
                break
            self._push(ev)
            if isinstance(ev, Fatal):
                break
        if len(self._inbox) >= self.settings.max_commands_in_flight and not self._paused:
            self._paused = True
            self.transport.pauseProducing()

    def _push(self, ev) -> None:
        if self._waiter is not None:
            w, self._waiter = self._waiter, None
            w.callback(ev)
        else:
            self._inbox.append(ev)

    async def _next_event(self, timeout: float | None = None):
        if self._inbox:
            ev = self._inbox.popleft()
            if self._paused and len(self._inbox) < self.settings.max_commands_in_flight // 2:
                self._paused = False
                self.transport.resumeProducing()
            return ev
        if self._closed:
            return _CLOSED
        from twisted.internet import reactor

        d = defer.Deferred()
        self._waiter = d
        timer = None
        if timeout is not None:
            def expire():
                if self._waiter is d:
                    self._waiter = None
                    d.callback(None)
            timer = reactor.callLater(timeout, expire)
        ev = await d
        if timer is not None and timer.active():
            timer.cancel()
        return ev

    async def next_line(self, timeout: float | None = None):
        """The next raw client line for a running command (AUTHENTICATE, IDLE's DONE);
        None on timeout; ``CLOSED`` when the connection ended."""
        ev = await self._next_event(timeout)
        if ev is None or ev is _CLOSED:
            return ev
        if isinstance(ev, Frame):
            return ev.data
        self._handle_non_frame(ev)
        return _CLOSED if isinstance(ev, Fatal) else b""

    def _handle_non_frame(self, ev) -> None:
        if isinstance(ev, Refused):
            self.send(serialize.tagged(ev.tag, "NO", f"[TOOBIG] Literal of {ev.size} bytes is over the "
                                                      f"{self.settings.max_literal_size} byte limit"))
        elif isinstance(ev, Fatal):
            self.send(f"* BYE {ev.message}\r\n".encode())
            self.close()

    async def _run(self) -> None:
        while True:
            ev = await self._next_event()
            if ev is _CLOSED:
                break
            if not isinstance(ev, Frame):
                self._handle_non_frame(ev)
                if isinstance(ev, Fatal):
                    break
                continue
            try:
                cmd = parse_command(ev.data)
            except ParseError as e:
                self.send(serialize.tagged(e.tag or "*", "BAD", str(e)))
                continue
            self._running = cmd.name
            try:
                await self.session.execute(cmd)
            except Exception:
                log.exception("imap: %s failed", cmd.name)
                self.send(serialize.tagged(cmd.tag, "NO", "[SERVERBUG] Internal error; see the server log"))
            finally:
                self._running = None
            if not self._closed:
                self._arm_autologout()  # inactivity counts from the end of the command
            if cmd.name == "STARTTLS":
                self._discard = False
            if self._draining and not self._closed:
                self.send(SHUTDOWN_BYE)
                self.close()
            if self.session.state == LOGOUT or self._closed:
                break
        await self.session.close()

    def shutdown(self) -> None:
        """The server is draining: say BYE now if the session is between commands or in IDLE,
        else right after the command in progress (RFC 3501 §7.1.5)."""
        self._draining = True
        if self._running in (None, "IDLE") and not self._closed:
            self.send(SHUTDOWN_BYE)
            self.close()

    # --- what the session calls ------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self._closed:
            return
        if self._deflater is not None:
            data = self._deflater.compress(data) + self._deflater.flush(zlib.Z_SYNC_FLUSH)
        self.transport.write(data)

    def start_compression(self) -> None:
        """COMPRESS=DEFLATE (RFC 4978): raw deflate both ways from the next byte on. The
        server side uses a small window and memory level (allowed by §3) to keep idle
        sessions cheap; inflating accepts any window the client picks."""
        self._deflater = zlib.compressobj(6, zlib.DEFLATED, -10, 5)
        self._inflater = zlib.decompressobj(-15)
        rest = self.framer.take_rest()
        if rest:
            self.dataReceived(rest)

    @property
    def compressed(self) -> bool:
        return self._deflater is not None

    def is_secure(self) -> bool:
        return ISSLTransport.providedBy(self.transport) or self.session.tls_started

    def start_tls(self) -> None:
        self.framer.take_rest()
        self.transport.startTLS(self.factory.ctx.tls)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.transport.loseConnection()

    def watch_notify(self) -> None:
        """NOTIFY SET was given: poll this session's watched mailboxes (RFC 5465)."""
        self.factory.notify_sessions.add(self)
        self.factory.start_notify_loop()

    def notify_tick(self):
        """Called about once a second: send what changed in the watched mailboxes, between
        commands or during IDLE only, one poll at a time."""
        watch = self.session.notify
        if watch is None or self._closed:
            self.factory.notify_sessions.discard(self)
            return None
        if self._running not in (None, "IDLE") or self._notify_polling:
            return None
        self._notify_polling = True

        def done(lines):
            self._notify_polling = False
            if lines and self.session.notify is watch:
                self.send(b"".join(lines))

        def failed(f):
            self._notify_polling = False
            log.warning("imap: NOTIFY poll failed: %s", f.value)

        return run_blocking(watch.poll).addCallbacks(done, failed)

    def begin_bulk(self) -> None:
        if self._gate is not None or self._closed:
            return
        gate = WriteGate()
        try:
            self.transport.registerProducer(gate, True)
        except RuntimeError:  # another producer is registered: go without back-pressure
            return
        self._gate = gate

    def end_bulk(self) -> None:
        if self._gate is not None:
            self._gate = None
            if not self._closed:
                self.transport.unregisterProducer()

    async def drained(self) -> None:
        if self._gate is not None and not self._closed:
            await self._gate.wait()

    @property
    def idle_hub(self):
        return self.factory.idle_hub

    def claim_user(self, address: str) -> bool:
        if self._user is not None:
            return True
        if not self.factory.claim_user(address):
            return False
        self._user = address
        return True

    # --- autologout (RFC 3501 §5.4) --------------------------------------------------------
    def _arm_autologout(self) -> None:
        from twisted.internet import reactor

        delay = self.settings.autologout if self.session.state != NOT_AUTHENTICATED \
            else min(self.settings.login_timeout, self.settings.autologout)
        if self._autologout is not None and self._autologout.active():
            self._autologout.reset(delay)
            return
        self._autologout = reactor.callLater(delay, self._autologout_fired)

    def _autologout_fired(self) -> None:
        self.send(b"* BYE Autologout; idle for too long\r\n")
        self.close()


class ImapFactory(Factory):
    def __init__(self, ctx, listener, settings: ImapSettings | None = None):
        self.ctx = ctx
        self.listener = listener
        config = getattr(ctx, "config", None)
        self.settings = settings or getattr(config, "imap", None) or ImapSettings()
        self.hostname = getattr(ctx, "hostname", "localhost")
        self.per_ip: collections.Counter = collections.Counter()
        self.idle_hub = IdleHub(self.settings.idle_poll)
        self.live: set[ImapProtocol] = set()
        self.per_user: collections.Counter = collections.Counter()
        self.notify_sessions: set[ImapProtocol] = set()
        self._notify_loop = None

    def start_notify_loop(self) -> None:
        from twisted.internet import task

        if self._notify_loop is None:
            self._notify_loop = task.LoopingCall(self._notify_tick)
            self._notify_loop.start(max(self.settings.idle_poll * 2, 0.2), now=False)

    def _notify_tick(self) -> None:
        for proto in list(self.notify_sessions):
            proto.notify_tick()
        if not self.notify_sessions and self._notify_loop is not None:
            self._notify_loop.stop()
            self._notify_loop = None

    def stopFactory(self) -> None:
        """The listener stopped (server drain): sessions get a BYE instead of waiting out the
        grace period in IDLE."""
        for proto in list(self.live):
            proto.shutdown()
        if self._notify_loop is not None and self._notify_loop.running:
            self._notify_loop.stop()
            self._notify_loop = None

    def buildProtocol(self, addr):
        p = ImapProtocol(self)
        p.factory = self
        return p

    def claim_ip(self, ip: str) -> bool:
        if self.per_ip[ip] >= self.settings.max_connections_per_ip:
            return False
        self.per_ip[ip] += 1
        return True

    def release_ip(self, ip: str) -> None:
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]

    def claim_user(self, user: str) -> bool:
        if self.per_user[user] >= self.settings.max_connections_per_user:
            return False
        self.per_user[user] += 1
        return True

    def release_user(self, user: str) -> None:
        self.per_user[user] -= 1
        if self.per_user[user] <= 0:
            del self.per_user[user]


def make_factory(ctx, listener) -> ImapFactory:
    """The protocol factory for one IMAP listener (docs/seams.md, "Protocol factories")."""
    return ImapFactory(ctx, listener)
