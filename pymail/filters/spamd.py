"""A SPAMC/1.5 client for spamd and the spam check built on it.

Protocol (spamd(8), SpamAssassin's ``spamd/PROTOCOL``): the client sends
``VERB SPAMC/1.5\\r\\n`` + headers (``Content-length``, ``User``) + blank line + the message; the
server answers ``SPAMD/1.1 0 EX_OK\\r\\n`` + headers (``Spam: True ; 15.2 / 5.0``,
``Content-length``) + blank line + a body (SYMBOLS: the rule names, PROCESS: the message).

The check scores the message once at end of DATA (``User:`` = the first recipient, so spamd's
per-user preferences apply to single-recipient mail, the common case), then judges it per
recipient with the settings in the directory (``pymail.filters.usersettings``):
allow list → never spam; block list → always spam; score >= the user's threshold → spam, then
the user's action: tag (INBOX), junk (Junk folder), or reject (at or above the user's reject
score). A site-wide reject score refuses the message at SMTP time unless a recipient allows the
sender. Spam is never silently discarded: it is refused (the sender learns it) or delivered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from typing import Any

from pymail.filters import backend, usersettings
from pymail.filters.api import (
    BackendUnavailable,
    Check,
    Envelope,
    RecipientDisposition,
    SpamReport,
    Verdict,
)

log = logging.getLogger("pymail.filters.spamd")

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024
SPAM_HEADERS = ["X-Spam-Flag", "X-Spam-Score", "X-Spam-Status", "X-Spam-Level", "X-Spam-Report",
                "X-Spam-Checker-Version"]
_STATUS = re.compile(rb"^SPAMD/(\d+\.\d+)\s+(\d+)\s+(.*)$")
_SPAM = re.compile(r"^\s*(True|False|Yes|No)\s*;\s*(-?[\d.]+)\s*/\s*(-?[\d.]+)\s*$", re.I)


class SpamdError(BackendUnavailable):
    """spamd answered with an error code or something that is not SPAMD/1.x."""


@dataclass
class SpamdResponse:
    code: int
    message: str
    headers: dict[str, str]
    body: bytes

    def report(self) -> SpamReport:
        m = _SPAM.match(self.headers.get("spam", ""))
        if not m:
            raise SpamdError(f"spamd: no Spam: header in the reply ({self.headers})")
        symbols = tuple(s.strip() for s in self.body.decode("ascii", "replace").split(",") if s.strip())
        return SpamReport(score=float(m.group(2)), threshold=float(m.group(3)),
                          is_spam=m.group(1).lower() in ("true", "yes"), symbols=symbols)


class SpamdClient:
    def __init__(self, address: str, connect_timeout: float = 5.0):
        backend.parse_address(address)
        self.address = address
        self.connect_timeout = connect_timeout

    async def request(self, verb: str, message_path: str | None = None, user: str = "",
                      data: bytes | None = None) -> SpamdResponse:
        reader, writer = await backend.connect(self.address, self.connect_timeout)
        try:
            head = [f"{verb} SPAMC/1.5"]
            if message_path is not None:
                size = await asyncio.to_thread(os.path.getsize, message_path)
            else:
                size = len(data or b"")
            if verb not in ("PING",):
                head.append(f"Content-length: {size}")
            if user:
                head.append(f"User: {_header_safe(user)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("utf-8"))
            if message_path is not None:
                async for block in backend.read_blocks(message_path):
                    writer.write(block)
                    await writer.drain()
            elif data:
                writer.write(data)
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            return await _read_response(reader)
        except (ConnectionError, OSError) as exc:
            raise BackendUnavailable(f"spamd connection failed: {exc}") from None
        finally:
            await backend.close_quietly(writer)

    async def ping(self) -> bool:
        response = await self.request("PING")
        return response.message.upper().startswith("PONG")

    async def check(self, message_path: str, user: str = "") -> SpamReport:
        return (await self.request("CHECK", message_path, user)).report()

    async def symbols(self, message_path: str, user: str = "") -> SpamReport:
        return (await self.request("SYMBOLS", message_path, user)).report()

    async def process(self, message_path: str, user: str = "") -> tuple[SpamReport, bytes]:
        """The score and the message as SpamAssassin rewrote it (headers added)."""
        response = await self.request("PROCESS", message_path, user)
        m = _SPAM.match(response.headers.get("spam", ""))
        if m is None:
            # PROCESS replies may omit "Spam:"; read it from the X-Spam-Status SpamAssassin added.
            return _report_from_message(response.body), response.body
        return SpamReport(float(m.group(2)), float(m.group(3)), m.group(1).lower() in ("true", "yes")), response.body


def _header_safe(value: str) -> str:
    return "".join(c for c in value if c.isprintable() and c not in "\r\n")[:320]


async def _read_response(reader: asyncio.StreamReader) -> SpamdResponse:
    try:
        status = await reader.readuntil(b"\r\n")
    except asyncio.IncompleteReadError:
        raise SpamdError("spamd closed the connection without answering") from None
    except asyncio.LimitOverrunError:
        raise SpamdError("spamd sent an over-long status line") from None
    m = _STATUS.match(status.rstrip(b"\r\n"))
    if not m:
        raise SpamdError(f"spamd: unexpected reply {status[:80]!r}")
    code, message = int(m.group(2)), m.group(3).decode("utf-8", "replace")
    headers: dict[str, str] = {}
    total = 0
    while True:
        try:
            line = await reader.readuntil(b"\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip() == b"":
                break  # PING's reply has no header block
            raise SpamdError("spamd reply was cut short") from None
        total += len(line)
        if total > MAX_HEADER_BYTES:
            raise SpamdError("spamd reply headers are too long")
        if line == b"\r\n":
            break
        name, _, value = line.decode("utf-8", "replace").partition(":")
        headers[name.strip().lower()] = value.strip()
    if code != 0:
        raise SpamdError(f"spamd error {code}: {message}")
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        if int(length) > MAX_BODY_BYTES:
            raise SpamdError("spamd reply body is too large")
        try:
            body = await reader.readexactly(int(length))
        except asyncio.IncompleteReadError:
            raise SpamdError("spamd reply body was cut short") from None
    else:
        body = await reader.read(MAX_BODY_BYTES)
    return SpamdResponse(code, message, headers, body)


def _report_from_message(message: bytes) -> SpamReport:
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace")
    m = re.search(r"^X-Spam-Status:\s*(Yes|No),\s*score=(-?[\d.]+)\s+required=(-?[\d.]+)", head, re.M | re.I)
    if not m:
        raise SpamdError("spamd PROCESS reply has no X-Spam-Status header")
    return SpamReport(float(m.group(2)), float(m.group(3)), m.group(1).lower() == "yes")


# -- judging -------------------------------------------------------------------------------------

def decide(settings: usersettings.SpamSettings, score: float | None, sender: str) -> RecipientDisposition:
    """One recipient's outcome for a message with this spamd score (None: not scored)."""
    if usersettings.sender_matches(settings.allow, sender):
        return RecipientDisposition("INBOX", False, "sender on allow list")
    blocked = usersettings.sender_matches(settings.block, sender)
    if not blocked and (score is None or score < settings.threshold):
        return RecipientDisposition("INBOX", False, "")
    reason = "sender on block list" if blocked else f"score {score:.1f} >= {settings.threshold:g}"
    if settings.action == "tag":
        return RecipientDisposition("INBOX", False, reason)
    if settings.action == "reject" and (blocked or score >= settings.reject_score):
        return RecipientDisposition("Junk", True, reason)
    return RecipientDisposition("Junk", False, reason)


