"""DNSBL lookups on the client IP (RFC 5782), combined with content analysis, never alone.

At connect, the client's address is looked up in each configured zone (``4.3.2.1.zone`` for
1.2.3.4, nibbles for IPv6, §2.1/§2.4). A listing (an A record in 127.0.0.0/8, §2.1; the
127.255.255.x answers some lists use for "refused query" are ignored) is noted in
``session.facts``; the spamd check adds ``dnsbl_weight`` per listing to the message's score, so
a listed host with clean content still gets through. At end of DATA the listings become an
``X-DNSBL`` header so users (and Sieve ``header`` tests) can see them.
"""

from __future__ import annotations

import asyncio
import ipaddress

from pymail.filters.api import Check, Envelope, Session, Verdict
from pymail.filters.dnsutil import DnsTempError, Resolver

FACT_HITS = "dnsbl"  # list of (zone, answer)
FACT_SCORE = "dnsbl_score"
_LOCAL_NETS = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]


def query_name(ip: str, zone: str) -> str | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 4:
        labels = reversed(str(addr).split("."))
    else:
        labels = reversed(addr.exploded.replace(":", ""))
    return ".".join(labels) + "." + zone.rstrip(".")


def _is_listing(answer: str) -> bool:
    try:
        addr = ipaddress.ip_address(answer)
    except ValueError:
        return False
    return addr in ipaddress.ip_network("127.0.0.0/8") and not answer.startswith("127.255.255.")


class DnsblCheck(Check):
    name = "dnsbl"
    runs_for_authenticated = False

    def __init__(self, resolver: Resolver, zones: list[str], weight: float = 3.0):
        self.resolver = resolver
        self.zones = list(zones)
        self.weight = weight

    async def _lookup(self, ip: str, zone: str) -> tuple[str, str] | None:
        name = query_name(ip, zone)
        if name is None:
            return None
        answers = await asyncio.to_thread(self.resolver.addresses, name, "A")
        listed = [a for a in answers if _is_listing(a)]
        return (zone, listed[0]) if listed else None

    async def ensure(self, session: Session) -> list[str]:
        """Look the client up once per session (facts); returns log notes about DNS trouble."""
        if FACT_HITS in session.facts:
            return []
        ip = session.remote_ip
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            addr = None
        if addr is None or addr.is_loopback or addr.is_link_local or any(addr in n for n in _LOCAL_NETS):
            session.facts[FACT_HITS], session.facts[FACT_SCORE] = [], 0.0  # never listed
            return []
        results = await asyncio.gather(*(self._lookup(ip, z) for z in self.zones), return_exceptions=True)
        hits = [r for r in results if isinstance(r, tuple)]
        session.facts[FACT_HITS] = hits
        session.facts[FACT_SCORE] = self.weight * len(hits)
        return [f"dnsbl: {z}: {e}" for z, e in zip(self.zones, results) if isinstance(e, DnsTempError)]

    async def connect(self, session: Session) -> Verdict:
        return Verdict(notes=await self.ensure(session))

    async def data(self, envelope: Envelope, message_path: str) -> Verdict:
        notes = await self.ensure(envelope.session)
        hits = envelope.session.facts.get(FACT_HITS) or []
        if not hits:
            return Verdict.accept(remove_headers=["X-DNSBL"], notes=notes)
        value = f"{envelope.session.remote_ip} listed in " + ", ".join(f"{z} ({a})" for z, a in hits)
        return Verdict.accept([("X-DNSBL", value)], remove_headers=["X-DNSBL"], notes=notes)
