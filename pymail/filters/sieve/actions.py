"""What a Sieve script asks the delivery step to do (RFC 5228 §4, RFC 5230, RFC 5429)."""

from __future__ import annotations

import email.utils
import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Keep:
    """Store in the user's default folder (INBOX, or Junk when spam settings say so)."""

    mailbox: str = "INBOX"
    flags: tuple[str, ...] = ()
    implicit: bool = False


@dataclass(frozen=True)
class FileInto:
    mailbox: str
    flags: tuple[str, ...] = ()
    create: bool = False  # RFC 5490 §3.2 :create: make the folder when missing


@dataclass(frozen=True)
class Redirect:
    address: str


@dataclass(frozen=True)
class Reject:
    """Refuse the message (RFC 5429): by SMTP/LMTP reply when still possible, else by an MDN/DSN."""

    reason: str
    extended: bool = False  # ereject: refuse at protocol level only


@dataclass(frozen=True)
class Discard:
    """Silently drop (RFC 5228 §4.5): only ever done when the user's own script says so."""


@dataclass(frozen=True)
class Vacation:
    """An auto-reply (RFC 5230) already judged allowed (not a list, not <>, not sent recently)."""

    to: str  # the envelope sender being answered
    sender: str  # our From address
    subject: str
    reason: str
    mime: bool = False
    in_reply_to: str = ""
    references: str = ""
    handle: str = ""

    def build(self, hostname: str = "localhost") -> bytes:
        """The reply message; send it with a null reverse-path <> (RFC 5230 §5.1)."""
        headers = [
            ("From", self.sender),
            ("To", self.to),
            ("Subject", self.subject),
            ("Date", email.utils.formatdate(localtime=True)),
            ("Message-ID", email.utils.make_msgid(domain=hostname)),
            ("Auto-Submitted", "auto-replied (vacation)"),  # RFC 3834 §5
            ("MIME-Version", "1.0"),
        ]
        if self.in_reply_to:
            headers += [("In-Reply-To", self.in_reply_to),
                        ("References", (self.references + " " + self.in_reply_to).strip())]
        text = "".join(f"{k}: {_header_safe(v)}\r\n" for k, v in headers)
        if self.mime:
            # :mime: the reason is a MIME entity with its own headers (RFC 5230 §4.4).
            body = self.reason.replace("\r\n", "\n").replace("\n", "\r\n")
            return (text + body).encode("utf-8")
        body = self.reason.replace("\r\n", "\n").replace("\n", "\r\n")
        text += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        return (text + body).encode("utf-8")


def _header_safe(value: str) -> str:
    return " ".join(value.split())


def default_handle(reason: str, subject: str, sender: str, mime: bool) -> str:
    """RFC 5230 §4.2: without :handle, replies with the same arguments share one handle."""
    return hashlib.sha256(f"{reason}\0{subject}\0{sender}\0{mime}".encode()).hexdigest()[:32]


@dataclass
class Result:
    """The outcome of running the script(s) for one recipient."""

    actions: list = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors
