"""APPEND (RFC 3501 §6.3.11) with UIDPLUS APPENDUID (RFC 4315), MULTIAPPEND (RFC 3502),
CATENATE (RFC 4469), BINARY literal8 (RFC 3516), UTF8 (RFC 6855) and APPENDLIMIT (RFC 7889)."""

from __future__ import annotations

import base64
import calendar
import re

from pymail.imap import catenate, mime
from pymail.imap.commands.mailbox import mailbox_name, open_destination, parse_flags
from pymail.imap.parser import Atom, Literal8Bytes, LiteralBytes
from pymail.imap.sequence import ordered_compress
from pymail.imap.session import AUTHED, ImapError, bad, command


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_DATE_TIME = re.compile(r"([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)\Z")


def parse_date_time(value: bytes) -> float:
    m = _DATE_TIME.match(value.decode("ascii", "replace"))
    if m is None or m.group(2).capitalize() not in MONTHS:
        raise bad("Bad date-time")
    day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    try:
        t = calendar.timegm((int(year), MONTHS.index(mon.capitalize()) + 1, int(day), int(hh), int(mm),
                             int(ss), 0, 0, 0))
    except (ValueError, OverflowError):
        raise bad("Bad date-time") from None
    offset = (int(zh) * 3600 + int(zm) * 60) * (1 if sign == "+" else -1)
    return float(t - offset)


def _append_items(session, args: list) -> list[tuple[list[str], float | None, bytes]]:
    """``[flags] [date-time] literal`` repeated (RFC 3502 MULTIAPPEND)."""
    items = []
    i = 0
    while i < len(args):
        flags: list[str] = []
        date = None
        if isinstance(args[i], list):
            flags = parse_flags(args[i])
            i += 1
        if i < len(args) and isinstance(args[i], bytes) and not isinstance(args[i], LiteralBytes):
            date = parse_date_time(args[i])
            i += 1
        if i + 1 < len(args) and isinstance(args[i], Atom) and args[i].upper() == "UTF8":
            # RFC 6855 §4: APPEND ... UTF8 (~{n}...) once UTF8=ACCEPT is enabled
            if not session.utf8:
                raise bad("UTF8 APPEND needs ENABLE UTF8=ACCEPT")
            inner = args[i + 1]
            if not isinstance(inner, list) or len(inner) != 1 or not isinstance(inner[0], Literal8Bytes):
                raise bad("UTF8 takes one literal8 in parentheses")
            args = args[:i] + [LiteralBytes(inner[0])] + args[i + 2:]
        if i + 1 < len(args) and isinstance(args[i], Atom) and args[i].upper() == "CATENATE":
            items.append((flags, date, _catenate_parts(args[i + 1])))
            i += 2
            continue
        if i >= len(args) or not isinstance(args[i], LiteralBytes):
            raise bad("APPEND needs a message literal")
        message = bytes(args[i])
        if isinstance(args[i], Literal8Bytes) and b"\0" in message:
            message = _encode_binary(message)
        i += 1
        if len(message) > session.settings.max_literal_size:
            raise ImapError("Message too large", "TOOBIG")
        if not message:
            raise bad("Empty message")
        items.append((flags, date, message))
    if not items:
        raise bad("APPEND needs a message literal")
    return items


def _catenate_parts(value) -> list[tuple[str, bytes]]:
    """``(TEXT literal URL "url" ...)`` of RFC 4469 §5."""
    if not isinstance(value, list) or not value or len(value) % 2:
        raise bad("CATENATE needs (TEXT literal / URL url ...)")
    parts = []
    for kind, v in zip(value[::2], value[1::2]):
        kind = str(kind).upper() if isinstance(kind, Atom) else ""
        if kind == "TEXT" and isinstance(v, LiteralBytes):
            parts.append(("TEXT", bytes(v)))
        elif kind == "URL" and isinstance(v, bytes):
            parts.append(("URL", bytes(v)))
        else:
            raise bad("CATENATE parts are TEXT literal or URL string")
    return parts


def _encode_binary(message: bytes) -> bytes:
    """A ``~{n}`` APPEND with NULs (RFC 3516 §4.1): a single-part body is stored base64
    encoded so BODY[] stays a valid literal; BINARY[] gives the octets back."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        raise ImapError("Message has no header/body separator", "CANNOT")
    header, body = message[:end + 2], message[end + 4:]
    head = mime.parse_message(header + b"\r\n")
    if head.ctype in ("multipart", "message"):
        raise ImapError("Binary content is only accepted in single-part messages", "CANNOT")
    header = re.sub(rb"(?im)^Content-Transfer-Encoding:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*", b"", header)
    encoded = base64.encodebytes(body).replace(b"\n", b"\r\n")
    return header + b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded


@command("APPEND", states=AUTHED)
async def append(session, cmd):
    args = list(cmd.args)
    if len(args) < 2:
        raise bad("APPEND needs a mailbox name and a message")
    name = mailbox_name(session, args.pop(0))
    items = _append_items(session, args)
    account = session.account

    def do_append():
        with open_destination(account, name) as mb:
            uids = []
            try:
                for flags, date, message in items:
                    if isinstance(message, list):  # CATENATE parts
                        message = catenate.assemble(account, message, session.settings.max_literal_size)
                    uids.append(mb.append(message, flags=tuple(flags), internal_date=date))
            except BaseException:
                # RFC 3502 §6.3.11: all or none; take back what this command appended
                if uids:
                    mb.store_flags(uids, ["\\Deleted"], "add")
                    mb.expunge(uids)
                raise
            return mb.uidvalidity, uids

    uidvalidity, uids = await session.blocking(do_append)
    return f"[APPENDUID {uidvalidity} {ordered_compress(uids)}] APPEND completed"
