"""Address rules for relay control (RFC 5321 §3.6, Appendix C; Postfix's allow_untrusted_routing).

A recipient is local only when its domain is one of ours and its local part carries no routing:
``user%ext@local``, ``ext!user@local`` and ``"user@ext"@local`` would make a downstream or legacy
MTA route the message outside, so they are refused, as are IP-literal domains and (after the
ignored source route ``@local:``) any address of a foreign domain, unless the client may relay.
"""

from __future__ import annotations

import ipaddress

from pymail.smtp.commands import split_address

ROUTING_CHARS = ("@", "%", "!")


def unquote_local(local: str) -> str:
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        inner = local[1:-1]
        out, escaped = [], False
        for ch in inner:
            if escaped:
                out.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            else:
                out.append(ch)
        return "".join(out)
    return local


def has_routing(local: str) -> bool:
    """True for local parts that name another host (%-hack, bang path, embedded @)."""
    plain = unquote_local(local)
    return any(c in plain for c in ROUTING_CHARS)


def is_ip_literal(domain: str) -> bool:
    return domain.startswith("[") and domain.endswith("]")


def normalize(address: str) -> str:
    """Lower-case the domain (RFC 5321 §2.4: local parts are case-sensitive, domains are not)."""
    local, domain = split_address(address)
    return f"{local}@{domain.lower()}" if domain else address


def domain_of(address: str) -> str:
    return split_address(address)[1].lower()


def in_networks(ip: str, networks: list[str]) -> bool:
    try:
        addr = ipaddress.ip_address(ip.split("%")[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    for net in networks:
        try:
            if addr in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            continue
    return False
