"""The events the SMTP core hands to the session, one per command or message step."""

from __future__ import annotations

from dataclasses import dataclass

from pymail.smtp.commands import Path


@dataclass(frozen=True)
class Helo:
    domain: str
    extended: bool  # EHLO or LHLO


@dataclass(frozen=True)
class Mail:
    path: Path


@dataclass(frozen=True)
class Rcpt:
    path: Path


@dataclass(frozen=True)
class Data:
    pass


@dataclass(frozen=True)
class Bdat:
    size: int
    last: bool


@dataclass(frozen=True)
class MessageChunk:
    data: bytes


@dataclass(frozen=True)
class MessageEnd:
    """DATA finished (CRLF.CRLF) or a BDAT chunk was fully read (``last`` tells which)."""
    bdat: bool = False
    last: bool = True


@dataclass(frozen=True)
class Rset:
    pass


@dataclass(frozen=True)
class StartTls:
    pass


@dataclass(frozen=True)
class Auth:
    mechanism: str
    initial: str | None


@dataclass(frozen=True)
class AuthLine:
    text: str  # a SASL response line (base64, or "*" to cancel)


@dataclass(frozen=True)
class Closed:
    """The core has sent its last reply (221/421); the connection should close."""
