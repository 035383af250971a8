"""Mailbox names: IMAP modified UTF-7 (RFC 3501 §5.1.3), validation, Maildir++ folder names.

pymail's API speaks UTF-8 names with ``/`` as the hierarchy separator ("Work/2024").  On disk a
folder is a Maildir++ directory ``.Work.2024`` whose name is the modified-UTF-7 form, as
Dovecot's default maildir layout stores it, so both servers read the same tree.

A name is refused with ``StoreError(BADNAME)`` when it could reach outside the mail root or
cannot be stored in Maildir++: empty components (``a//b``, leading or trailing ``/``), ``.`` or
``..``, any ``.`` (the Maildir++ separator on disk), NUL and other control characters, ``\\``,
a leading ``~``, over-long components or names.
"""

from __future__ import annotations

import base64

from pymail.store.errors import BADNAME, StoreError

SEPARATOR = "/"
MAX_COMPONENT = 200   # bytes of the encoded component; filesystem names stop at 255
MAX_DEPTH = 16


def encode_utf7(name: str) -> str:
    """UTF-8 (str) → IMAP modified UTF-7 (RFC 3501 §5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            b64 = base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")
            out.append("&" + b64 + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_utf7(wire: str | bytes) -> str:
    """IMAP modified UTF-7 → str.  Raises StoreError(BADNAME) on malformed input."""
    if isinstance(wire, bytes):
        try:
            wire = wire.decode("ascii")
        except UnicodeDecodeError:
            raise StoreError(BADNAME, "mailbox name is not 7-bit modified UTF-7") from None
    out: list[str] = []
    i, n = 0, len(wire)
    while i < n:
        ch = wire[i]
        if not 0x20 <= ord(ch) <= 0x7E:
            raise StoreError(BADNAME, "mailbox name has a non-printable character")
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = wire.find("-", i + 1)
        if end < 0:
            raise StoreError(BADNAME, "unterminated modified UTF-7 sequence")
        chunk = wire[i + 1:end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                raw = base64.b64decode(b64, validate=True)
                text = raw.decode("utf-16-be")
            except (ValueError, UnicodeDecodeError):
                raise StoreError(BADNAME, "malformed modified UTF-7 sequence") from None
            # RFC 3501 §5.1.3: printable US-ASCII must not be encoded with "&...-".
            if any(0x20 <= ord(c) <= 0x7E for c in text):
                raise StoreError(BADNAME, "modified UTF-7 encodes printable ASCII")
            out.append(text)
        i = end + 1
    return "".join(out)


def is_inbox(name: str) -> bool:
    return name.upper() == "INBOX"


def normalize(name: str) -> str:
    """Check ``name`` and return its canonical form ("inbox" → "INBOX", "Inbox/x" kept)."""
    if not isinstance(name, str):
        raise StoreError(BADNAME, "mailbox name must be text")
    if is_inbox(name):
        return "INBOX"
    if not name or len(name.encode("utf-8")) > 1000:
        raise StoreError(BADNAME, "mailbox name is empty or too long")
    parts = name.split(SEPARATOR)
    if len(parts) > MAX_DEPTH:
        raise StoreError(BADNAME, "mailbox name is nested too deep")
    for part in parts:
        _check_component(part)
    if is_inbox(parts[0]):
        parts[0] = "INBOX"
    return SEPARATOR.join(parts)


def _check_component(part: str) -> None:
    if not part:
        raise StoreError(BADNAME, "mailbox name has an empty level (leading, trailing or double '/')")
    if part in (".", ".."):
        raise StoreError(BADNAME, "mailbox name may not contain '.' or '..' levels")
    if "." in part:
        raise StoreError(BADNAME, "'.' is not allowed in mailbox names (Maildir++ separator)")
    if part.startswith("~"):
        raise StoreError(BADNAME, "mailbox name may not start a level with '~'")
    for ch in part:
        code = ord(ch)
        if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0 or ch in "\\":
            raise StoreError(BADNAME, "mailbox name has a control character or backslash")
        if 0xD800 <= code <= 0xDFFF:
            raise StoreError(BADNAME, "mailbox name has an unpaired surrogate")
    if len(encode_utf7(part)) > MAX_COMPONENT:
        raise StoreError(BADNAME, "mailbox name level too long")


def to_dirname(name: str) -> str:
    """Canonical name → Maildir++ directory name ("" for INBOX, ".Work.2024" otherwise)."""
    name = normalize(name)
    if name == "INBOX":
        return ""
    return "." + ".".join(encode_utf7(p) for p in name.split(SEPARATOR))


def from_dirname(dirname: str) -> str | None:
    """Maildir++ directory name → UTF-8 mailbox name, or None if it is not a valid folder."""
    if not dirname.startswith(".") or dirname in (".", ".."):
        return None
    try:
        parts = [decode_utf7(p) for p in dirname[1:].split(".")]
        return normalize(SEPARATOR.join(parts))
    except StoreError:
        return None
