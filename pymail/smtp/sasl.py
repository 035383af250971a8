"""SASL PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login) decoding, sans-IO."""

from __future__ import annotations

import base64
import binascii

from pymail.smtp.errors import SmtpError

MECHANISMS = ("PLAIN", "LOGIN")
USERNAME_PROMPT = base64.b64encode(b"Username:").decode()
PASSWORD_PROMPT = base64.b64encode(b"Password:").decode()


def b64decode(text: str) -> bytes:
    if text == "=":  # RFC 4954 §4: "=" is an empty initial response
        return b""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SmtpError(501, "5.5.2", "Cannot decode the SASL response") from None


def parse_plain(text: str) -> tuple[str, str]:
    """(username, password) from a PLAIN response; authzid must be empty or the same user."""
    raw = b64decode(text)
    parts = raw.split(b"\x00")
    if len(parts) != 3:
        raise SmtpError(501, "5.5.2", "Malformed PLAIN response")
    authzid, authcid, password = (p.decode("utf-8", "surrogateescape") for p in parts)
    if authzid and authzid != authcid:
        raise SmtpError(535, "5.7.8", "Authentication credentials invalid")
    return authcid, password


def decode_text(text: str) -> str:
    return b64decode(text).decode("utf-8", "surrogateescape")
