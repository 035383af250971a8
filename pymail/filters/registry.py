"""Build the configured checks by name (``[filters].checks``)."""

from __future__ import annotations

from typing import Any

from pymail.filters.api import Check
from pymail.filters.settings import FilterSettings


def build_check(name: str, settings: FilterSettings, directory: Any = None) -> Check:
    if name == "clamd":
        from pymail.filters.clamd import ClamdCheck, ClamdClient

        return ClamdCheck(ClamdClient(settings.clamd, settings.connect_timeout), settings.clamd_max_size)
    if name == "spamd":
        from pymail.filters.spamd import SpamdCheck, SpamdClient

        return SpamdCheck(SpamdClient(settings.spamd, settings.connect_timeout), directory,
                          max_size=settings.spamd_max_size, site_threshold=settings.spam_threshold,
                          site_reject_score=settings.spam_reject_score, default_user=settings.spamd_user)
    raise ValueError(f"unknown check {name!r}")
