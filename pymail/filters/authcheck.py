"""SPF, DKIM and DMARC for inbound mail, summed up in one Authentication-Results header.

- SPF (RFC 7208) with pyspf, for the MAIL FROM identity (``postmaster@<helo>`` for the null
  sender, §2.4), at MAIL FROM; ``spf_reject_fail`` refuses a "fail" there (550 5.7.23, RFC 7372).
- DKIM (RFC 6376) with dkimpy: every signature (at most ``MAX_SIGNATURES``) is verified.
- DMARC (RFC 7489): the From domain's policy (``_dmarc.<domain>``, else the organizational
  domain's, found with the public suffix list), passing when SPF or DKIM passes *aligned*
  (relaxed: same organizational domain; strict: same domain). With ``dmarc_policy = "enforce"``
  p=reject refuses the message (550 5.7.1) and p=quarantine files it to Junk.
- One ``Authentication-Results`` header (RFC 8601) with pymail's authserv-id; incoming headers of
  that name are removed (§5: a receiver must not pass on results claiming to be its own).

DNS answers come from ``pymail.filters.dnsutil.Resolver``; the libraries run in a thread.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import dkim
import spf

from pymail.filters.api import Check, Envelope, Session, Verdict
from pymail.filters.dnsutil import DnsTempError, Resolver

log = logging.getLogger("pymail.filters.auth")

MAX_SIGNATURES = 5
FACT_SPF = "spf"  # (mail_from, result, explanation)

# pyspf looks DNS up through its module-level DNSLookup; route it to the resolver of the
# calling thread's check (set around each SPF evaluation), else pyspf's own.
_local = threading.local()
_pyspf_default = spf.DNSLookup


def _pyspf_lookup(name, qtype, strict=True, timeout=20):
    resolver = getattr(_local, "resolver", None)
    if resolver is None:
        return _pyspf_default(name, qtype, strict, timeout)
    return resolver.pyspf_lookup(name, qtype, strict, timeout)


spf.DNSLookup = _pyspf_lookup


@contextmanager
def _using(resolver: Resolver):
    _local.resolver = resolver
    try:
        yield
    finally:
        _local.resolver = None


def check_spf(resolver: Resolver, ip: str, mail_from: str, helo: str, timeout: float = 20) -> tuple[str, str]:
    """(result, explanation); result as RFC 7208 §2.6 names it."""
    sender = mail_from or f"postmaster@{helo}"
    if not ip or not helo and not mail_from:
        return "none", "no identity to check"
    with _using(resolver):
        try:
            result, _code, explanation = spf.query(i=ip, s=sender, h=helo or "unknown",
                                                   timeout=timeout, querytime=timeout).check()
        except Exception as exc:  # pyspf raises on odd input (e.g. a bad IP): not a verdict
            return "permerror", str(exc)
    return result, explanation


# -- DMARC --------------------------------------------------------------------------------------

def org_domain(domain: str) -> str:
    """RFC 7489 §3.2: the public suffix plus one label."""
    from publicsuffix2 import get_sld

    domain = domain.lower().rstrip(".")
    return get_sld(domain) or domain


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    return a == b if mode == "s" else org_domain(a) == org_domain(b)


def parse_dmarc(record: bytes) -> dict[str, str] | None:
    text = record.decode("ascii", "replace")
    if not re.match(r"\s*v\s*=\s*DMARC1\s*(;|$)", text):
        return None
    tags = {}
    for part in text.split(";"):
        key, eq, value = part.partition("=")
        if eq:
            tags[key.strip().lower()] = value.strip()
    return tags


def dmarc_record(resolver: Resolver, domain: str) -> tuple[dict[str, str] | None, str]:
    """The policy for ``domain`` (§6.6.3): its own record, else its organizational domain's."""
    for candidate in dict.fromkeys([domain, org_domain(domain)]):
        records = [t for t in (parse_dmarc(r) for r in resolver.txt(f"_dmarc.{candidate}")) if t]
        if len(records) == 1:
            return records[0], candidate
        if len(records) > 1:
            return None, candidate  # §6.6.3: several records = no policy
    return None, domain


@dataclass
class AuthResults:
    spf: str = "none"
    spf_domain: str = ""
    dkim: list[tuple[str, str, str]] | None = None  # (result, d=, s=)
    dmarc: str = "none"
    dmarc_policy: str = ""
    from_domain: str = ""

    def header(self, authserv_id: str, mail_from: str, helo: str) -> str:
        """RFC 8601 §2.2 syntax."""
        parts = [authserv_id]
        identity = f"smtp.mailfrom={mail_from}" if mail_from else f"smtp.helo={helo}"
        parts.append(f"spf={self.spf} {identity}")
        if self.dkim:
            parts += [f"dkim={r} header.d={d} header.s={s}" for r, d, s in self.dkim]
        else:
            parts.append("dkim=none")
        if self.from_domain:
            policy = f" (p={self.dmarc_policy})" if self.dmarc_policy else ""
            parts.append(f"dmarc={self.dmarc}{policy} header.from={self.from_domain}")
        else:
            parts.append("dmarc=none")
        return ";\r\n\t".join(parts)


def _from_domain(message: bytes) -> str | None:
    """The one RFC5322.From domain (§6.6.1: several From addresses are not judged here)."""
    head = message.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("utf-8", "replace")
    values = re.findall(r"^From:(.*(?:\r?\n[ \t].*)*)", head, re.M | re.I)
    if len(values) != 1:
        return None
    addresses = [a for _, a in email.utils.getaddresses([values[0]]) if "@" in a]
    if len(addresses) != 1:
        return None
    return addresses[0].rpartition("@")[2].lower().rstrip(".")


