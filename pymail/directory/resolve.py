"""Recipient resolution: aliases, catch-all, sub-addressing and forwarding.

Order for ``local+tag@domain`` (the order of Postfix's virtual_alias_maps, then the mailbox map):
1. an alias for the exact address, else a user with that exact address;
2. the same for the address without its ``+tag`` (the tag is kept as ``Resolution.detail``);
3. the catch-all alias ``@domain`` — only for addresses that are neither a user nor an alias,
   unlike Postfix's virtual_alias_maps where ``@domain`` would also capture existing users.

Alias destinations are expanded again (an alias may point to another alias, as in Postfix) up to
``MAX_DEPTH`` levels; a destination that loops back is skipped. An alias that names its own
source keeps a copy in that user's mailbox. Destinations outside the local domains are forwarded
(``external``); destinations in a local domain that lead nowhere are dropped, and a recipient
whose destinations all lead nowhere is unknown (None), so it is refused at RCPT time.
Disabled users still receive mail: ``enabled`` only governs logins.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from pymail.directory.addresses import split_address, strip_detail
from pymail.directory.errors import DirectoryError
from pymail.directory.models import Alias, Domain, User
from pymail.directory.records import Resolution

MAX_DEPTH = 20


class _Resolver:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._local_domains: dict[str, bool] = {}

    def is_local(self, domain: str) -> bool:
        if domain not in self._local_domains:
            found = self.session.scalar(select(Domain.id).where(Domain.name == domain))
            self._local_domains[domain] = found is not None
        return self._local_domains[domain]

    def alias_targets(self, source: str) -> list[str]:
        rows = self.session.scalars(select(Alias.destination).where(Alias.source == source).order_by(Alias.id))
        return list(rows)

    def user_exists(self, address: str) -> bool:
        return self.session.scalar(select(User.id).where(User.address == address)) is not None

    def exact(self, address: str, seen: frozenset[str], depth: int) -> tuple[list[str], list[str]] | None:
        """Alias or user for exactly ``address``; None when neither exists."""
        targets = self.alias_targets(address)
        if targets:
            return self.expand(address, targets, seen | {address}, depth)
        if self.user_exists(address):
            return [address], []
        return None

    def expand(self, source: str, targets: list[str], seen: frozenset[str], depth: int):
        local: list[str] = []
        external: list[str] = []
        for target in targets:
            if target == source:
                if self.user_exists(target):
                    local.append(target)
                continue
            if target in seen:
                continue
            try:
                t_local, t_domain = split_address(target)
            except DirectoryError:
                continue
            if not self.is_local(t_domain):
                external.append(target)
                continue
            if depth >= MAX_DEPTH:
                continue
            found = self.lookup(t_local, t_domain, seen, depth + 1)
            if found:
                local.extend(found[0])
                external.extend(found[1])
        if not local and not external:
            return None
        return local, external

    def lookup(self, local: str, domain: str, seen: frozenset[str], depth: int):
        """Steps 1-3 of the module docstring; returns (local, external, detail) or None."""
        full = f"{local}@{domain}"
        found = self.exact(full, seen, depth)
        if found:
            return found[0], found[1], None
        base, detail = strip_detail(local)
        if detail is not None:
            found = self.exact(f"{base}@{domain}", seen, depth)
            if found:
                return found[0], found[1], detail
        catch_all = "@" + domain
        if catch_all not in seen:
            targets = self.alias_targets(catch_all)
            if targets:
                found = self.expand(catch_all, targets, seen | {catch_all, full}, depth)
                if found:
                    return found[0], found[1], None
        return None


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def resolve(session: Session, address: str) -> Resolution | None:
    try:
        local, domain = split_address(address)
    except DirectoryError:
        return None
    resolver = _Resolver(session)
    if not resolver.is_local(domain):
        return None
    found = resolver.lookup(local, domain, frozenset(), 0)
    if not found:
        return None
    local_users, external, detail = found
    return Resolution(local_users=_unique(local_users), external=_unique(external), detail=detail)
