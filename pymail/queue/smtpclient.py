"""The outbound SMTP client: stdlib smtplib plus streamed DATA and a few careful helpers.

smtplib is a complete, well-tested client and delivery already runs in a worker thread, so there
is no need for an asynchronous one. DATA is streamed from the spool file, never loaded.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from pathlib import Path

from pymail.queue.envelope import FAILED
from pymail.smtp.commands import encode_xtext


class SmtpClient(smtplib.SMTP):
    def send_file_data(self, path: Path) -> tuple[int, bytes]:
        """DATA with the body streamed from ``path`` (RFC 5321 §4.5.2).

        Every line end (CRLF, bare LF, bare CR) goes out as CRLF and each line is dot-stuffed
        after that, so no byte sequence a client smuggled into a message can end our DATA early
        at the next server (SMTP smuggling).
        """
        code, msg = self.docmd("data")
        if code != 354:
            return code, msg
        with open(path, "rb") as f:
            batch: list[bytes] = []
            size = 0
            for raw in f:
                content = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
                for line in content.split(b"\r"):
                    if line.startswith(b"."):
                        line = b"." + line
                    batch.append(line + b"\r\n")
                    size += len(line) + 2
                if size >= 64 * 1024:
                    self.send(b"".join(batch))
                    batch, size = [], 0
            batch.append(b".\r\n")
            self.send(b"".join(batch))
        return self.getreply()


class ImplicitTlsClient(smtplib.SMTP_SSL, SmtpClient):
    pass


def opportunistic_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def fail_recipient(r, exc, log) -> None:
    r.last_error = f"{exc.status} {exc.text}" if exc.status and not exc.text.startswith(exc.status[:1]) else exc.text
    r.remote_mta = exc.remote_mta or r.remote_mta
    if exc.permanent:
        r.status = FAILED
        log(r, "bounced", f"relay={exc.remote_mta or 'none'}", r.last_error)
    else:
        log(r, "deferred", f"relay={exc.remote_mta or 'none'}", r.last_error)


def reply_text(code: int, msg: bytes) -> str:
    return f"{code} {msg.decode('utf-8', 'replace')}".replace("\n", " ")


def status_of(code: int, msg: bytes) -> str:
    text = msg.decode("ascii", "replace")
    first = text.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and first[0] == str(code)[0]:
        return first
    return f"{str(code)[0]}.0.0"


def why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


def quietly_rset(client) -> None:
    try:
        client.rset()
    except (OSError, smtplib.SMTPException):
        pass


def quietly_quit(client) -> None:
    try:
        if client.sock is not None:
            client.sock.settimeout(2.0)  # a polite QUIT, but never a long wait for it
        client.quit()
    except (OSError, smtplib.SMTPException):
        quietly_close(client)


def quietly_close(client) -> None:
    try:
        client.close()
    except OSError:
        pass


# -- RFC 3461 DSN parameters for outbound MAIL and RCPT ----------------------------------------

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
