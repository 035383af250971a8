"""Build the configured checks by name (``[filters].checks``)."""

from __future__ import annotations

import os
from typing import Any

from pymail.filters.api import Check
from pymail.filters.settings import FilterSettings


def build_check(name: str, settings: FilterSettings, directory: Any = None, hostname: str = "localhost",
                var_dir: str | None = None) -> Check:
    if name == "clamd":
        from pymail.filters.clamd import ClamdCheck, ClamdClient

        return ClamdCheck(ClamdClient(settings.clamd, settings.connect_timeout), settings.clamd_max_size)
    if name == "spamd":
        from pymail.filters.spamd import SpamdCheck, SpamdClient

        return SpamdCheck(SpamdClient(settings.spamd, settings.connect_timeout), directory,
                          max_size=settings.spamd_max_size, site_threshold=settings.spam_threshold,
                          site_reject_score=settings.spam_reject_score, default_user=settings.spamd_user)
    if name in ("dnsbl", "auth"):
        from pymail.filters.dnsutil import Resolver

        resolver = Resolver(settings.dns_nameservers, settings.dns_port, settings.dns_timeout)
        if name == "dnsbl":
            from pymail.filters.dnsbl import DnsblCheck

            return DnsblCheck(resolver, settings.dnsbl_zones, settings.dnsbl_weight)
        from pymail.filters.authcheck import AuthCheck

        return AuthCheck(resolver, settings.authserv_id or hostname, spf_reject_fail=settings.spf_reject_fail,
                         dmarc_policy=settings.dmarc_policy, max_size=settings.auth_max_size,
                         timeout=settings.dns_timeout * 4)
    if name == "dkim_sign":
        from pymail.filters.dkimsign import DkimSignCheck

        return DkimSignCheck(keys_dir(settings, var_dir), settings.dkim_selector)
    raise ValueError(f"unknown check {name!r}")


def keys_dir(settings: FilterSettings, var_dir: str | None) -> str:
    """``dkim_keys_dir``, else ``<var_dir>/dkim``."""
    if settings.dkim_keys_dir:
        return settings.dkim_keys_dir
    return os.path.join(var_dir or "/var/lib/pymail", "dkim")


def link_checks(checks: list[Check]) -> None:
    """Let spamd count DNSBL listings even when the SMTP server rebuilds the Session per phase."""
    by_name = {c.name: c for c in checks}
    if "dnsbl" in by_name and "spamd" in by_name:
        by_name["spamd"].dnsbl = by_name["dnsbl"]
