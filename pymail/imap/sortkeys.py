"""What SORT and THREAD compare (RFC 5256, RFC 5957): base subjects, sent dates, addresses.

Pure functions over a message's header bytes; the header comes from the store's parse cache.
"""

from __future__ import annotations

import email.header
import email.utils
import re
from dataclasses import dataclass

from pymail.imap import mime

HEADER_NAMES = ["Subject", "Date", "From", "To", "Cc", "Message-ID", "References", "In-Reply-To"]

_WS = re.compile(r"\s+")
_TRAILER = re.compile(r"(?:\s*\(fwd\)|\s+)\Z", re.I)
_BLOB = r"\[[^\[\]]*\]\s*"
_REFWD = re.compile(r"(?:re|fwd?)\s*(?:" + _BLOB + r")?:", re.I)
_LEADING_BLOB = re.compile(_BLOB)


def decode_words(raw: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(raw)))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        return raw


def base_subject(raw: str | None) -> str:
    """RFC 5256 §2.1 base subject, upper-cased for i;ascii-casemap comparison."""
    return extract_subject(raw)[0]


def extract_subject(raw: str | None) -> tuple[str, bool]:
    """(base subject, whether a reply/forward marker was removed) — RFC 5256 §2.1."""
    if not raw:
        return "", False
    s = _WS.sub(" ", decode_words(raw)).strip()
    reply = False
    while True:
        before = s
        # (2) remove trailing "(fwd)" and white space
        while True:
            t = _TRAILER.sub("", s)
            if t == s:
                break
            reply = reply or t.rstrip() != s.rstrip()
            s = t
        # (3)/(4) remove leading subj-leader (blobs and re/fw/fwd:) repeatedly
        while True:
            t = s.lstrip()
            m = _REFWD.match(t)
            if m:
                t = t[m.end():]
                reply = True
            else:
                b = _LEADING_BLOB.match(t)
                if b and t[b.end():].strip():
                    t = t[b.end():]
            if t == s:
                break
            s = t
        # (6) "[fwd: ...]"
        if s.upper().startswith("[FWD:") and s.endswith("]"):
            s = s[5:-1]
            reply = True
            continue
        if s == before:
            break
    return s.strip().upper(), reply


def sent_time(date_value: str | None, internal: float) -> float:
    """The Date header as unix time; the internal date when missing or unparsable (§2.2)."""
    if date_value:
        try:
            return email.utils.parsedate_to_datetime(date_value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return internal


def _first_address(value: bytes | None):
    addrs = [a for a in (mime.address_list(value) or []) if a[2] is not None or a[3] is not None]
    return addrs[0] if addrs else None


def address_key(value: bytes | None) -> str:
    """SORT FROM/TO/CC: the first address's mailbox (local part), RFC 5256 §3."""
    a = _first_address(value)
    if a is None or a[2] is None:
        return ""
    return a[2].decode("utf-8", "replace").upper()


def display_key(value: bytes | None) -> str:
    """SORT DISPLAYFROM/DISPLAYTO: the display name, else the address (RFC 5957 §4)."""
    a = _first_address(value)
    if a is None:
        return ""
    if a[0]:
        return decode_words(a[0].decode("utf-8", "replace")).upper()
    mailbox = (a[2] or b"").decode("utf-8", "replace")
    host = (a[3] or b"").decode("utf-8", "replace")
    return f"{mailbox}@{host}".upper() if host else mailbox.upper()


@dataclass
class Info:
    seq: int
    uid: int
    size: int
    internal: float
    header: mime.Part

    def value(self, name: str) -> bytes | None:
        return self.header.header(name)

    def text(self, name: str) -> str | None:
        v = self.value(name)
        return None if v is None else v.decode("utf-8", "surrogateescape")


def info_for(seq: int, uid: int, record, header: bytes) -> Info:
    data = mime.to_crlf(header)
    return Info(seq, uid, record.size, record.internal_date, mime.parse_part(data, 0, len(data)))


def sort_key(info: Info, criterion: str):
    if criterion == "ARRIVAL":
        return info.internal
    if criterion == "DATE":
        return sent_time(info.text("date"), info.internal)
    if criterion == "SIZE":
        return info.size
    if criterion == "SUBJECT":
        return base_subject(info.text("subject"))
    if criterion in ("FROM", "TO", "CC"):
        return address_key(info.value(criterion.lower()))
    if criterion in ("DISPLAYFROM", "DISPLAYTO"):
        return display_key(info.value(criterion[7:].lower()))
    raise ValueError(criterion)
