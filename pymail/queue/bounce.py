"""Delivery status notifications (RFC 3464) for failed recipients.

A bounce goes to the envelope sender, from the null sender ``<>`` (RFC 5321 §4.5.5), so a
bounce is never bounced. No bounce is made when the sender is null, or when every failed
recipient asked for ``NOTIFY=NEVER`` or a NOTIFY list without FAILURE (RFC 3461 §4.1).
``RET=HDRS`` returns only the header; otherwise the whole message up to ``bounce_max_body`` bytes.
"""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

from pymail.queue.envelope import Envelope, Recipient


def wants_failure_notice(recipient: Recipient) -> bool:
    return not recipient.notify or "FAILURE" in recipient.notify


def _headers_only(raw: bytes) -> bytes:
    for sep in (b"\r\n\r\n", b"\n\n"):
        idx = raw.find(sep)
        if idx >= 0:
            return raw[: idx + len(sep)]
    return raw


def wants_success_notice(recipient: Recipient) -> bool:
    return "SUCCESS" in recipient.notify


def wants_delay_notice(recipient: Recipient) -> bool:
    """RFC 3461 §4.1: DELAY when asked for; with no NOTIFY the MTA may (Postfix does)."""
    return not recipient.notify or "DELAY" in recipient.notify


def build_bounce(envelope: Envelope, failed: list[Recipient], path: Path, hostname: str,
                 max_body: int, new_id: str) -> tuple[Envelope, bytes] | None:
    """The bounce's envelope and message, or None when no bounce is due."""
    return build_dsn(envelope, [r for r in failed if wants_failure_notice(r)], path, hostname,
                     max_body, new_id, "failed")


def build_dsn(envelope: Envelope, rcpts: list[Recipient], path: Path, hostname: str,
              max_body: int, new_id: str, action: str,
              retry_until: float = 0.0) -> tuple[Envelope, bytes] | None:
    """A DSN (RFC 3464) with ``action`` "failed", "delivered" or "relayed" for ``rcpts``.

    Success notices (RFC 3461 §4.3) carry only the returned header, never the whole message.
    """
    if not envelope.sender or envelope.is_bounce or not rcpts:
        return None
    failed = rcpts
    success = action in ("delivered", "relayed")
    delayed = action == "delayed"
    boundary = f"{new_id}/{hostname}"
    now = time.time()
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{envelope.sender}>",
        "Subject: " + ("Successful Mail Delivery Report" if success else
                       "Delayed Mail (still being retried)" if delayed else
                       "Undelivered Mail Returned to Sender"),
        f"Date: {email.utils.formatdate(now)}",
        f"Message-ID: <{new_id}@{hostname}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a MIME-encapsulated message.",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"This is the mail system at host {hostname}.",
        "",
        ("Your message was delivered to the recipients below, as you asked." if success else
         "Your message could not be delivered yet; the mail system keeps trying. "
         "You do not need to send it again." if delayed else
         "Your message could not be delivered to one or more recipients."),
        "",
    ]
    for r in failed:
        lines.append(f"<{r.original or r.address}>: {r.last_error or action}")
    lines += ["", f"--{boundary}", "Content-Type: message/delivery-status", ""]
    # RFC 3464 §2.2 per-message fields
    lines.append(f"Reporting-MTA: dns; {hostname}")
    if envelope.envid:
        lines.append(f"Original-Envelope-Id: {envelope.envid}")
    lines.append(f"Arrival-Date: {email.utils.formatdate(envelope.created)}")
    for r in failed:
        # RFC 3464 §2.3 per-recipient fields
        lines.append("")
        if r.orcpt:
            lines.append(f"Original-Recipient: {r.orcpt}")
        lines.append(f"Final-Recipient: rfc822; {r.address}")
        lines.append(f"Action: {action}")
        if success:
            code = "2.0.0"
        elif delayed:
            status = r.last_error.split(" ", 2)
            code = next((p for p in status if p.count(".") == 2 and p[0] == "4"), "4.0.0")
        else:
            status = r.last_error.split(" ", 2)
            code = next((p for p in status if p.count(".") == 2 and p[0] == "5"), "5.0.0")
        lines.append(f"Status: {code}")
        if r.remote_mta:
            lines.append(f"Remote-MTA: dns; {r.remote_mta}")
        if delayed:
            lines.append(f"Will-Retry-Until: {email.utils.formatdate(envelope.created + retry_until)}")
        if r.last_error and not success:
            lines.append(f"Diagnostic-Code: smtp; {r.last_error}")
    lines.append("")
    raw = path.read_bytes() if path.stat().st_size <= max_body else None
    if envelope.ret == "HDRS" or raw is None or success or delayed:
        if raw is None:
            with open(path, "rb") as f:
                raw = f.read(max_body)
        part = ["Content-Type: text/rfc822-headers", ""]
        body = _headers_only(raw)
    else:
        part = ["Content-Type: message/rfc822", ""]
        body = raw
    lines += [f"--{boundary}", *part]
    head = ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    message = head + body + tail
    bounce_env = Envelope(queue_id=new_id, sender="", created=now, is_bounce=True,
                          recipients=[Recipient(envelope.sender, False, envelope.sender)])
    return bounce_env, message
