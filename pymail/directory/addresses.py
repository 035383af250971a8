"""Parsing and normalising mail addresses and domain names for directory lookups.

Rules (what Postfix and Dovecot admins expect):
- Domains are case-insensitive (RFC 5321 §2.4): stored and looked up lower-cased. A domain
  given in Unicode is stored in its IDNA A-label form (``xn--...``), so both spellings match.
- Local parts are case-sensitive in principle (RFC 5321 §2.4), but Postfix lookup tables and
  Dovecot's usual ``auth_username_format=%Lu`` fold case; pymail does the same for ASCII letters
  only: ``John.Doe@Example.COM`` is ``john.doe@example.com``. Non-ASCII characters of an
  SMTPUTF8 local part are kept as they are.
- Sub-addressing: ``user+tag@domain``; the delimiter is ``+`` (Postfix ``recipient_delimiter``).
"""

from __future__ import annotations

import re

from pymail.directory.errors import DirectoryError

DETAIL_DELIMITER = "+"
MAX_LOCAL_BYTES = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN_BYTES = 253  # RFC 1035 §2.3.4 (255 octets on the wire)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Dot-atom text (RFC 5322 §3.2.3) plus UTF-8 (RFC 6531 §3.3); no quoted local parts.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]+)*$")


def ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def normalise_domain(name: str) -> str:
    """Lower-case, IDNA-encode and validate a domain name; raises DirectoryError."""
    if not isinstance(name, str):
        raise DirectoryError("a domain name must be text")
    raw = name.strip().rstrip(".")
    if not raw:
        raise DirectoryError("empty domain name")
    try:
        domain = raw.encode("idna").decode("ascii").lower() if not raw.isascii() else raw.lower()
    except UnicodeError:
        raise DirectoryError(f"bad domain name {name!r}") from None
    labels = domain.split(".")
    if len(domain) > MAX_DOMAIN_BYTES or len(labels) < 2 or not all(_LABEL.match(lb) for lb in labels):
        raise DirectoryError(f"bad domain name {name!r} (expected something like example.com)")
    return domain


def normalise_local(local: str, original: str) -> str:
    if not local:
        raise DirectoryError(f"bad address {original!r}: empty local part")
    if len(local.encode("utf-8")) > MAX_LOCAL_BYTES:
        raise DirectoryError(f"bad address {original!r}: local part longer than {MAX_LOCAL_BYTES} bytes")
    if not _LOCAL.match(local):
        raise DirectoryError(f"bad address {original!r}: characters not allowed in a local part")
    return ascii_lower(local)


def split_address(address: str) -> tuple[str, str]:
    """``(local, domain)`` normalised; raises DirectoryError for anything that is not an address."""
    if not isinstance(address, str):
        raise DirectoryError("an address must be text")
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, at, domain = text.rpartition("@")
    if not at:
        raise DirectoryError(f"bad address {address!r}: expected local@domain")
    return normalise_local(local, address), normalise_domain(domain)


def normalise_address(address: str) -> str:
    local, domain = split_address(address)
    return f"{local}@{domain}"


def normalise_alias_source(source: str) -> str:
    """A full address, or ``@domain`` for a catch-all."""
    text = source.strip() if isinstance(source, str) else source
    if isinstance(text, str) and text.startswith("@"):
        return "@" + normalise_domain(text[1:])
    return normalise_address(source)


def strip_detail(local: str) -> tuple[str, str | None]:
    """``("user", "tag")`` from ``user+tag``; ``(local, None)`` without a delimiter."""
    base, sep, detail = local.partition(DETAIL_DELIMITER)
    if not sep or not base:
        return local, None
    return base, detail
