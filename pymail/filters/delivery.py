"""Local delivery with filters: per-user spam folder, site "before" Sieve script, the user's script.

``FilteringDelivery`` is the queue's ``LocalDelivery`` hook (pymail/queue/local.py) with the
filters plugged in; pymail-server builds the queue with it::

    delivery = FilteringDelivery(store, directory, config.filters, hostname)
    queue = make_queue(ctx, local_delivery=delivery)
    delivery.queue = queue          # for redirect and vacation replies

For each local recipient (blocking; the runner calls it from a thread):
1. The spam verdict the SMTP-time pipeline wrote (``X-Spam-Score``; forged copies were removed
   by ``pymail.filters.headers.rewrite``) is judged with the user's settings: Junk or INBOX
   becomes the folder of "keep".
2. The site "before" script runs, then the user's active script (skipped when the before script
   stops). A script error keeps the message in that folder and is logged.
3. The actions are carried out: keep/fileinto store (fsynced by the store), redirect and
   vacation go back into the queue, reject fails the recipient permanently (the queue's DSN tells
   the sender), discard stores nothing because the user's own script said so.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from pymail.filters import spamd, usersettings
from pymail.filters.pipeline import QUARANTINE_HEADER
from pymail.filters.settings import FilterSettings
from pymail.filters.sieve import (Discard, FileInto, Keep, Redirect, Reject, Result, SieveContext,
                                  SieveEnvelope, SieveError, Vacation, VacationStore, compile_script,
                                  run_scripts)
from pymail.filters.sieve.storage import ScriptStore
from pymail.queue.errors import PermanentFailure
from pymail.queue.local import LocalDelivery

log = logging.getLogger("pymail.filters.delivery")

MAX_SIEVE_BYTES = 32 * 1024 * 1024  # bigger messages skip Sieve (implicit keep): memory bound
HEAD_BYTES = 256 * 1024


def read_spam_score(head: bytes) -> float | None:
    """The topmost X-Spam-Score (the one pymail's pipeline prepended)."""
    m = re.search(rb"^X-Spam-Score:[ \t]*(-?[0-9]+(?:\.[0-9]+)?)[ \t]*\r?$", head, re.M | re.I)
    return float(m.group(1)) if m else None


def read_quarantine(head: bytes) -> bool:
    """True when the SMTP-time pipeline quarantined the message (e.g. DMARC p=quarantine)."""
    return re.search(rb"^" + QUARANTINE_HEADER.encode() + rb":", head, re.M | re.I) is not None


def read_virus_status(head: bytes) -> int:
    """RFC 5235 virustest: 1 when clamd found the message clean, 0 when not tested."""
    m = re.search(rb"^X-Virus-Scanned:[ \t]*clean", head, re.M | re.I)
    return 1 if m else 0


def _head(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    end = raw.find(b"\n\n") if end < 0 else end
    return raw if end < 0 else raw[:end + 1]


class FilteringDelivery(LocalDelivery):
    def __init__(self, store, directory, settings: FilterSettings | None = None,
                 hostname: str = "localhost", queue=None):
        super().__init__(store, directory)
        self.settings = settings or FilterSettings()
        self.hostname = hostname
        self.queue = queue
        self.before = []
        if self.settings.sieve_before:
            try:
                text = Path(self.settings.sieve_before).read_text("utf-8")
                self.before = [compile_script(text, self.settings.sieve_before)]
            except (OSError, UnicodeDecodeError, SieveError) as exc:
                # Never lose mail over a site script: log loudly and deliver without it.
                log.error("site sieve_before %s is unusable: %s", self.settings.sieve_before, exc)

    @classmethod
    def from_context(cls, ctx) -> "FilteringDelivery":
        """For pymail-server: ``make_queue(ctx, local_delivery=FilteringDelivery.from_context(ctx))``.

        Redirects and vacation replies go through ``ctx.queue`` (looked up when needed, so the
        queue may be made after this object).
        """
        delivery = cls(ctx.store, ctx.directory, ctx.config.filters, ctx.hostname)
        delivery._ctx = ctx
        return delivery

    def _queue(self):
        if self.queue is None and getattr(self, "_ctx", None) is not None:
            self.queue = self._ctx.queue
        return self.queue

    # -- deciding ----------------------------------------------------------------------------
    def plan(self, envelope, recipient, raw: bytes, size: int | None = None) -> Result:
        address = recipient.address
        head = _head(raw)
        score = read_spam_score(head)
        s = self.settings
        prefs = (usersettings.load(self.directory, address, s.spam_threshold, s.spam_reject_score)
                 if self.directory is not None else usersettings.SpamSettings(s.spam_threshold))
        disposition = spamd.decide(prefs, score, envelope.sender)
        if read_quarantine(head) and not usersettings.sender_matches(prefs.allow, envelope.sender):
            disposition.folder = "Junk"
        account = self.account(address)
        existing: set[str] = set()

        def mailbox_exists(name: str) -> bool:
            # listed only when a script asks (fileinto :create / mailboxexists, RFC 5490)
            if name.upper() == "INBOX":
                return True
            if not existing:
                try:
                    existing.update(m.name for m in account.list_mailboxes())
                except Exception:  # a missing maildir: it is created at first store
                    existing.add("INBOX")
            return name in existing
        scripts = ScriptStore.for_maildir(account.root)
        user_script = scripts.active_script()
        context = SieveContext(
            user=address,
            user_addresses=[a for a in (recipient.original,) if a],
            default_mailbox=disposition.folder,
            mailbox_exists=mailbox_exists,
            spam_score=score,
            spam_threshold=prefs.threshold,
            virus_status=read_virus_status(head),
            vacation_store=VacationStore(scripts.dir / ".vacation.json"),
            vacation_min_days=s.vacation_min_days,
            vacation_max_days=s.vacation_max_days,
            max_redirects=s.sieve_max_redirects,
        )
        sieve_envelope = SieveEnvelope(envelope.sender, recipient.original or address)
        if (size if size is not None else len(raw)) > MAX_SIEVE_BYTES:
            log.warning("%s: message of %d bytes skips Sieve", address, size)
            return Result([Keep(disposition.folder, implicit=True)])
        result = run_scripts(self.before, user_script, raw, sieve_envelope, context)
        for error in result.errors:
            log.error("sieve for %s: %s (message kept)", address, error)
        return result

    # -- doing -------------------------------------------------------------------------------
    def deliver(self, envelope, recipient, path: Path) -> str:
        size = os.path.getsize(path)
        if size > MAX_SIEVE_BYTES:
            with open(path, "rb") as f:
                raw = _head(f.read(HEAD_BYTES))  # only the spam headers are needed
        else:
            raw = Path(path).read_bytes()
        result = self.plan(envelope, recipient, raw, size)
        done: list[str] = []
        reject: Reject | None = None
        for action in result.actions:
            if isinstance(action, (Keep, FileInto)):
                done.append(self._store(envelope, recipient, path, action))
            elif isinstance(action, Redirect):
                done.append(self._redirect(envelope, recipient, path, raw, action))
            elif isinstance(action, Vacation):
                done.append(self._vacation(recipient, action))
            elif isinstance(action, Reject):
                reject = action
            elif isinstance(action, Discard):
                done.append("discarded by the user's Sieve script")
        if reject is not None:
            # RFC 5429 §2.1: after acceptance, refusal is a non-delivery report to the sender.
            raise PermanentFailure(f"refused by the recipient's filter: {reject.reason}", "5.7.1")
        return "; ".join(done)

    def _store(self, envelope, recipient, path: Path, action) -> str:
        mailbox = action.mailbox
        if mailbox.upper() == "INBOX":
            mailbox = "INBOX"
        else:
            account = self.account(recipient.address)
            names = self._mailboxes(account)
            if mailbox not in names:
                if (isinstance(action, FileInto) and action.create) or mailbox == "Junk":
                    account.ensure()
                    if mailbox not in self._mailboxes(account):
                        account.create_mailbox(mailbox)
                else:
                    log.warning("%s: fileinto %r: no such folder, kept in INBOX", recipient.address, mailbox)
                    mailbox = "INBOX"
        return self.store_message(envelope, recipient, path, mailbox, action.flags)

    @staticmethod
    def _mailboxes(account) -> set[str]:
        try:
            return {m.name for m in account.list_mailboxes()}
        except Exception:
            return set()

    def _enqueue(self, sender: str, to: str, message: bytes) -> str:
        from pymail.queue.envelope import Envelope

        queue = self._queue()
        if queue is None:
            raise RuntimeError("no queue to send through")
        recipients = queue.route(to)
        if not recipients:
            return f"no route to {to}"
        envelope = Envelope(queue_id=queue.new_id(), sender=sender, recipients=recipients,
                            created=time.time(), size=len(message))
        queue.dir.enqueue_bytes(envelope, message)
        return f"queued as {envelope.queue_id}"

    def _redirect(self, envelope, recipient, path, raw: bytes, action: Redirect) -> str:
        marker = f"Delivered-To: {recipient.address}".lower().encode()
        if marker in _head(raw).lower():
            # Loop (it came back through this user): keep it instead of bouncing it around.
            log.warning("%s: redirect loop to %s, kept in INBOX", recipient.address, action.address)
            return self.store_message(envelope, recipient, path, "INBOX", ())
        message = f"Delivered-To: {recipient.address}\r\n".encode() + raw
        try:
            return f"redirected to {action.address} ({self._enqueue(envelope.sender, action.address, message)})"
        except (RuntimeError, OSError) as exc:
            log.error("%s: redirect to %s failed (%s), kept in INBOX", recipient.address, action.address, exc)
            return self.store_message(envelope, recipient, path, "INBOX", ())

    def _vacation(self, recipient, action: Vacation) -> str:
        try:
            # RFC 5230 §5.1: the reply goes out with the null reverse-path.
            return f"vacation reply to {action.to} ({self._enqueue('', action.to, action.build(self.hostname))})"
        except (RuntimeError, OSError) as exc:
            log.error("%s: vacation reply to %s not sent: %s", recipient.address, action.to, exc)
            return "vacation reply not sent"

