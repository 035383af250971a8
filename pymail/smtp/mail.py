"""MAIL and RCPT for the SMTP session: sender ownership, ESMTP/DSN parameters, relay control.

RFC 5321 §3.6.2 (no open relay), RFC 6409 §6.1 (submission sender checks), RFC 3461 (DSN
parameters), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8).
"""

from __future__ import annotations

from pymail.directory.answers import AnswerCache
from pymail.queue.envelope import Recipient
from pymail.runtime import run_blocking
from pymail.smtp.addresses import has_routing, is_ip_literal, normalize, split_address
from pymail.smtp.commands import Path, decode_xtext
from pymail.smtp.errors import Reply, SmtpError
from pymail.smtp.transaction import Transaction

NOTIFY_VALUES = {"NEVER", "SUCCESS", "FAILURE", "DELAY"}

# RCPT lookups: a recipient that resolved to someone is remembered for RESOLVE_TTL seconds per
# process (and per Directory object), so a burst of mail to one address costs one SQL query
# instead of one per RCPT, and no thread hop. Only positive answers are kept: a user or domain
# added a moment ago is never refused from a stale cache (a 550 is permanent). A user deleted or
# an alias changed is seen at most RESOLVE_TTL seconds late; mail accepted in that window is
# handled by the queue like any mail to a vanished user (retried, then bounced).
RESOLVE_TTL = 5.0
resolve_cache = AnswerCache()   # positive resolutions only


class MailPhase:
    # -- MAIL --------------------------------------------------------------------------------------
    async def on_mail(self, path: Path) -> None:
        if self.role == "submission" and self.auth_user is None:
            raise SmtpError(530, "5.7.0", "Authentication required")
        params = self._mail_params(path)
        sender = normalize(path.address) if path.address else ""
        if not params.get("smtputf8") and not sender.isascii():
            raise SmtpError(553, "5.6.7", "Non-ASCII address needs SMTPUTF8 (RFC 6531)")
        if self.auth_user is not None and self.role == "submission":
            # The user's own address needs no lookup (and no thread hop); others go to the directory.
            own = bool(sender) and sender.lower() == self.auth_user.lower()
            if not own and not await run_blocking(self._owns_address, sender):
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
                if value is None or not (value.isascii() and value.isdigit()):
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
        resolution = None if has_routing(local_part) else resolve_cache.get(self.ctx.directory, address)
        if resolution is not None:
            local_domain = True
        else:
            local_domain, resolution = await run_blocking(self._lookup, local_part, domain, address)
            if local_domain and resolution is not None and (resolution.local_users or resolution.external):
                resolve_cache.put(self.ctx.directory, address, resolution, RESOLVE_TTL)
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
