"""The thin Twisted layer: bytes in and out of a ``ServerCore``, events to a ``Session``.

Not ``twisted.mail.smtp.ESMTP``: that class answers pipelined commands out of order in corner
cases, does not discard input after STARTTLS and reads DATA line by line into memory.
"""

from __future__ import annotations

import logging

from twisted.internet import defer, interfaces, protocol
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from pymail.queue import maillog
from pymail.smtp import core as ev
from pymail.smtp.errors import Reply
from pymail.smtp.session import Session

log = logging.getLogger(__name__)

MAX_UNREAD = 1024 * 1024  # unread input bytes before we stop reading from the socket


class SmtpProtocol(protocol.Protocol, TimeoutMixin):
    def __init__(self, factory: "SmtpFactory"):
        self.factory = factory
        self.core: ev.ServerCore | None = None
        self.session: Session | None = None
        self._busy = False
        self._paused_for = None
        self._input_paused = False
        self.peer_ip = ""

    # -- connection --------------------------------------------------------------------------------
    def connectionMade(self) -> None:
        ctx, listener, settings = self.factory.ctx, self.factory.listener, self.factory.settings
        peer = self.transport.getPeer()
        self.peer_ip = getattr(peer, "host", "") or "unix"
        port = getattr(peer, "port", "")
        self.core = ev.ServerCore(lmtp=listener.role == "lmtp", max_line=settings.max_line_length,
                                  max_bad_commands=settings.max_bad_commands, hostname=ctx.hostname)
        secure = interfaces.ISSLTransport.providedBy(self.transport)
        self.session = Session(ctx, listener, self.core, self, self.peer_ip, secure)
        self.session.peer_port = port if isinstance(port, int) else 0
        maillog.event(None, f"connect from [{self.peer_ip}]:{port} role={listener.role}")
        count = self.factory.connections.get(self.peer_ip, 0) + 1
        self.factory.connections[self.peer_ip] = count
        if count > settings.max_connections_per_ip and self.peer_ip != "unix":
            maillog.event(None, f"reject: too many connections from [{self.peer_ip}]")
            self.core.close(Reply(421, "4.7.0", f"{ctx.hostname} Too many connections from your address"))
            self._flush()
            return
        self.setTimeout(settings.idle_timeout)
        if self.session.filters is not None:
            # The connect phase of the filters (DNSBL, ...) decides whether we greet at all.
            self._busy = True
            d = defer.ensureDeferred(self.session.filters.check("connect", self.session))
            d.addCallbacks(lambda _: self._greet(), self._refuse_connection)
            return
        self._greet()

    def _greet(self) -> None:
        self._busy = False
        if self.transport is None or not self.connected:
            return
        self.core.greet("LMTP pymail" if self.factory.listener.role == "lmtp" else "ESMTP pymail")
        self._flush()
        self._pump()

    def _refuse_connection(self, failure) -> None:
        from pymail.smtp.errors import SmtpError

        self._busy = False
        if failure.check(SmtpError):
            reply = failure.value.reply
        else:
            log.error("connect filters failed: %s", failure.getTraceback())
            reply = Reply(421, "4.3.0", "Temporary local problem, try again later")
        maillog.event(None, f"reject: CONNECT from [{self.peer_ip}]: {reply}")
        self.core.close(reply)
        self._flush()

    def connectionLost(self, reason=None) -> None:
        self.setTimeout(None)
        n = self.factory.connections.get(self.peer_ip, 1) - 1
        if n <= 0:
            self.factory.connections.pop(self.peer_ip, None)
        else:
            self.factory.connections[self.peer_ip] = n
        if self.session is not None:
            self.session.connection_lost()
        maillog.event(None, f"disconnect from [{self.peer_ip}]")

    def timeoutConnection(self) -> None:
        # RFC 5321 §4.5.3.2: a server may close an idle connection; say why first.
        maillog.event(None, f"timeout after {self.factory.settings.idle_timeout:g}s from [{self.peer_ip}]")
        self.transport.write(Reply(421, "4.4.2", f"{self.factory.ctx.hostname} Idle timeout, closing").encode())
        self.transport.loseConnection()

    # -- input -------------------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self.core is None or self.core.closed:
            return
        self.core.receive(data)
        self._pump()
        if self.core.reader.buffered > MAX_UNREAD and not self._input_paused and self.connected:
            # The session is busy (a lookup, a commit) and the client keeps sending: stop reading
            # until the backlog is worked off instead of buffering without bound.
            self._input_paused = True
            self.transport.pauseProducing()

    def _pump(self) -> None:
        core = self.core
        while not self._busy and not core.closed:
            try:
                event = core.next_event()
            except Exception:  # a parser bug must cost this client a 421, not a traceback loop
                log.exception("SMTP core error from [%s]", self.peer_ip)
                core.close(Reply(421, "4.3.0", f"{self.factory.ctx.hostname} Internal error, closing"))
                break
            if event is None:
                break
            self.resetTimeout()
            if isinstance(event, ev.MessageChunk):
                self.session.chunk(event.data)
                continue
            if isinstance(event, ev.Closed):
                break
            d = defer.ensureDeferred(self.session.handle(event))
            if not d.called:
                self._busy = True
                self._flush()
                d.addBoth(self._resume, event)
                return
            d.addErrback(self._internal_error, event)
        self._flush()

    def _resume(self, result, event) -> None:
        self._busy = False
        if isinstance(result, Failure):
            self._internal_error(result, event)
        if self.transport is not None and self.connected:
            self._pump()
            if self._input_paused and self.core.reader.buffered <= MAX_UNREAD:
                self._input_paused = False
                if self._paused_for is None:
                    self.transport.resumeProducing()

    def _internal_error(self, failure, event) -> None:
        log.error("SMTP session error on %r from [%s]: %s", type(event).__name__, self.peer_ip,
                  failure.getTraceback())
        if self.core.awaiting is event:
            self.core.reply(Reply(451, "4.3.0", "Temporary local problem, try again later"))
        self._flush()

    def _flush(self) -> None:
        out = self.core.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)
        if self.core.closed and self.transport is not None:
            self.transport.loseConnection()

    # -- services for the session ------------------------------------------------------------------
    def start_tls(self) -> None:
        self._flush()  # the 220 goes out in the clear, then the handshake
        self.transport.startTLS(self.factory.ctx.tls)

    def tls_info(self) -> str:
        try:
            conn = self.transport.getHandle()
            return f"version={conn.get_protocol_version_name()} cipher={conn.get_cipher_name()}"
        except Exception:
            return "TLS"

    def pause_until(self, writer) -> None:
        """Stop reading from the client until the spool writer caught up (flow control)."""
        if self._paused_for is not None:
            return
        self._paused_for = writer
        self.transport.pauseProducing()

        def resume(_):
            self._paused_for = None
            if self.connected and not self._input_paused:
                self.transport.resumeProducing()
            return _

        writer.drained().addBoth(resume)


class SmtpFactory(protocol.Factory):
    def __init__(self, ctx, listener):
        self.ctx = ctx
        self.listener = listener
        self.settings = ctx.config.smtp
        self.connections: dict[str, int] = {}

    def buildProtocol(self, addr):
        p = SmtpProtocol(self)
        p.factory = self
        return p
