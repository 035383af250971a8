"""CATENATE (RFC 4469): an APPENDed message assembled from text parts and IMAP URLs.

Only relative URLs into the user's own mailboxes are honoured (RFC 5092 ``/mailbox
[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]``); anything else is ``NO [BADURL]``.
Runs in a thread (it reads messages from the store).
"""

from __future__ import annotations

import re
import urllib.parse

from pymail.imap import mime, utf7
from pymail.imap.fetchspec import parse_section
from pymail.imap.parser import ParseError
from pymail.imap.session import ImapError

_URL = re.compile(r"/(?P<mailbox>[^;/][^;]*?)(?:;UIDVALIDITY=(?P<uidvalidity>\d+))?"
                  r"/;UID=(?P<uid>\d+)(?:/;SECTION=(?P<section>[^/]*))?"
                  r"(?:/;PARTIAL=(?P<origin>\d+)(?:\.(?P<length>\d+))?)?\Z", re.I)


class BadUrl(ImapError):
    def __init__(self, url: str, why: str):
        super().__init__(f"Bad URL: {why}", f"BADURL {url}")


def resolve(account, url: str) -> bytes:
    """The octets an IMAP URL names in the user's own mailboxes."""
    from pymail.store.errors import StoreError

    m = _URL.match(url)
    if m is None:
        raise BadUrl(url, "only /mailbox/;UID=n[/;SECTION=s][/;PARTIAL=o.l] URLs are accepted")
    try:
        name = utf7.decode(urllib.parse.unquote(m.group("mailbox")))
    except utf7.NameError_:
        raise BadUrl(url, "bad mailbox name") from None
    if name.upper() == "INBOX":
        name = "INBOX"
    try:
        with account.mailbox(name) as mb:
            if m.group("uidvalidity") and int(m.group("uidvalidity")) != mb.uidvalidity:
                raise BadUrl(url, "UIDVALIDITY does not match")
            with mb.open_message(int(m.group("uid"))) as f:
                msg = mime.parse_message(f.read())
    except StoreError:
        raise BadUrl(url, "no such mailbox or message") from None
    data = msg.data
    if m.group("section"):
        try:
            section = parse_section(urllib.parse.unquote(m.group("section")).upper(), binary=False)
        except ParseError:
            raise BadUrl(url, "bad section") from None
        data = mime.section_bytes(msg, section)
    if m.group("origin") is not None:
        origin = int(m.group("origin"))
        length = int(m.group("length")) if m.group("length") else None
        data = data[origin:origin + length] if length is not None else data[origin:]
    return data


def assemble(account, parts: list[tuple[str, bytes]], limit: int) -> bytes:
    out = []
    total = 0
    for kind, value in parts:
        data = value if kind == "TEXT" else resolve(account, value.decode("utf-8", "replace"))
        total += len(data)
        if total > limit:
            raise ImapError("Message too large", "TOOBIG")
        out.append(data)
    message = b"".join(out)
    if not message:
        raise ImapError("Empty message", "CANNOT")
    return message