def verify_dkim(resolver: Resolver, message: bytes, timeout: float) -> list[tuple[str, str, str]]:
    count = len(re.findall(rb"^DKIM-Signature:", message.split(b"\r\n\r\n", 1)[0], re.M | re.I))
    results = []
    for idx in range(min(count, MAX_SIGNATURES)):
        d = dkim.DKIM(message, timeout=timeout)
        try:
            ok = d.verify(idx=idx, dnsfunc=resolver.dkim_txt)
            result = "pass" if ok else "fail"
        except DnsTempError:
            result = "temperror"
        except dkim.DKIMException as exc:
            log.info("dkim signature %d: %s", idx, exc)
            result = "permerror" if isinstance(exc, (dkim.KeyFormatError, dkim.ParameterError)) else "fail"
        fields = d.signature_fields or {}
        results.append((result, fields.get(b"d", b"").decode("ascii", "replace"),
                        fields.get(b"s", b"").decode("ascii", "replace")))
    return results


def evaluate(resolver: Resolver, message: bytes, ip: str, mail_from: str, helo: str,
             spf_result: tuple[str, str] | None, timeout: float, verify_body: bool = True) -> AuthResults:
    out = AuthResults()
    result, _ = spf_result or check_spf(resolver, ip, mail_from, helo, timeout)
    out.spf = result
    out.spf_domain = (mail_from.rpartition("@")[2] if mail_from else helo).lower()
    out.dkim = verify_dkim(resolver, message, timeout) if verify_body else []
    from_domain = _from_domain(message)
    if from_domain is None:
        out.dmarc = "none"
        return out
    out.from_domain = from_domain
    try:
        record, _where = dmarc_record(resolver, from_domain)
    except DnsTempError:
        out.dmarc = "temperror"
        return out
    if record is None or record.get("p", "").lower() not in ("none", "quarantine", "reject"):
        out.dmarc = "none"
        return out
    policy = record["p"].lower()
    if from_domain != org_domain(from_domain) and record.get("sp", "").lower() in ("none", "quarantine", "reject"):
        policy = record["sp"].lower()  # §6.3: sp applies to subdomains
    out.dmarc_policy = policy
    spf_ok = out.spf == "pass" and aligned(out.spf_domain, from_domain, record.get("aspf", "r").lower())
    dkim_ok = any(r == "pass" and aligned(d, from_domain, record.get("adkim", "r").lower())
                  for r, d, _ in out.dkim)
    out.dmarc = "pass" if spf_ok or dkim_ok else "fail"
    return out


class AuthCheck(Check):
    """The "auth" check: SPF at MAIL FROM, SPF+DKIM+DMARC summed up at end of DATA."""

    name = "auth"
    runs_for_authenticated = False

    def __init__(self, resolver: Resolver, authserv_id: str, *, spf_reject_fail: bool = False,
                 dmarc_policy: str = "enforce", max_size: int = 10 * 1024 * 1024, timeout: float = 20.0):
        self.resolver = resolver
        self.authserv_id = authserv_id
        self.spf_reject_fail = spf_reject_fail
        self.dmarc_policy = dmarc_policy
        self.max_size = max_size
        self.timeout = timeout

    async def mail_from(self, session: Session, address: str) -> Verdict:
        result, explanation = await asyncio.to_thread(
            check_spf, self.resolver, session.remote_ip, address, session.helo, self.timeout)
        session.facts[FACT_SPF] = (address, result, explanation)
        if result == "fail" and self.spf_reject_fail:
            # RFC 7208 §8.4 / RFC 7372 §3.2: 550 5.7.23.
            why = f": {explanation}" if explanation else ""
            return Verdict.reject(550, "5.7.23", f"SPF check failed for {address or session.helo}{why}")
        return Verdict()

    async def data(self, envelope: Envelope, message_path: str) -> Verdict:
        session = envelope.session
        size = await asyncio.to_thread(os.path.getsize, message_path)
        verify_body = size <= self.max_size
        if verify_body:
            message = await asyncio.to_thread(_read, message_path)
        else:
            message = await asyncio.to_thread(_read_head, message_path)
        known = session.facts.get(FACT_SPF)
        spf_result = known[1:] if known and known[0] == envelope.mail_from else None
        results = await asyncio.to_thread(evaluate, self.resolver, message, session.remote_ip,
                                          envelope.mail_from, session.helo, spf_result, self.timeout,
                                          verify_body)
        header = ("Authentication-Results", results.header(self.authserv_id, envelope.mail_from, session.helo))
        common = dict(remove_headers=["Authentication-Results"])
        if results.dmarc == "fail" and self.dmarc_policy == "enforce":
            if results.dmarc_policy == "reject":
                # RFC 7489 §6.6.3 / §10.3: refuse during the transaction.
                return Verdict.reject(550, "5.7.1", f"DMARC policy of {results.from_domain} refuses "
                                      "unauthenticated mail", headers=[header], **common)
            if results.dmarc_policy == "quarantine":
                return Verdict.quarantine([header], **common)
        return Verdict.accept([header], **common)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _read_head(path: str, limit: int = 256 * 1024) -> bytes:
    with open(path, "rb") as f:
        data = f.read(limit)
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[:end + 4]
