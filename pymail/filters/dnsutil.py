"""DNS lookups for the filters (DNSBL, SPF, DKIM, DMARC), with dnspython.

One ``Resolver`` per process, configured from ``[filters] dns_nameservers/dns_port/dns_timeout``
(empty nameservers: /etc/resolv.conf). Lookups are blocking: checks call them from a thread.
"No such name" and "no data" are empty answers; timeouts and server failures raise
``DnsTempError`` (SPF/DKIM "temperror").
"""

from __future__ import annotations

import dns.exception
import dns.name
import dns.resolver


class DnsTempError(Exception):
    """The answer could not be had now (timeout, SERVFAIL): try again later."""


class Resolver:
    def __init__(self, nameservers: list[str] | None = None, port: int = 53, timeout: float = 5.0):
        if nameservers:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = list(nameservers)
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.port = port
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self.timeout = timeout

    def _query(self, name: str, qtype: str, lifetime: float | None = None):
        try:
            lifetime = min(lifetime or self.timeout, self.timeout)  # the configured bound wins
            return list(self._resolver.resolve(name, qtype, lifetime=lifetime,
                                               search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.name.NameTooLong:
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout) as exc:
            raise DnsTempError(f"DNS {qtype} {name}: {exc.__class__.__name__}") from None
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"DNS {qtype} {name}: {exc}") from None

    def txt(self, name: str, timeout: float | None = None) -> list[bytes]:
        """Each TXT record's strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2)."""
        return [b"".join(r.strings) for r in self._query(name, "TXT", timeout)]

    def addresses(self, name: str, qtype: str = "A") -> list[str]:
        return [r.address for r in self._query(name, qtype)]

    def mx(self, name: str) -> list[tuple[int, str]]:
        return [(r.preference, r.exchange.to_text(True)) for r in self._query(name, "MX")]

    def ptr(self, name: str) -> list[str]:
        return [r.target.to_text(True) for r in self._query(name, "PTR")]

    # -- adapters for the libraries ------------------------------------------------------------
    def dkim_txt(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        """dkimpy's ``dnsfunc``: the first TXT record of the key name, or None."""
        text = name.decode("ascii") if isinstance(name, bytes) else name
        records = self.txt(text, timeout)
        return records[0] if records else None

    def pyspf_lookup(self, name: str, qtype: str, strict: bool = True, timeout: float = 20):
        """pyspf's ``DNSLookup``: ``[((name, qtype), value), ...]`` as its dnspython variant gives."""
        import spf

        try:
            if qtype in ("A", "AAAA"):
                return [((name, qtype), a) for a in self.addresses(name, qtype)]
            if qtype == "MX":
                return [((name, qtype), (pref, host)) for pref, host in self.mx(name)]
            if qtype == "PTR":
                return [((name, qtype), host) for host in self.ptr(name)]
            if qtype in ("TXT", "SPF"):
                return [((name, qtype), [r]) for r in self.txt(name, timeout)]
        except DnsTempError as exc:
            raise spf.TempError(str(exc)) from None
        return []
