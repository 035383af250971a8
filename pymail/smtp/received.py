"""The Received trace header (RFC 5321 §4.4) with the RFC 3848 protocol type."""

from __future__ import annotations

import email.utils


def protocol_name(lmtp: bool, extended: bool, tls: bool, authenticated: bool,
                  utf8: bool = False) -> str:
    """RFC 3848: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA, LMTP, LMTPS, LMTPA, LMTPSA; with SMTPUTF8
    RFC 6531 §3.7.3: UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA (UTF8LMTP... for LMTP)."""
    if not extended and not lmtp:
        return "SMTP"
    base = ("UTF8LMTP" if utf8 else "LMTP") if lmtp else ("UTF8SMTP" if utf8 else "ESMTP")
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received_header(*, helo: str, peer_ip: str, hostname: str, protocol: str, queue_id: str,
                    tls_info: str = "", auth_user: str | None = None, recipient: str | None = None,
                    hide_client: bool = False, now: float | None = None) -> bytes:
    lines = []
    if not hide_client:
        lines.append(f"from {_clean(helo)} ([{peer_ip}])")
    lines.append(f"by {hostname} (pymail) with {protocol} id {queue_id}")
    if tls_info:
        lines.append(f"({tls_info})")
    if auth_user:
        lines.append(f"(Authenticated sender: {_clean(auth_user)})")
    if recipient:
        lines.append(f"for <{_clean(recipient)}>")
    date = email.utils.formatdate(now, localtime=False)
    lines[-1] += f"; {date}"
    return ("Received: " + "\r\n\t".join(lines) + "\r\n").encode("utf-8", "replace")


def _clean(text: str) -> str:
    return "".join(c for c in text if c.isprintable() and c not in "()<>;")[:200]
