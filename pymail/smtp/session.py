"""SMTP/LMTP session policy: what the sans-IO core's events mean for pymail.

One ``Session`` per connection. The core decides syntax and order; the session decides who may
send what to whom (relay control, AUTH, sender ownership), where message bytes go (a spool file)
and when a message is accepted (after the queue made it durable). Everything slow runs in threads.
This module has the dispatch, EHLO and STARTTLS; one module per phase has the rest: ``auth``
(AUTH), ``mail`` (MAIL, RCPT), ``data`` (DATA, BDAT, the end of a message).

Roles (``listener.role``):
- ``mx``: mail for local domains from anyone; relaying only for authenticated clients or
  ``smtp.trusted_networks`` (RFC 5321 §3.6.2 says an MTA must not be an open relay).
- ``submission``: RFC 6409: AUTH required before MAIL; AUTH only over TLS unless the listener
  allows plaintext; MAIL FROM must be an address of the authenticated user (553 5.7.1).
- ``lmtp``: RFC 2033: local recipients only, delivered at once, one reply per recipient.
"""

from __future__ import annotations

import logging

from pymail.queue import maillog
from pymail.smtp import core as ev
from pymail.smtp import sasl
from pymail.smtp.addresses import in_networks
from pymail.smtp.auth import AuthPhase
from pymail.smtp.data import DataPhase
from pymail.smtp.errors import Reply, SmtpError
from pymail.smtp.filtering import filters_for
from pymail.smtp.mail import MailPhase
from pymail.smtp.transaction import Transaction

log = logging.getLogger(__name__)

__all__ = ["Session", "Transaction"]


class Session(AuthPhase, MailPhase, DataPhase):
    def __init__(self, ctx, listener, core: ev.ServerCore, io, peer_ip: str, secure: bool):
        self.ctx = ctx
        self.listener = listener
        self.role = listener.role
        self.core = core
        self.io = io  # the protocol: start_tls(), pause(), resume(), tls_info()
        self.peer_ip = peer_ip
        self.peer_port = 0
        self.filter_session = None
        self.secure = secure
        core.tls = secure
        self.settings = ctx.config.smtp
        self.queue = ctx.queue
        self.helo = ""
        self.auth_user: str | None = None
        self.auth_failures = 0
        self.txn: Transaction | None = None
        self.trusted = in_networks(peer_ip, self.settings.trusted_networks)
        self._sasl: dict | None = None
        self.filters = filters_for(ctx)

    # -- helpers -----------------------------------------------------------------------------------
    @property
    def lmtp(self) -> bool:
        return self.role == "lmtp"

    @property
    def may_relay(self) -> bool:
        return self.auth_user is not None or self.trusted

    @property
    def auth_offered(self) -> bool:
        if self.lmtp or self.ctx.authenticator is None:
            return False
        if self.role == "mx" and not self.settings.mx_offers_auth:
            return False
        return self.secure or self.listener.allow_plaintext_auth

    @property
    def starttls_offered(self) -> bool:
        return not self.secure and self.ctx.tls is not None and self.listener.tls == "starttls"

    def reject(self, stage: str, reply: Reply, detail: str = "") -> None:
        maillog.event(self.txn.queue_id if self.txn else None,
                      f"reject: {stage} from [{self.peer_ip}]: {reply}{'; ' + detail if detail else ''}")
        self.core.reply(reply)

    # -- dispatch ----------------------------------------------------------------------------------
    async def handle(self, event) -> None:
        try:
            if isinstance(event, ev.Helo):
                await self.on_helo(event)
            elif isinstance(event, ev.Mail):
                await self.on_mail(event.path)
            elif isinstance(event, ev.Rcpt):
                await self.on_rcpt(event.path)
            elif isinstance(event, ev.Data):
                self.on_data()
            elif isinstance(event, ev.Bdat):
                self.on_bdat(event)
            elif isinstance(event, ev.MessageEnd):
                await self.on_message_end(event)
            elif isinstance(event, ev.Rset):
                self.abort_transaction()
                self.core.accept_rset()
            elif isinstance(event, ev.StartTls):
                self.on_starttls()
            elif isinstance(event, ev.Auth):
                await self.on_auth(event)
            elif isinstance(event, ev.AuthLine):
                await self.on_auth_line(event.text)
        except SmtpError as exc:
            if isinstance(event, (ev.Mail, ev.Rcpt)):
                stage = "MAIL" if isinstance(event, ev.Mail) else "RCPT"
                self.reject(stage, exc.reply, f"to=<{event.path.address}>" if stage == "RCPT" else
                            f"from=<{event.path.address}>")
            else:
                self.core.reply(exc.reply)
            if isinstance(event, (ev.Auth, ev.AuthLine)):
                self._sasl = None

    def chunk(self, data: bytes) -> None:
        txn = self.txn
        if txn is None or txn.writer is None:
            return
        txn.size += len(data)
        if txn.size > self.settings.max_message_size:
            txn.too_big = True  # keep reading to the end, keep nothing (RFC 1870 §6.3)
            if not txn.writer.closed:
                txn.writer.abort()
            return
        txn.count_hops(data)
        txn.writer.write(data)
        if txn.writer.backlog > 4 * 1024 * 1024:
            self.io.pause_until(txn.writer)

    # -- EHLO --------------------------------------------------------------------------------------
    async def on_helo(self, event: ev.Helo) -> None:
        self.abort_transaction()
        self.helo = event.domain
        name = self.ctx.hostname
        if self.filters is not None:
            await self.filters.check("helo", self, event.domain)
        if not event.extended:
            self.core.accept_helo(Reply(250, "", f"{name}"))
            return
        keywords = ["PIPELINING", f"SIZE {self.settings.max_message_size}", "8BITMIME",
                    "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "CHUNKING"]
        if self.starttls_offered:
            keywords.append("STARTTLS")
        if self.auth_offered and self.auth_user is None:
            keywords.append("AUTH " + " ".join(sasl.MECHANISMS))
        self.core.accept_helo(Reply(250, "", f"{name} greets {self.helo[:60]}", tuple(keywords)))

    # -- STARTTLS (RFC 3207) ----------------------------------------------------------------------
    def on_starttls(self) -> None:
        if not self.starttls_offered:
            raise SmtpError(502, "5.5.1", "STARTTLS not available")
        self.abort_transaction()
        discarded = self.core.start_tls()
        if discarded:
            log.info("[%s] dropped %d bytes sent after STARTTLS (RFC 3207 §4.2)", self.peer_ip, discarded)
        self.helo = ""
        self.auth_user = None  # RFC 3207 §4.2: forget everything learnt before TLS
        self.secure = True
        self.io.start_tls()

    def abort_transaction(self) -> None:
        txn, self.txn = self.txn, None
        if txn is not None and txn.writer is not None and not txn.writer.closed:
            txn.writer.abort()

    def connection_lost(self) -> None:
        self.abort_transaction()
