"""SASL PLAIN for POP3 AUTH (RFC 5034 over RFC 4616), without I/O."""

from __future__ import annotations

import base64
import binascii

from pymail.pop3.errors import Pop3Error

MECHANISMS = ("PLAIN",)


def decode_plain(response: str) -> tuple[str, str]:
    """A base64 PLAIN response → (authcid, password). Raises Pop3Error.

    RFC 5034 §4: "=" is an empty initial response. RFC 4616 §2: the message is
    ``[authzid] NUL authcid NUL passwd`` in UTF-8; pymail has no proxy logins, so an authzid
    other than the authcid is refused.
    """
    text = response.strip()
    if text == "=":
        text = ""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise Pop3Error("Invalid base64 data in AUTH response") from None
    parts = raw.split(b"\0")
    if len(parts) != 3:
        raise Pop3Error("Invalid PLAIN response")
    try:
        authzid, authcid, password = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise Pop3Error("Invalid PLAIN response (not UTF-8)") from None
    if not authcid or not password:
        raise Pop3Error("Authentication failed", "AUTH")
    if authzid and authzid != authcid:
        raise Pop3Error("Logging in as another user is not allowed", "AUTH")
    return authcid, password
