"""Modified UTF-7 mailbox names (RFC 3501 §5.1.3) and the wire ↔ store name mapping.

The store names mailboxes in UTF-8 with ``/`` as separator; the wire uses modified UTF-7 (unless
the client enabled UTF8=ACCEPT, RFC 6855 §3). INBOX is case-insensitive (RFC 3501 §5.1).
"""

from __future__ import annotations

from pymail.store import names
from pymail.store.errors import StoreError

SEPARATOR = "/"


class NameError_(ValueError):
    """A mailbox name that is not valid modified UTF-7."""


# The codec itself is the store's (one implementation for disk and wire names).
encode = names.encode_utf7


def decode(wire: str) -> str:
    """Wire → name; only the canonical modified UTF-7 form is accepted (RFC 3501 §5.1.3)."""
    try:
        name = names.decode_utf7(wire)
    except StoreError as exc:
        raise NameError_(exc.message) from None
    if encode(name) != wire:
        raise NameError_("non-canonical modified UTF-7 in mailbox name")
    return name


def from_wire(raw: bytes, utf8: bool = False) -> str:
    """A client's mailbox argument → the store's name."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NameError_("mailbox name is not UTF-8") from None
    # RFC 6855 §3: once UTF8=ACCEPT is enabled, names are plain UTF-8 (no modified UTF-7)
    name = text if utf8 else decode(text)
    if name.upper() == "INBOX" or name.upper().startswith("INBOX" + SEPARATOR) and name[:5] != "INBOX":
        name = "INBOX" + name[5:]
    return name


def to_wire(name: str, utf8: bool = False) -> str:
    return name if utf8 else encode(name)
