"""The Twisted side of POP3: a thin Protocol that carries out what ``Pop3Machine`` asks.

- Bytes from the socket go to the machine; its ``Send``/``StartTLS``/``Close`` actions are done
  at once, its effects (``Login``, ``Retrieve``, ``Update``) run as coroutines whose blocking
  parts go to threads (``pymail.runtime.blocking``); nothing touches the disk or SQL here.
- RETR/TOP stream the message file in chunks read (and encoded) in a thread, registered as a
  push producer so a slow client pauses the reading instead of filling memory.
- Idle timeout (RFC 1939 §3: at least 10 minutes), connections per IP, and the login lock are
  enforced here; a dropped connection never enters the UPDATE state.
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from pymail.pop3.errors import Pop3Error
from pymail.pop3.maildrop import MaildropSession
from pymail.pop3.protocol import (
    Close, Login, Maildrop, Pop3Machine, Retrieve, Send, StartTLS, Update,
)
from pymail.pop3.settings import Pop3Settings
from pymail.pop3.wire import CHUNK_SIZE, MessageEncoder
from pymail.runtime import blocking

log = logging.getLogger("pymail.pop3")

ABORT_AFTER_CLOSE = 10.0  # seconds a closing connection may take to flush before it is cut


class _StreamBroken(Exception):
    """RETR failed after ``+OK`` was sent: the only honest way out is closing the connection."""


@implementer(IPushProducer)
class _Backpressure:
    """Tells the RETR loop when the transport's write buffer is full."""

    def __init__(self) -> None:
        self.paused = False
        self.stopped = False
        self._waiters: list[defer.Deferred] = []

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        self._wake()

    def stopProducing(self) -> None:
        self.stopped = True
        self._wake()

    def wait(self) -> defer.Deferred:
        if not self.paused or self.stopped:
            return defer.succeed(None)
        waiter: defer.Deferred = defer.Deferred()
        self._waiters.append(waiter)
        return waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)


def _read_encoded(fileobj: Any, encoder: MessageEncoder) -> tuple[bytes, bool]:
    """In a thread: the next encoded chunk of a message, and whether the file is done."""
    chunk = fileobj.read(CHUNK_SIZE)
    if not chunk:
        return b"", True
    return encoder.feed(chunk), encoder.done


