"""The seam between the SMTP server and the filters: checks, verdicts, one reply type.

A check (clamd, spamd, ...) has one async method per SMTP phase; each returns a ``Verdict``.
The SMTP/LMTP server calls the ``Pipeline`` (``pymail.filters.pipeline``) once per phase and maps
the merged verdict to its reply with ``verdict.reply`` (``None`` means "go on"). Nothing here
touches sockets of the SMTP server or the queue.

All methods are asyncio coroutines; Twisted callers wrap them with
``Deferred.fromFuture(asyncio.ensure_future(...))`` or use ``Pipeline.deferred(...)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Action(enum.IntEnum):
    """What to do with the transaction. Larger wins when verdicts are merged."""

    ACCEPT = 0
    QUARANTINE = 1  # accept, deliver to the recipients' Junk folder
    TEMPFAIL = 2  # 4xx: try again later
    REJECT = 3  # 5xx: refused, nothing stored, nothing bounced


@dataclass(frozen=True)
class SmtpReply:
    """An SMTP reply: code, RFC 3463 enhanced status code and text."""

    code: int
    enhanced: str
    text: str

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    def line(self) -> str:
        """``"554 5.7.1 text"`` (one line; CR/LF from backends are stripped)."""
        text = " ".join(self.text.split())
        return f"{self.code} {self.enhanced} {text}"


# RFC 3463 §3.8 X.7.1: delivery not authorized, message refused (virus, spam, policy).
VIRUS_REPLY = SmtpReply(554, "5.7.1", "Message refused: virus found")
# RFC 3463 §3.8: 4.7.1 used as "try again later, a filter could not judge the message".
TEMPFAIL_REPLY = SmtpReply(451, "4.7.1", "Message filters are unavailable, try again later")


class FilterError(Exception):
    """The one error type of the filters layer; carries the SMTP reply it maps to.

    ``FilterError(reply).verdict()`` turns it into the verdict the pipeline merges.
    """

    def __init__(self, reply: SmtpReply, check: str = ""):
        super().__init__(reply.line())
        self.reply = reply
        self.check = check

    def verdict(self) -> "Verdict":
        action = Action.TEMPFAIL if self.reply.temporary else Action.REJECT
        return Verdict(action=action, reply=self.reply, check=self.check)


class BackendUnavailable(Exception):
    """A check's backend (clamd, spamd, DNS) could not be reached or answered nonsense.

    The pipeline applies that check's fail policy: tempfail (451 4.7.1) or accept and tag.
    """


@dataclass(frozen=True)
class SpamReport:
    """What spamd said about a message (bound to Sieve's spamtest)."""

    score: float
    threshold: float  # spamd's own required score
    is_spam: bool  # spamd's opinion at its own threshold
    symbols: tuple[str, ...] = ()


@dataclass
class RecipientDisposition:
    """Per-recipient outcome of a data-phase check (spam settings differ per user)."""

    folder: str = "INBOX"  # "INBOX" or "Junk"
    reject: bool = False  # this user refuses the message (honoured alone only by LMTP)
    reason: str = ""


@dataclass
class Verdict:
    """The result of one check (or of a merged phase)."""

    action: Action = Action.ACCEPT
    reply: SmtpReply | None = None  # set for REJECT and TEMPFAIL
    headers: list[tuple[str, str]] = field(default_factory=list)  # to prepend, in order
    remove_headers: list[str] = field(default_factory=list)  # incoming ones to drop (forgeries)
    recipients: dict[str, RecipientDisposition] = field(default_factory=dict)
    spam: SpamReport | None = None
    virus: str | None = None  # signature name when a virus was found
    check: str = ""  # which check decided (for logs)
    notes: list[str] = field(default_factory=list)  # log lines: skipped checks, fail policy used

    # Constructors that read like the outcome.
    @classmethod
    def accept(cls, headers: list[tuple[str, str]] | None = None, **kw: Any) -> "Verdict":
        return cls(Action.ACCEPT, headers=list(headers or []), **kw)

    @classmethod
    def reject(cls, code: int, enhanced: str, text: str, **kw: Any) -> "Verdict":
        return cls(Action.REJECT, reply=SmtpReply(code, enhanced, text), **kw)

    @classmethod
    def tempfail(cls, code: int = 451, enhanced: str = "4.7.1", text: str = TEMPFAIL_REPLY.text,
                 **kw: Any) -> "Verdict":
        return cls(Action.TEMPFAIL, reply=SmtpReply(code, enhanced, text), **kw)

    @classmethod
    def quarantine(cls, headers: list[tuple[str, str]] | None = None, **kw: Any) -> "Verdict":
        return cls(Action.QUARANTINE, headers=list(headers or []), **kw)

    @property
    def refused(self) -> bool:
        """True when the SMTP server must answer with ``reply`` instead of going on."""
        return self.action in (Action.REJECT, Action.TEMPFAIL)

    def folder_for(self, recipient: str) -> str:
        """The folder a recipient's copy goes to ("Junk" for quarantine)."""
        disposition = self.recipients.get(recipient.lower())
        if disposition is not None and (disposition.folder == "Junk" or disposition.reject):
            return "Junk"
        return "Junk" if self.action == Action.QUARANTINE else "INBOX"

    def header_bytes(self) -> bytes:
        """The headers to prepend, CRLF-terminated (RFC 5322 §2.2: folded lines stay valid)."""
        return b"".join(f"{name}: {value}\r\n".encode("utf-8") for name, value in self.headers)


@dataclass
class Session:
    """One SMTP connection as the checks see it."""

    remote_ip: str = ""
    remote_port: int = 0
    listener_role: str = "mx"  # "mx", "submission" or "lmtp"
    helo: str = ""
    tls: bool = False
    authenticated_user: str | None = None  # set after SMTP AUTH (submission)
    # What checks learnt in earlier phases (DNSBL hits at connect, SPF at MAIL FROM), for later
    # phases and other checks: pass the same Session object to every phase of a connection.
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Envelope:
    """One transaction: the session plus MAIL FROM and the accepted RCPT TOs."""

    session: Session
    mail_from: str  # "" for the null reverse-path <>
    rcpt_tos: list[str] = field(default_factory=list)


class Check:
    """Base class of every check. Override the phases you need; the others accept.

    A method returns a ``Verdict``, may raise ``FilterError`` (a reply), and raises
    ``BackendUnavailable`` when its backend is down (the pipeline then applies the fail policy).
    Checks never raise anything else on purpose; anything else is logged as a bug and treated as
    "backend unavailable".
    """

    name = "check"
    runs_for_authenticated = True  # False: skipped for authenticated submissions

    async def connect(self, session: Session) -> Verdict:
        return Verdict()

    async def helo(self, session: Session, hostname: str) -> Verdict:
        return Verdict()

    async def mail_from(self, session: Session, address: str) -> Verdict:
        return Verdict()

    async def rcpt(self, session: Session, address: str) -> Verdict:
        return Verdict()

    async def data(self, envelope: Envelope, message_path: str) -> Verdict:
        return Verdict()

    async def close(self) -> None:
        """Release connections or pools (called when the server stops)."""
