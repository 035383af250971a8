"""Reading an mbox file for ``pymail import-mbox``: one message at a time, never the whole file.

- A message starts at a ``From `` line at the start of the file or after an empty line (the
  "From_" line of RFC 4155); the empty line before the next ``From `` line is the separator and
  is not part of the message.
- ``>From `` quoting (mboxrd): one ``>`` is removed from lines matching ``^>+From ``.
- Flags: ``Status:`` R = \\Seen; ``X-Status:`` A = \\Answered, F = \\Flagged, T = \\Draft,
  D = \\Deleted; ``X-Keywords:`` keywords; Thunderbird's ``X-Mozilla-Status`` (read, replied,
  marked). Messages Thunderbird marked as expunged (0x0008, not yet compacted) are skipped.
  Those mbox bookkeeping headers (``Status``, ``X-Status``, ``X-Keywords``, ``X-UID``,
  ``X-IMAP``, ``X-IMAPbase``, ``Content-Length``) are removed from the stored message, as
  Dovecot hides them.
- Internal date: from the From_ line (``asctime`` format, taken as UTC), else the Date header.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import BinaryIO, Iterator

_QUOTED_FROM = re.compile(rb"^>+From ")
_HIDDEN = {b"status", b"x-status", b"x-keywords", b"x-uid", b"x-imap", b"x-imapbase", b"content-length"}
_X_STATUS = {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}
_MOZ_READ, _MOZ_REPLIED, _MOZ_MARKED, _MOZ_EXPUNGED = 0x1, 0x2, 0x4, 0x8


class MboxError(ValueError):
    pass


@dataclass
class MboxMessage:
    data: bytes
    flags: frozenset[str]
    internal_date: float | None
    expunged: bool = False


def read_mbox(fh: BinaryIO) -> Iterator[MboxMessage]:
    first = fh.readline()
    if not first.startswith(b"From "):
        if not first:
            return
        raise MboxError("not an mbox file (it does not start with a 'From ' line)")
    from_line, lines, blank_before = first, [], False
    for line in fh:
        if blank_before and line.startswith(b"From "):
            yield _message(from_line, lines[:-1])
            from_line, lines = line, []
            blank_before = False
            continue
        lines.append(line)
        blank_before = line in (b"\n", b"\r\n")
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    yield _message(from_line, lines)


def _message(from_line: bytes, lines: list[bytes]) -> MboxMessage:
    header_end = next((i for i, ln in enumerate(lines) if ln in (b"\n", b"\r\n")), len(lines))
    kept: list[bytes] = []
    fields: dict[bytes, bytes] = {}
    skipping = False
    for line in lines[:header_end]:
        if line[:1] in (b" ", b"\t"):  # folded continuation of the previous field
            if not skipping:
                kept.append(line)
            continue
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        fields.setdefault(key, value.strip())
        skipping = key in _HIDDEN
        if not skipping:
            kept.append(line)
    body = [_unquote(ln) for ln in lines[header_end:]]
    flags, expunged = _flags(fields)
    return MboxMessage(b"".join(kept + body), flags, _internal_date(from_line, fields.get(b"date")), expunged)


def _unquote(line: bytes) -> bytes:
    return line[1:] if _QUOTED_FROM.match(line) else line


def _flags(fields: dict[bytes, bytes]) -> tuple[frozenset[str], bool]:
    flags: set[str] = set()
    status = fields.get(b"status", b"").decode("ascii", "replace")
    if "R" in status:
        flags.add("\\Seen")
    for ch in fields.get(b"x-status", b"").decode("ascii", "replace"):
        if ch in _X_STATUS:
            flags.add(_X_STATUS[ch])
    for kw in re.split(r"[\s,]+", fields.get(b"x-keywords", b"").decode("ascii", "replace")):
        if kw and all(c.isalnum() or c in "$_-." for c in kw):
            flags.add(kw)
    expunged = False
    moz = fields.get(b"x-mozilla-status")
    if moz:
        try:
            bits = int(moz, 16)
        except ValueError:
            bits = 0
        flags.update(f for bit, f in ((_MOZ_READ, "\\Seen"), (_MOZ_REPLIED, "\\Answered"),
                                      (_MOZ_MARKED, "\\Flagged")) if bits & bit)
        expunged = bool(bits & _MOZ_EXPUNGED)
    return frozenset(flags), expunged


def _internal_date(from_line: bytes, date_header: bytes | None) -> float | None:
    text = from_line.decode("ascii", "replace").strip()
    # "From sender Wed Nov 25 10:00:00 2026" (asctime, RFC 4155); extra zone fields are ignored.
    match = re.search(r"([A-Z][a-z]{2}) +([A-Z][a-z]{2}) +(\d{1,2}) +(\d{1,2}:\d{2}(?::\d{2})?) +(?:\S+ +)?(\d{4})", text)
    if match:
        day, month, mday, clock, year = match.groups()
        if clock.count(":") == 1:
            clock += ":00"
        try:
            return float(calendar.timegm(time.strptime(f"{month} {mday} {clock} {year}", "%b %d %H:%M:%S %Y")))
        except ValueError:
            pass
    if date_header:
        try:
            return parsedate_to_datetime(date_header.decode("ascii", "replace")).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
    return None