def status_headers(report: SpamReport, threshold: float, flag: bool) -> list[tuple[str, str]]:
    """X-Spam-Flag / X-Spam-Score / X-Spam-Status, as SpamAssassin writes them."""
    tests = ",".join(report.symbols) or "none"
    score = report.score + 0.0  # no "-0.0"
    verdict = "Yes" if flag else "No"
    status = f"{verdict}, score={score:.1f} required={threshold:.1f} tests={tests}"
    return [("X-Spam-Flag", "YES" if flag else "NO"), ("X-Spam-Score", f"{score:.1f}"),
            ("X-Spam-Status", status)]


class SpamdCheck(Check):
    name = "spamd"
    runs_for_authenticated = False  # authenticated submissions skip inbound spam checks

    def __init__(self, client: SpamdClient, directory: Any = None, *, max_size: int = 512 * 1024,
                 site_threshold: float = 5.0, site_reject_score: float = 15.0, default_user: str = ""):
        self.client = client
        self.directory = directory
        self.max_size = max_size
        self.site_threshold = site_threshold
        self.site_reject_score = site_reject_score
        self.default_user = default_user
        self.dnsbl = None  # a DnsblCheck, linked by the registry: its listings add to the score

    def _settings(self, recipients: list[str]) -> dict[str, usersettings.SpamSettings]:
        out = {}
        for rcpt in recipients:
            if self.directory is None:
                out[rcpt] = usersettings.SpamSettings(self.site_threshold, "junk", self.site_reject_score)
            else:
                out[rcpt] = usersettings.load(self.directory, rcpt, self.site_threshold, self.site_reject_score)
        return out

    async def data(self, envelope: Envelope, message_path: str) -> Verdict:
        size = await asyncio.to_thread(os.path.getsize, message_path)
        if size > self.max_size:
            status = f"No, skipped (larger than {self.max_size} bytes)"
            return Verdict.accept([("X-Spam-Status", status)], remove_headers=list(SPAM_HEADERS))
        recipients = [r.lower() for r in dict.fromkeys(envelope.rcpt_tos)]
        user = recipients[0] if recipients else self.default_user
        if self.dnsbl is not None:
            lookup = asyncio.ensure_future(self.dnsbl.ensure(envelope.session))
        report = await self.client.symbols(message_path, user)
        if self.dnsbl is not None:
            try:
                await lookup
            except Exception as exc:  # DNS trouble: judge on content alone
                envelope.session.facts.setdefault("dnsbl_score", 0.0)
                log.warning("dnsbl lookup failed: %s", exc)
        # DNSBL listings of the client (pymail.filters.dnsbl) count with the content score.
        extra = float(envelope.session.facts.get("dnsbl_score") or 0.0)
        if extra:
            report = SpamReport(report.score + extra, report.threshold, report.is_spam,
                                report.symbols + ("PYMAIL_DNSBL",))
        settings = await asyncio.to_thread(self._settings, recipients)
        sender = envelope.mail_from
        dispositions = {r: decide(s, report.score, sender) for r, s in settings.items()}
        allowed = any(usersettings.sender_matches(s.allow, sender) for s in settings.values())
        if len(recipients) == 1:
            only = dispositions[recipients[0]]
            flag = bool(only.reason) and only.reason != "sender on allow list"
            threshold = settings[recipients[0]].threshold
        else:
            flag, threshold = report.score >= self.site_threshold, self.site_threshold
        headers = status_headers(report, threshold, flag)
        common = dict(headers=headers, remove_headers=list(SPAM_HEADERS), spam=report)
        if self.site_reject_score > 0 and report.score >= self.site_reject_score and not allowed:
            return Verdict.reject(550, "5.7.1", f"Message refused as spam (score {report.score:.1f})", **common)
        if recipients and all(d.reject for d in dispositions.values()):
            return Verdict.reject(550, "5.7.1", f"Message refused as spam by the recipient's settings "
                                  f"(score {report.score:.1f})", recipients=dispositions, **common)
        return Verdict.accept(recipients=dispositions, **common)
