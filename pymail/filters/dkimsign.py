"""DKIM signing (RFC 6376) of mail sent by authenticated users, with dkimpy; key generation.

Keys are files ``<keys_dir>/<domain>.<selector>.key`` (PEM, RSA, mode 0600), the layout rspamd
uses. ``generate_key(domain)`` (``pymail dkim keygen DOMAIN``) writes one and returns the DNS TXT
record to publish at ``<selector>._domainkey.<domain>``. The signing domain is the From header's
domain; a domain without a key is sent unsigned (and said so in the log).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
from pathlib import Path

import dkim

from pymail.filters.api import Check, Envelope, Verdict

log = logging.getLogger("pymail.filters.dkim")

# RFC 6376 §5.4.1 recommends these; From is required (§5.4).
SIGNED_HEADERS = [b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to",
                  b"in-reply-to", b"references", b"mime-version", b"content-type",
                  b"content-transfer-encoding", b"list-id", b"list-unsubscribe"]
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_SELECTOR = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62})$", re.I)


class DkimKeyError(ValueError):
    """A bad domain/selector or an existing key (message safe to show)."""


def key_path(keys_dir: str | os.PathLike, domain: str, selector: str) -> Path:
    return Path(keys_dir) / f"{domain.lower()}.{selector}.key"


def generate_key(keys_dir: str | os.PathLike, domain: str, selector: str = "pymail", bits: int = 2048,
                 overwrite: bool = False) -> tuple[Path, str]:
    """Write a new RSA key; return (path, TXT record text "v=DKIM1; k=rsa; p=...")."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    domain = domain.lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise DkimKeyError(f"{domain!r} is not a domain name")
    if not _SELECTOR.match(selector):
        raise DkimKeyError(f"{selector!r} is not a DKIM selector")
    if bits < 1024 or bits > 4096:
        raise DkimKeyError("key size must be 1024 to 4096 bits (RFC 8301: at least 1024)")
    path = key_path(keys_dir, domain, selector)
    if path.exists() and not overwrite:
        raise DkimKeyError(f"{path} exists (remove it or choose another selector)")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"


def dns_record(domain: str, selector: str, txt: str) -> str:
    """The zone-file line, TXT split in 255-byte strings (RFC 1035 §3.3.14)."""
    chunks = [txt[i:i + 255] for i in range(0, len(txt), 255)]
    return f'{selector}._domainkey.{domain}. IN TXT ( ' + " ".join(f'"{c}"' for c in chunks) + " )"


def from_domain(message: bytes) -> str | None:
    from pymail.filters.authcheck import _from_domain

    return _from_domain(message)


def sign(message: bytes, keys_dir: str | os.PathLike, selector: str) -> tuple[str, str] | None:
    """(header name, value) of a DKIM-Signature for the From domain, or None without a key."""
    domain = from_domain(message)
    if domain is None:
        return None
    path = key_path(keys_dir, domain, selector)
    try:
        private = path.read_bytes()
    except FileNotFoundError:
        return None
    line = dkim.sign(message, selector.encode(), domain.encode(), private,
                     include_headers=[h for h in SIGNED_HEADERS if re.search(
                         rb"^" + h + rb":", message.split(b"\r\n\r\n", 1)[0], re.M | re.I)] or [b"from"])
    name, _, value = line.decode("ascii").partition(":")
    return name, value.strip().replace("\n", "\r\n").replace("\r\r\n", "\r\n")


class DkimSignCheck(Check):
    """End of DATA on submission: sign what an authenticated user sends."""

    name = "dkim_sign"
    runs_for_authenticated = True

    def __init__(self, keys_dir: str | os.PathLike, selector: str = "pymail", max_size: int = 50 * 1024 * 1024):
        self.keys_dir = keys_dir
        self.selector = selector
        self.max_size = max_size

    async def data(self, envelope: Envelope, message_path: str) -> Verdict:
        if not envelope.session.authenticated_user:
            return Verdict()
        size = await asyncio.to_thread(os.path.getsize, message_path)
        if size > self.max_size:
            return Verdict(notes=["dkim_sign: message too large to sign"])
        message = await asyncio.to_thread(Path(message_path).read_bytes)
        header = await asyncio.to_thread(sign, message, self.keys_dir, self.selector)
        if header is None:
            log.info("no DKIM key for the From domain of a message from %s", envelope.session.authenticated_user)
            return Verdict(notes=["dkim_sign: no key for the From domain"])
        return Verdict.accept([header])
