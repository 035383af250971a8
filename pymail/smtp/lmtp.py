"""LMTP final delivery (RFC 2033 §4.2): deliver at once, one reply per accepted RCPT, in order.

An LMTP client (Postfix, Exim) keeps the message queued on its side until it gets our reply per
recipient, so pymail does not queue local recipients: it stores the message (through the same
``LocalDelivery`` hook as the queue runner) and answers 250, 4xx or 5xx for each recipient.
Recipients an alias forwards outside are queued here and count as accepted once queued.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

from pymail.queue import maillog
from pymail.queue.envelope import DELIVERED
from pymail.queue.errors import DeliveryFailure
from pymail.runtime import run_blocking
from pymail.smtp.errors import Reply


async def deliver_lmtp(queue, envelope, path, rcpt_addresses: list[str],
                       refused: set[str] = frozenset()) -> list[Reply]:
    """``refused``: recipients (lower-cased) whose own filter settings refuse the message."""
    return await run_blocking(_deliver, queue, envelope, path, rcpt_addresses, refused)


def _deliver(queue, envelope, path, rcpt_addresses: list[str], refused=frozenset()) -> list[Reply]:
    qid = envelope.queue_id
    try:
        forwarded = [r for r in envelope.recipients if not r.local and r.original.lower() not in refused]
        forward_error: Reply | None = None
        if forwarded:
            copy_id = queue.new_id()
            copy_path = queue.dir.tmp_path(copy_id)
            try:
                shutil.copyfile(path, copy_path)
                copy_env = dataclasses.replace(envelope, queue_id=copy_id, recipients=forwarded)
                queue.dir.commit(copy_env, copy_path)
                maillog.event(qid, f"forwarded copy queued as {copy_id}")
            except OSError as exc:
                maillog.event(qid, f"cannot queue forwarded copy: {exc}")
                forward_error = Reply(451, "4.3.0", "Local error queueing a forwarded copy")
        replies = []
        for address in rcpt_addresses:
            if address.lower() in refused:
                maillog.event(qid, f"to=<{address}>, relay=lmtp, status=bounced (refused by the recipient's filter settings)")
                replies.append(Reply(550, "5.7.1", f"<{address}> Message refused by the recipient's settings"))
                continue
            reply = Reply(250, "2.1.5", f"<{address}> delivered ({qid})")
            targets = [r for r in envelope.recipients if r.original == address]
            if forward_error is not None and any(not r.local for r in targets):
                reply = forward_error
            for r in (t for t in targets if t.local):
                try:
                    text = queue.local.deliver(envelope, r, path)
                    r.status = DELIVERED
                    maillog.event(qid, f"to=<{r.address}>, relay=lmtp, status=sent ({text})")
                except DeliveryFailure as exc:
                    code = 550 if exc.permanent else 452 if exc.status.startswith("4.2.2") else 451
                    maillog.event(qid, f"to=<{r.address}>, relay=lmtp, status="
                                       f"{'bounced' if exc.permanent else 'deferred'} ({exc.status} {exc.text})")
                    if reply.code == 250 or exc.permanent is False:
                        reply = Reply(code, exc.status, f"<{address}> {exc.text}")
                except Exception as exc:  # never a traceback to the client; the MTA retries
                    maillog.event(qid, f"to=<{r.address}>, relay=lmtp, status=deferred ({exc!r})")
                    reply = Reply(451, "4.3.0", f"<{address}> local delivery error")
            replies.append(reply)
        return replies
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
