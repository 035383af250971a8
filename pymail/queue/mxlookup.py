"""Where to send mail for a domain: MX lookup with dnspython (RFC 5321 §5.1, RFC 7505).

MX records by preference; no MX → the domain's own A/AAAA ("implicit MX"); a null MX ("0 .")
→ permanent 5.1.10; NXDOMAIN → permanent 5.1.2; DNS timeouts → temporary. The resolver's
nameservers and port come from ``[queue] dns_nameservers``/``dns_port`` (tests run their own).
dnspython is the well-kept standard for DNS in Python; the stdlib has no MX lookup.
"""

from __future__ import annotations

import dns.exception
import dns.resolver

from pymail.queue.errors import PermanentFailure, TemporaryFailure


def resolver_for(settings) -> dns.resolver.Resolver:
    if settings.dns_nameservers:
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = list(settings.dns_nameservers)
    else:
        r = dns.resolver.Resolver()
    r.port = settings.dns_port
    r.lifetime = settings.dns_timeout
    return r

def destinations(settings, domain: str) -> list[tuple[str, str, int]]:
    """[(name, ip, port)] to try in order for ``domain``."""
    port = settings.remote_port
    if domain.startswith("[") and domain.endswith("]"):
        ip = domain[1:-1]
        if ip.lower().startswith("ipv6:"):
            ip = ip[5:]
        return [(ip, ip, port)]
    resolver = resolver_for(settings)
    try:
        answer = resolver.resolve(domain, "MX")
        records = sorted(answer, key=lambda r: r.preference)
        names = [r.exchange.to_text().rstrip(".") for r in records]
        if len(names) == 1 and names[0] == "":
            raise PermanentFailure(f"{domain} accepts no mail (null MX)", "5.1.10")
        names = [n for n in names if n]
    except dns.resolver.NXDOMAIN:
        raise PermanentFailure(f"Host or domain name not found: {domain}", "5.1.2") from None
    except dns.resolver.NoAnswer:
        names = [domain]  # RFC 5321 §5.1 implicit MX
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise TemporaryFailure(f"DNS lookup of {domain} failed: {exc}", "4.4.3") from None
    out = []
    for name in names:
        for rdtype in ("A", "AAAA"):
            try:
                for rr in resolver.resolve(name, rdtype):
                    out.append((name, rr.to_text(), port))
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except (dns.exception.Timeout, dns.resolver.NoNameservers):
                continue
    if not out:
        raise TemporaryFailure(f"no address found for the mail hosts of {domain}", "4.4.4")
    return out


def smarthost(settings) -> list[tuple[str, str, int]]:
    host, _, port = settings.smarthost.rpartition(":")
    if not host:
        host, port = settings.smarthost, "25"
    return [(host, host, int(port))]