class Pop3Protocol(Protocol):
    def __init__(self, factory: "Pop3Factory") -> None:
        self.factory = factory
        self.machine: Pop3Machine | None = None
        self.session: MaildropSession | None = None
        self.peer_ip = ""
        self.counted = False
        self.lost = False
        self.effect_running = False
        self._timer: Any = None
        self._producer: _Backpressure | None = None
        self.streamed = 0  # octets of message bodies written (RETR/TOP)

    # -- connection ------------------------------------------------------------------------------

    def connectionMade(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        peer = self.transport.getPeer()
        self.peer_ip = getattr(peer, "host", "") or ""
        settings = self.factory.settings
        if self.factory.connections[self.peer_ip] >= settings.max_connections_per_ip:
            log.warning("pop3: too many connections from %s", self.peer_ip)
            self.transport.write(b"-ERR [SYS/TEMP] Too many connections from your IP address\r\n")
            self._close()
            return
        self.factory.connections[self.peer_ip] += 1
        self.counted = True
        listener = self.factory.listener
        secure = listener.tls == "implicit" or ISSLTransport.providedBy(self.transport)
        self.machine = Pop3Machine(
            secure=secure,
            tls_available=listener.tls == "starttls" and self.factory.ctx.tls is not None,
            allow_plaintext_auth=listener.allow_plaintext_auth,
            max_line_length=settings.max_line_length,
            max_bad_commands=settings.max_bad_commands,
        )
        self._touch()
        self._apply(self.machine.greeting())

    def dataReceived(self, data: bytes) -> None:
        if self.machine is None or self.lost:
            return
        self._touch()
        self._apply(self.machine.data_received(data))

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._producer is not None:
            self._producer.stopProducing()
        if self.counted:
            self.counted = False
            self.factory.connections[self.peer_ip] -= 1
            if self.factory.connections[self.peer_ip] <= 0:
                del self.factory.connections[self.peer_ip]
        if not self.effect_running:
            self._release_session()

    # -- timers and closing ----------------------------------------------------------------------

    def _touch(self) -> None:
        """(Re)start the inactivity timer (RFC 1939 §3 autologout)."""
        if self.lost:
            return
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.factory.settings.idle_timeout)
        else:
            self._timer = self.reactor.callLater(self.factory.settings.idle_timeout,
                                                 self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        log.info("pop3: %s idle for %.0f s, disconnecting", self.peer_ip,
                 self.factory.settings.idle_timeout)
        # RFC 1939 §3: an autologout timer closes without entering the UPDATE state.
        self.transport.write(b"-ERR Disconnected for inactivity\r\n")
        self._close()

    def _close(self) -> None:
        self.transport.loseConnection()
        self.reactor.callLater(ABORT_AFTER_CLOSE, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if not self.lost:
            self.transport.abortConnection()

    def _release_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            defer.ensureDeferred(self._close_session(session))

    async def _close_session(self, session: MaildropSession) -> None:
        try:
            await blocking(session.close)
        except Exception:
            log.exception("pop3: %s: closing the maildrop failed", session.user)

    # -- actions ---------------------------------------------------------------------------------

    def _apply(self, actions: list[Any]) -> None:
        for action in actions:
            if self.lost:
                return
            if isinstance(action, Send):
                self.transport.write(action.data)
            elif isinstance(action, StartTLS):
                self.transport.startTLS(self.factory.ctx.tls)
            elif isinstance(action, Close):
                self._close()
            else:
                self.effect_running = True
                defer.ensureDeferred(self._run_effect(action))

    async def _run_effect(self, action: Any) -> None:
        assert self.machine is not None
        try:
            if isinstance(action, Login):
                result: Any = await self._login(action)
            elif isinstance(action, Retrieve):
                result = await self._retrieve(action)
            elif isinstance(action, Update):
                result = await self._update(action)
            else:
                raise TypeError(f"unknown POP3 effect {action!r}")
        except Pop3Error as exc:
            actions = self.machine.effect_failed(exc)
        except _StreamBroken:
            self.effect_running = False
            if not self.lost:
                self.transport.abortConnection()
            else:
                self._release_session()
            return
        except Exception:
            log.exception("pop3: %s: internal error in %s", self.peer_ip, type(action).__name__)
            actions = self.machine.effect_failed(
                Pop3Error("Internal server error, try again later", "SYS/TEMP"))
        else:
            actions = self.machine.effect_done(result)
        self.effect_running = False
        if self.lost:
            self._release_session()
            return
        self._touch()
        self._apply(actions)

    async def _login(self, action: Login) -> Maildrop:
        from pymail.directory.auth import AuthFailed, AuthThrottled, AuthUnavailable

        try:
            user = await self.factory.ctx.authenticator.authenticate(
                action.username, action.password, self.peer_ip)
        except AuthThrottled:
            raise Pop3Error("Too many failed logins, try again later", "SYS/TEMP") from None
        except AuthUnavailable:
            raise Pop3Error("Authentication is temporarily unavailable", "SYS/TEMP") from None
        except AuthFailed:
            raise Pop3Error("Authentication failed", "AUTH") from None
        session = await blocking(MaildropSession.open, self.factory.ctx.store, user,
                                 self.factory.settings.uidl_format)
        self.session = session
        if self.lost:
            raise Pop3Error("Connection lost")
        assert session.maildrop is not None
        log.info("pop3: login user=%s ip=%s mech=%s messages=%d", user, self.peer_ip,
                 action.mechanism, len(session.maildrop.messages))
        return session.maildrop

    async def _retrieve(self, action: Retrieve) -> None:
        assert self.session is not None
        fileobj = await blocking(self.session.open_message, action.uid, action.number)
        try:
            if self.lost:
                raise _StreamBroken()
            self.transport.write(action.ok_line)
            try:
                await self._stream(fileobj, MessageEncoder(action.body_lines))
            except _StreamBroken:
                raise
            except Exception as exc:
                # After "+OK" an -ERR would be read as message text: cut the connection.
                log.error("pop3: %s: sending uid %d failed: %r", self.session.user,
                          action.uid, exc)
                raise _StreamBroken() from None
        finally:
            await blocking(fileobj.close)

    async def _stream(self, fileobj: Any, encoder: MessageEncoder) -> None:
        """Chunks read and encoded in a thread, written as the transport accepts them."""
        producer = self._producer = _Backpressure()
        self.transport.registerProducer(producer, True)
        try:
            while True:
                data, eof = await blocking(_read_encoded, fileobj, encoder)
                if self.lost or producer.stopped:
                    raise _StreamBroken()
                if data:
                    self.transport.write(data)
                    self.streamed += len(data)
                    self._touch()
                if eof:
                    break
                await producer.wait()
            self.transport.write(encoder.finish())
        finally:
            self._producer = None
            if not self.lost:
                self.transport.unregisterProducer()

    async def _update(self, action: Update) -> int:
        """The UPDATE state; the lock is released before the final +OK, so a client that
        reconnects as soon as it has the answer finds its maildrop free."""
        session, self.session = self.session, None
        assert session is not None
        seen = action.retrieved_uids if self.factory.settings.seen_on_retr else ()
        try:
            removed = await blocking(session.update, action.delete_uids, seen)
        finally:
            await blocking(session.close)
        log.info("pop3: logout user=%s ip=%s deleted=%d", session.user, self.peer_ip, removed)
        return removed


class Pop3Factory(Factory):
    protocol = Pop3Protocol

    def __init__(self, ctx: Any, listener: Any, settings: Pop3Settings) -> None:
        self.ctx = ctx
        self.listener = listener
        self.settings = settings
        self.connections: Counter[str] = Counter()
        self.protocols: weakref.WeakSet[Pop3Protocol] = weakref.WeakSet()

    def buildProtocol(self, addr: Any) -> Pop3Protocol:
        protocol = Pop3Protocol(self)
        self.protocols.add(protocol)
        return protocol


def make_factory(ctx: Any, listener: Any) -> Pop3Factory:
    """The POP3 factory for one listener (docs/seams.md, "Protocol factories")."""
    settings = getattr(getattr(ctx, "config", None), "pop3", None) or Pop3Settings()
    return Pop3Factory(ctx, listener, settings)
