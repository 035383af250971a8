"""Parsing of SMTP command arguments (sans-IO): paths, ESMTP parameters, xtext.

RFC 5321 §4.1.2 grammar, kept permissive where real clients differ (a space after ``FROM:``),
strict where it matters (the path must be in angle brackets; parameters are ``KEY[=VALUE]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pymail.smtp.errors import SmtpError


@dataclass(frozen=True)
class Path:
    address: str  # "" is the null reverse-path <>
    route: tuple[str, ...] = ()  # RFC 5321 §4.1.2 source route (obsolete, ignored: Appendix C)
    params: dict[str, str | None] = field(default_factory=dict)  # ESMTP keyword → value, upper keys


_KEYWORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")


def split_verb(line: str) -> tuple[str, str]:
    verb, _, arg = line.partition(" ")
    return verb.upper(), arg.strip(" ")


def parse_path_arg(arg: str, keyword: str) -> Path:
    """Parse ``FROM:<path> params`` / ``TO:<path> params`` (keyword is "FROM" or "TO")."""
    head = arg[: len(keyword) + 1]
    if head.upper() != keyword + ":":
        raise SmtpError(501, "5.5.4", f"Syntax: {'MAIL FROM' if keyword == 'FROM' else 'RCPT TO'}:<address>")
    rest = arg[len(keyword) + 1 :].lstrip(" ")
    if not rest.startswith("<"):
        raise SmtpError(501, "5.5.4", "Syntax error: the address must be in angle brackets")
    end = _closing_bracket(rest)
    inner = rest[1:end]
    params = parse_params(rest[end + 1 :])
    route: tuple[str, ...] = ()
    if inner.startswith("@"):
        # "@a,@b:user@dom" — RFC 5321 Appendix C: accept and ignore the route.
        colon = inner.find(":")
        if colon < 0:
            raise SmtpError(501, "5.1.3", "Bad source route syntax")
        route = tuple(h.strip().lstrip("@") for h in inner[:colon].split(","))
        inner = inner[colon + 1 :]
    if keyword == "TO" and inner.lower() == "postmaster":
        return Path("postmaster", route, params)  # RFC 5321 §4.5.1: <postmaster> has no domain
    if inner and not _valid_mailbox(inner):
        raise SmtpError(501, "5.1.3", "Bad address syntax")
    return Path(inner, route, params)


def _closing_bracket(text: str) -> int:
    quoted = escaped = False
    for i in range(1, len(text)):
        ch = text[i]
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == ">" and not quoted:
            return i
    raise SmtpError(501, "5.5.4", "Syntax error: missing '>'")


def split_address(address: str) -> tuple[str, str]:
    """(local part, domain) split at the last '@' outside a quoted local part."""
    quoted = escaped = False
    at = -1
    for i, ch in enumerate(address):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "@" and not quoted:
            at = i
    if at < 0:
        return address, ""
    return address[:at], address[at + 1 :]


def _valid_mailbox(address: str) -> bool:
    local, domain = split_address(address)
    if not local or not domain or len(address) > 254 * 2:
        return False
    if any(c in address for c in "\r\n\x00") or " " in domain:
        return False
    if local.startswith('"'):
        return local.endswith('"') and len(local) >= 2
    return " " not in local and "<" not in local and ">" not in local


def parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for word in text.split():
        key, eq, value = word.partition("=")
        if not _KEYWORD.match(key) or (eq and not value):
            raise SmtpError(501, "5.5.4", f"Bad parameter syntax: {word[:40]}")
        if key.upper() in params:
            raise SmtpError(501, "5.5.4", f"Duplicate parameter {key.upper()}")
        params[key.upper()] = value if eq else None
    return params


def decode_xtext(text: str) -> str:
    """RFC 3461 §4: '+XX' is a hex-escaped byte."""
    out = bytearray()
    i = 0
    raw = text.encode("utf-8", "surrogateescape")
    while i < len(raw):
        if raw[i] == 0x2B:  # "+"
            try:
                out.append(int(raw[i + 1 : i + 3], 16))
            except ValueError:
                raise SmtpError(501, "5.5.4", "Bad xtext encoding") from None
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "replace")


def encode_xtext(text: str) -> str:
    out = []
    for b in text.encode("utf-8"):
        if b < 33 or b > 126 or b in (0x2B, 0x3D):
            out.append(f"+{b:02X}")
        else:
            out.append(chr(b))
    return "".join(out)
