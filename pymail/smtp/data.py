"""DATA and BDAT for the SMTP session: spooling, size and loop limits, filters, queueing.

The message streams into its spool file (``pymail.queue.writer``) with our Received header
first; at the end it is checked (size, hop count, filters) and handed to the queue, which makes
it durable before the 250 (or, in LMTP, stored at once with one reply per recipient).
"""

from __future__ import annotations

import logging
import os
import time

from pymail.queue import maillog
from pymail.queue.envelope import Envelope
from pymail.runtime import run_blocking
from pymail.smtp import core as ev
from pymail.smtp.errors import Reply, SmtpError
from pymail.smtp.lmtp import deliver_lmtp
from pymail.smtp.received import protocol_name, received_header
from pymail.smtp.transaction import Transaction

log = logging.getLogger("pymail.smtp.session")


class DataPhase:
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
            protocol=protocol_name(self.lmtp, self.core.extended, self.secure, self.auth_user is not None,
                                   bool(txn.params.get("smtputf8"))),
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
        envelope = Envelope(
            queue_id=txn.queue_id, sender=txn.sender, recipients=txn.recipients, created=time.time(),
            size=txn.writer.size, body=txn.params.get("body", ""),
            smtputf8=bool(txn.params.get("smtputf8")), ret=txn.params.get("ret", ""),
            envid=txn.params.get("envid", ""), helo=self.helo, client_ip=self.peer_ip,
            auth_user=self.auth_user or "")
        if self.filters is None and not self.lmtp:
            # Nothing reads the message before it is queued: finish the spool file and commit
            # it (fsyncs) in one thread hop.
            try:
                await self.queue.accept_writer(envelope, txn.writer)
            except OSError as exc:
                log.error("%s: cannot queue: %s", txn.queue_id, exc)
                self._finish([Reply(451, "4.3.0", "Local error in queueing, try again later")], txn)
                return
            self._finish([Reply(250, "2.0.0", f"Ok: queued as {txn.queue_id}")], txn)
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
            envelope.size = txn.writer.size  # header changes by the filters are in the file
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


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
