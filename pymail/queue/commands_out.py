"""RFC 3461 DSN parameters for outbound MAIL and RCPT commands."""

from __future__ import annotations

from pymail.smtp.commands import encode_xtext


def dsn_mail_options(envelope) -> list[str]:
    out = []
    if envelope.ret:
        out.append(f"RET={envelope.ret}")
    if envelope.envid:
        out.append(f"ENVID={encode_xtext(envelope.envid)}")
    return out


def dsn_rcpt_options(recipient) -> list[str]:
    out = []
    if recipient.notify:
        out.append("NOTIFY=" + ",".join(recipient.notify))
    if recipient.orcpt:
        kind, _, addr = recipient.orcpt.partition(";")
        out.append(f"ORCPT={kind};{encode_xtext(addr)}")
    return out
