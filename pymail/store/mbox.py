"""Reading an mbox file for ``pymail import-mbox`` (Account.import_mbox).

Messages start at lines beginning ``From `` (the mbox separator); ``>From `` quoting is undone
one level (mboxrd; harmless for mboxo files).  The separator's asctime date becomes the
internal date.  ``Status:`` (R → \\Seen) and ``X-Status:`` (A → \\Answered, F → \\Flagged,
T → \\Draft, D → \\Deleted) headers, as written by mutt, Pine and Dovecot's mbox driver, become
flags; so do the keywords of ``X-Keywords:`` (Dovecot's mbox driver, mutt) and ``X-Mozilla-Keys:``
(Thunderbird), separated by spaces or commas — a word that is not a valid IMAP keyword (RFC 3501
§9 ``flag-keyword``: an atom) is skipped.  Each message is yielded as bytes; only one message is
held in memory at a time.
"""

from __future__ import annotations

import calendar
import re
import time

from pymail.store import keywords as kw
from pymail.store import parse

_QUOTED_FROM = re.compile(rb"^>(>*From )")
_STATUS = {"R": "\\Seen"}
_XSTATUS = {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}
_KEYWORD_HEADERS = (b"x-keywords", b"x-mozilla-keys")


def iter_mbox(path: str):
    """Yield (raw message bytes, flags, internal date or None)."""
    current: list[bytes] | None = None
    date = None
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(b"From "):
                if current is not None:
                    yield _finish(current, date)
                current = []
                date = _from_line_date(line)
                continue
            if current is None:
                continue                    # text before the first separator is not mail
            current.append(_QUOTED_FROM.sub(rb"\1", line))
    if current is not None:
        yield _finish(current, date)


def _finish(lines: list[bytes], date):
    # The blank line before the next "From " belongs to the separator.
    if lines and lines[-1] in (b"\n", b"\r\n"):
        lines = lines[:-1]
    raw = b"".join(lines)
    header, _ = parse.split_message(raw)
    h = parse.header_map(header)
    flags = set()
    for ch in h.get(b"status", b"").decode("ascii", "ignore"):
        if ch in _STATUS:
            flags.add(_STATUS[ch])
    for ch in h.get(b"x-status", b"").decode("ascii", "ignore"):
        if ch in _XSTATUS:
            flags.add(_XSTATUS[ch])
    for name in _KEYWORD_HEADERS:
        words = h.get(name, b"").decode("ascii", "ignore").replace(",", " ").split()
        flags.update(filter(kw.is_valid, words))   # not "\\Seen": "\\" is no atom char
    return raw, frozenset(flags), date


def _from_line_date(line: bytes) -> float | None:
    # "From sender Sat Jan  3 01:05:34 1996" — the date is the last five words.
    words = line.decode("ascii", "replace").split()
    if len(words) < 7:
        return None
    try:
        return float(calendar.timegm(time.strptime(" ".join(words[-5:]), "%a %b %d %H:%M:%S %Y")))
    except ValueError:
        return None
