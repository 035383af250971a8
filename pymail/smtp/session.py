"""SMTP/LMTP session policy: what the sans-IO core's events mean for pymail.

One ``Session`` per connection. The core decides syntax and order; this decides who may send what
to whom (relay control, AUTH, sender ownership), where message bytes go (a spool file) and when a
message is accepted (after the queue made it durable). Everything slow runs in threads.

Roles (``listener.role``):
- ``mx``: mail for local domains from anyone; relaying only for authenticated clients or
  ``smtp.trusted_networks`` (RFC 5321 §3.6.2 says an MTA must not be an open relay).
- ``submission``: RFC 6409: AUTH required before MAIL; AUTH only over TLS unless the listener
  allows plaintext; MAIL FROM must be an address of the authenticated user (553 5.7.1).
- ``lmtp``: RFC 2033: local recipients only, delivered at once, one reply per recipient.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pymail.queue import maillog
from pymail.queue.envelope import Envelope, Recipient
from pymail.runtime import run_blocking
from pymail.smtp import core as ev
from pymail.smtp import sasl
from pymail.smtp.addresses import (has_routing, in_networks, is_ip_literal, normalize,
                                   split_address)
from pymail.smtp.commands import Path, decode_xtext
from pymail.smtp.errors import Reply, SmtpError
from pymail.smtp.filtering import filters_for
from pymail.smtp.lmtp import deliver_lmtp
from pymail.smtp.received import protocol_name, received_header

log = logging.getLogger(__name__)

NOTIFY_VALUES = {"NEVER", "SUCCESS", "FAILURE", "DELAY"}


@dataclass
class Transaction:
    queue_id: str
    sender: str
    params: dict
    recipients: list[Recipient] = field(default_factory=list)
    rcpt_addresses: list[str] = field(default_factory=list)  # as accepted (LMTP replies)
    writer: object = None
    size: int = 0
    too_big: bool = False
    hops: int = 0  # Received fields in the client's header (RFC 5321 §6.3 loop detection)
    in_header: bool = True
    carry: bytes = b""

    def count_hops(self, data: bytes) -> None:
        """Count ``Received:`` fields while the header streams past (no second read)."""
        if not self.in_header:
            return
        data = self.carry + data
        lines = data.split(b"\n")
        self.carry = lines.pop()[:64]  # a partial line: its start is all we need
        for line in lines:
            if line in (b"", b"\r"):
                self.in_header = False
                return
            if line[:9].lower() == b"received:":
                self.hops += 1


class Session:
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

    # -- AUTH (RFC 4954) --------------------------------------------------------------------------
    async def on_auth(self, event: ev.Auth) -> None:
        if self.lmtp or self.ctx.authenticator is None:
            raise SmtpError(502, "5.5.1", "AUTH not available")
        if not self.auth_offered:
            # RFC 4954 §6: 538 when the mechanism needs an encrypted channel.
            raise SmtpError(538, "5.7.11", "Encryption required for requested authentication mechanism")
        if event.mechanism not in sasl.MECHANISMS:
            raise SmtpError(504, "5.5.4", "Unrecognized authentication type")
        self._sasl = {"mech": event.mechanism}
        if event.mechanism == "PLAIN":
            if event.initial is None:
                self.core.auth_challenge("")
                return
            await self._finish_auth(*sasl.parse_plain(self._cancel_check(event.initial)))
        else:
            if event.initial is None:
                self.core.auth_challenge(sasl.USERNAME_PROMPT)
                return
            self._sasl["user"] = sasl.decode_text(self._cancel_check(event.initial))
            self.core.auth_challenge(sasl.PASSWORD_PROMPT)

    @staticmethod
    def _cancel_check(text: str) -> str:
        if text == "*":
            raise SmtpError(501, "5.0.0", "Authentication cancelled")
        return text

    async def on_auth_line(self, text: str) -> None:
        state = self._sasl
        if state is None:
            raise SmtpError(503, "5.5.1", "No authentication in progress")
        self._cancel_check(text)
        if state["mech"] == "PLAIN":
            await self._finish_auth(*sasl.parse_plain(text))
        elif "user" not in state:
            state["user"] = sasl.decode_text(text)
            self.core.auth_challenge(sasl.PASSWORD_PROMPT)
        else:
            await self._finish_auth(state["user"], sasl.decode_text(text))

    async def _finish_auth(self, username: str, password: str) -> None:
        from pymail.directory.auth import AuthFailed, AuthThrottled, AuthUnavailable

        self._sasl = None
        try:
            user = await self.ctx.authenticator.authenticate(username, password, self.peer_ip)
        except (AuthThrottled, AuthUnavailable) as exc:
            maillog.event(None, f"[{self.peer_ip}]: SASL authentication for {username[:64]!r}: {exc}")
            raise SmtpError(454, "4.7.0", "Temporary authentication failure, try again later") from None
        except AuthFailed:
            self.auth_failures += 1
            maillog.event(None, f"[{self.peer_ip}]: SASL authentication failed for {username[:64]!r}")
            if self.auth_failures >= self.settings.max_auth_attempts:
                self.core.close(Reply(421, "4.7.0", "Too many authentication failures"))
                return
            raise SmtpError(535, "5.7.8", "Authentication credentials invalid") from None
        self.auth_user = user
        maillog.event(None, f"[{self.peer_ip}]: sasl_username={user}")
        self.core.accept_auth(user, Reply(235, "2.7.0", "Authentication successful"))

    # -- MAIL --------------------------------------------------------------------------------------
    async def on_mail(self, path: Path) -> None:
        if self.role == "submission" and self.auth_user is None:
            raise SmtpError(530, "5.7.0", "Authentication required")
        params = self._mail_params(path)
        sender = normalize(path.address) if path.address else ""
        if not params.get("smtputf8") and not sender.isascii():
            raise SmtpError(553, "5.6.7", "Non-ASCII address needs SMTPUTF8 (RFC 6531)")
        if self.auth_user is not None and self.role == "submission":
            if not await run_blocking(self._owns_address, sender):
                raise SmtpError(553, "5.7.1", f"Sender address <{sender}> is not owned by {self.auth_user}")
        if self.filters is not None:
            await self.filters.check("mail_from", self, sender)
        self.txn = Transaction(self.queue.new_id(), sender, params)
        self.core.accept_mail(Reply(250, "2.1.0", "Sender OK"))

    def _owns_address(self, sender: str) -> bool:
        if not sender:
            return False
        if sender.lower() == self.auth_user.lower():
            return True
        resolution = self.ctx.directory.resolve_recipient(sender)
        return bool(resolution) and any(u.lower() == self.auth_user.lower() for u in resolution.local_users)

    def _mail_params(self, path: Path) -> dict:
        out: dict = {}
        for key, value in path.params.items():
            if key == "SIZE":
                if value is None or not value.isdigit():
                    raise SmtpError(501, "5.5.4", "Bad SIZE parameter")
                if int(value) > self.settings.max_message_size:
                    raise SmtpError(552, "5.3.4", "Message size exceeds fixed maximum message size")
            elif key == "BODY":
                if (value or "").upper() not in ("7BIT", "8BITMIME"):
                    raise SmtpError(501, "5.5.4", "BODY must be 7BIT or 8BITMIME")
                out["body"] = value.upper()
            elif key == "SMTPUTF8":
                if value is not None:
                    raise SmtpError(501, "5.5.4", "SMTPUTF8 takes no value")
                out["smtputf8"] = True
            elif key == "RET":
                if (value or "").upper() not in ("FULL", "HDRS"):
                    raise SmtpError(501, "5.5.4", "RET must be FULL or HDRS")
                out["ret"] = value.upper()
            elif key == "ENVID":
                if not value or len(value) > 100:
                    raise SmtpError(501, "5.5.4", "Bad ENVID")
                out["envid"] = decode_xtext(value)
            elif key == "AUTH":
                continue  # RFC 4954 §5: accepted; we do not trust the claimed identity
            else:
                raise SmtpError(555, "5.5.4", f"Unsupported MAIL parameter {key}")
        return out

    # -- RCPT --------------------------------------------------------------------------------------
    async def on_rcpt(self, path: Path) -> None:
        txn = self.txn
        if len(txn.rcpt_addresses) >= self.settings.max_recipients:
            raise SmtpError(452, "4.5.3", "Too many recipients")
        if not path.address:
            raise SmtpError(501, "5.1.3", "Empty recipient")
        notify, orcpt = self._rcpt_params(path)
        address = path.address
        if address.lower() == "postmaster":
            address = await run_blocking(self._postmaster)
        if not txn.params.get("smtputf8") and not address.isascii():
            raise SmtpError(553, "5.6.7", "Non-ASCII address needs SMTPUTF8 (RFC 6531)")
        local_part, domain = split_address(address)
        domain = domain.lower()
        address = f"{local_part}@{domain}"
        local_domain, resolution = await run_blocking(self._lookup, local_part, domain, address)
        if local_domain:
            if has_routing(local_part):
                # "user%ext@local", "ext!user@local", '"user@ext"@local': source routing in the
                # local part is never honoured (it is how open relays were abused).
                raise SmtpError(550, "5.7.1", "Relay access denied")
            if resolution is None or not (resolution.local_users or resolution.external):
                raise SmtpError(550, "5.1.1", f"<{address}>: Recipient address rejected: User unknown")
            new = [Recipient(u, True, address, orcpt, notify, resolution.detail or "")
                   for u in resolution.local_users]
            new += [Recipient(normalize(x), False, address, orcpt, notify) for x in resolution.external]
        else:
            if self.lmtp or not self.may_relay:
                raise SmtpError(554 if not self.lmtp else 550, "5.7.1",
                                f"<{address}>: Relay access denied")
            new = [Recipient(address, False, address, orcpt, notify)]
        if self.filters is not None:
            await self.filters.check("rcpt", self, address)
        # One copy per final recipient, however many RCPTs and aliases lead there.
        seen = {(r.address.lower(), r.local) for r in txn.recipients}
        txn.recipients.extend(r for r in new if (r.address.lower(), r.local) not in seen)
        txn.rcpt_addresses.append(address)
        self.core.accept_rcpt(Reply(250, "2.1.5", "Recipient OK"))

    def _postmaster(self) -> str:
        """RFC 5321 §4.5.1: <postmaster> must work; it is postmaster@ our host name's domain."""
        host = self.ctx.hostname.lower()
        candidates = [host, host.partition(".")[2]]
        for domain in candidates:
            if domain and self.ctx.directory.is_local_domain(domain):
                return f"postmaster@{domain}"
        return f"postmaster@{host}"

    def _lookup(self, local_part: str, domain: str, address: str):
        """(is the domain ours, where mail for the address goes) in one thread hop."""
        if is_ip_literal(domain) or not self.ctx.directory.is_local_domain(domain):
            return False, None
        if has_routing(local_part):
            return True, None
        return True, self.ctx.directory.resolve_recipient(address)

    @staticmethod
    def _rcpt_params(path: Path) -> tuple[list[str], str]:
        notify: list[str] = []
        orcpt = ""
        for key, value in path.params.items():
            if key == "NOTIFY":
                notify = [v.upper() for v in (value or "").split(",")]
                if not notify or any(v not in NOTIFY_VALUES for v in notify) or (
                        "NEVER" in notify and len(notify) > 1):
                    raise SmtpError(501, "5.5.4", "Bad NOTIFY parameter (RFC 3461 §4.1)")
            elif key == "ORCPT":
                kind, sep, addr = (value or "").partition(";")
                if not sep or not kind:
                    raise SmtpError(501, "5.5.4", "Bad ORCPT parameter (RFC 3461 §4.2)")
                orcpt = f"{kind};{decode_xtext(addr)}"
            else:
                raise SmtpError(555, "5.5.4", f"Unsupported RCPT parameter {key}")
        return notify, orcpt

    # -- DATA / BDAT -------------------------------------------------------------------------------
    def _open_spool(self) -> None:
        txn = self.txn
        if txn.writer is not None:
            return
        txn.writer = self.queue.writer(txn.queue_id)
        one = txn.rcpt_addresses[0] if len(txn.rcpt_addresses) == 1 else None
        hide = self.settings.hide_submitter_ip and self.auth_user is not None
        header = received_header(
            helo=self.helo or "unknown", peer_ip=self.peer_ip, hostname=self.ctx.hostname,
            protocol=protocol_name(self.lmtp, self.core.extended, self.secure, self.auth_user is not None),
            queue_id=txn.queue_id, tls_info=self.io.tls_info() if self.secure else "",
            auth_user=self.auth_user, recipient=one, hide_client=hide)
        txn.writer.write(header)
        txn.size = 0  # the header we add does not count against the client's SIZE

    def on_data(self) -> None:
        self._open_spool()
        self.core.start_data()

    def on_bdat(self, event: ev.Bdat) -> None:
        txn = self.txn
        if txn.size + event.size > self.settings.max_message_size:
            txn.too_big = True
            self.abort_transaction()
            raise SmtpError(552, "5.3.4", "Message size exceeds fixed maximum message size")
        self._open_spool()
        self.core.accept_bdat()

    async def on_message_end(self, event: ev.MessageEnd) -> None:
        if event.bdat and not event.last:
            self.core.accept_chunk(Reply(250, "2.0.0", f"{self.txn.size} octets received"))
            return
        txn, self.txn = self.txn, None
        if txn.too_big:
            if txn.writer is not None:
                txn.writer.abort()
            maillog.event(txn.queue_id, f"reject: message from [{self.peer_ip}] too big; from=<{txn.sender}>")
            self._finish([Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")], txn)
            return
        if txn.hops > self.settings.max_hops:
            txn.writer.abort()
            maillog.event(txn.queue_id, f"reject: message from [{self.peer_ip}] has {txn.hops} Received "
                                        f"headers (mail loop?); from=<{txn.sender}>")
            self._finish([Reply(554, "5.4.6", "Too many hops (mail loop?)")], txn)
            return
        try:
            path = await txn.writer.finish()
        except OSError as exc:
            log.error("%s: %s", txn.queue_id, exc)
            self._finish([Reply(451, "4.3.0", "Local error writing the message, try again later")], txn)
            return
        refused: set[str] = set()
        if self.filters is not None:
            try:
                refused = await self.filters.check_data(self, txn.sender, txn.rcpt_addresses, path)
            except SmtpError as exc:
                await run_blocking(_unlink, path)
                maillog.event(txn.queue_id, f"reject: DATA from [{self.peer_ip}]: {exc.reply}; from=<{txn.sender}>")
                self._finish([exc.reply], txn)
                return
        envelope = Envelope(
            queue_id=txn.queue_id, sender=txn.sender, recipients=txn.recipients, created=time.time(),
            size=txn.writer.size, body=txn.params.get("body", ""),
            smtputf8=bool(txn.params.get("smtputf8")), ret=txn.params.get("ret", ""),
            envid=txn.params.get("envid", ""), helo=self.helo, client_ip=self.peer_ip,
            auth_user=self.auth_user or "")
        if self.lmtp:
            replies = await deliver_lmtp(self.queue, envelope, path, txn.rcpt_addresses, refused)
            self._finish(replies, txn)
            return
        try:
            await self.queue.accept(envelope, path)
        except OSError as exc:
            log.error("%s: cannot queue: %s", txn.queue_id, exc)
            self._finish([Reply(451, "4.3.0", "Local error in queueing, try again later")], txn)
            return
        self._finish([Reply(250, "2.0.0", f"Ok: queued as {txn.queue_id}")], txn)

    def _finish(self, replies: list[Reply], txn: Transaction) -> None:
        if self.lmtp and len(replies) == 1 and replies[0].code != 250:
            replies = replies * len(txn.rcpt_addresses)  # RFC 2033 §4.2: one per recipient
        self.core.finish_message(replies)

    def abort_transaction(self) -> None:
        txn, self.txn = self.txn, None
        if txn is not None and txn.writer is not None and not txn.writer.closed:
            txn.writer.abort()

    def connection_lost(self) -> None:
        self.abort_transaction()


def _unlink(path) -> None:
    import os

    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
