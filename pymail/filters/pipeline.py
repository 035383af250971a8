"""Run the checks of one SMTP phase concurrently and merge their verdicts.

- Each check runs under its own timeout; a timeout, an unreachable backend or a bug in a check
  is "backend unavailable" and gets that check's fail policy: ``tempfail`` (451 4.7.1, the
  default: the sender retries, nothing is lost) or ``accept`` (accept and tag the message with
  ``X-Pymail-Unchecked``).
- Merge: the strongest action wins (reject > tempfail > quarantine > accept); among equals the
  first check in the configured order gives the reply. Headers are kept in check order.
- Which checks run for which listener role (mx, submission, lmtp) is configuration;
  checks marked ``runs_for_authenticated = False`` (spam) skip authenticated submissions.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from pymail.filters.api import (
    Action,
    BackendUnavailable,
    Check,
    Envelope,
    FilterError,
    Session,
    Verdict,
)
from pymail.filters.settings import FilterSettings

log = logging.getLogger("pymail.filters")

PHASES = ("connect", "helo", "mail_from", "rcpt", "data")
UNCHECKED_HEADER = "X-Pymail-Unchecked"
# Marks a quarantined message for local delivery (which files it to Junk); incoming copies are
# always removed, so only pymail's own pipeline can set it.
QUARANTINE_HEADER = "X-Pymail-Quarantine"


@dataclass
class CheckSlot:
    """A check plus how the pipeline runs it."""

    check: Check
    roles: tuple[str, ...] = ("mx", "submission", "lmtp")
    timeout: float = 30.0
    fail_policy: str = "tempfail"  # or "accept"


class Pipeline:
    def __init__(self, slots: list[CheckSlot]):
        self.slots = list(slots)

    @classmethod
    def from_settings(cls, settings: FilterSettings, directory: Any = None, hostname: str = "localhost",
                      var_dir: str | None = None) -> "Pipeline":
        """Build the configured checks, in ``settings.checks`` order."""
        from pymail.filters.registry import build_check

        from pymail.filters.registry import link_checks

        slots = []
        for name in settings.checks:
            slots.append(CheckSlot(
                check=build_check(name, settings, directory, hostname, var_dir),
                roles=tuple(settings.check_roles(name)),
                timeout=settings.check_timeout(name),
                fail_policy=settings.check_fail_policy(name),
            ))
        link_checks([slot.check for slot in slots])
        return cls(slots)

    # -- the five phases ------------------------------------------------------------------
    async def connect(self, session: Session) -> Verdict:
        return await self._run("connect", session, (session,))

    async def helo(self, session: Session, hostname: str) -> Verdict:
        return await self._run("helo", session, (session, hostname))

    async def mail_from(self, session: Session, address: str) -> Verdict:
        return await self._run("mail_from", session, (session, address))

    async def rcpt(self, session: Session, address: str) -> Verdict:
        return await self._run("rcpt", session, (session, address))

    async def data(self, envelope: Envelope, message_path: str) -> Verdict:
        return await self._run("data", envelope.session, (envelope, message_path))

    @classmethod
    def from_config(cls, config: Any, directory: Any = None) -> "Pipeline":
        """From a whole ``pymail.config.Config`` (hostname and var_dir come from it)."""
        return cls.from_settings(config.filters, directory, config.server.hostname, str(config.var_dir))

    def deferred(self, phase: str, *args: Any):
        """The same as ``await pipeline.<phase>(*args)``, as a Twisted Deferred."""
        from twisted.internet import defer

        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        return defer.Deferred.fromFuture(asyncio.ensure_future(getattr(self, phase)(*args)))

    async def close(self) -> None:
        for slot in self.slots:
            await slot.check.close()

    # -- running ----------------------------------------------------------------------------
    def _applies(self, slot: CheckSlot, session: Session) -> bool:
        if session.listener_role not in slot.roles:
            return False
        if session.authenticated_user and not slot.check.runs_for_authenticated:
            return False
        return True

    async def _run(self, phase: str, session: Session, args: tuple) -> Verdict:
        slots = [s for s in self.slots if self._applies(s, session)]
        if not slots:
            return merge([])
        results = await asyncio.gather(*(self._run_one(s, phase, args) for s in slots))
        return merge(results)

    async def _run_one(self, slot: CheckSlot, phase: str, args: tuple) -> Verdict:
        name = slot.check.name
        try:
            verdict = await asyncio.wait_for(getattr(slot.check, phase)(*args), slot.timeout)
        except FilterError as exc:
            exc.check = exc.check or name
            return exc.verdict()
        except asyncio.TimeoutError:
            reason = f"no answer within {slot.timeout:g} s"
        except BackendUnavailable as exc:
            reason = str(exc) or "backend unavailable"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a check must not crash the SMTP session
            log.exception("filter %s failed in phase %s", name, phase)
            reason = f"internal error ({type(exc).__name__})"
        else:
            verdict.check = verdict.check or name
            return verdict
        return self._fail(slot, reason)

    @staticmethod
    def _fail(slot: CheckSlot, reason: str) -> Verdict:
        name = slot.check.name
        note = f"{name}: {reason}; fail policy {slot.fail_policy}"
        log.warning("filter %s", note)
        if slot.fail_policy == "accept":
            return Verdict.accept([(UNCHECKED_HEADER, f"{name} ({reason})")], check=name, notes=[note])
        return Verdict.tempfail(text=f"{name} is unavailable, try again later", check=name, notes=[note])


def merge(verdicts: list[Verdict]) -> Verdict:
    """One verdict from several, in check order (see the module docstring)."""
    merged = Verdict()
    for v in verdicts:
        if v.action > merged.action:
            merged.action, merged.reply, merged.check = v.action, v.reply, v.check
        merged.headers.extend(v.headers)
        for name in v.remove_headers:
            if name.lower() not in (n.lower() for n in merged.remove_headers):
                merged.remove_headers.append(name)
        for rcpt, disposition in v.recipients.items():
            old = merged.recipients.get(rcpt)
            if old is None or disposition.reject or (disposition.folder == "Junk" and not old.reject):
                merged.recipients[rcpt] = disposition
        merged.spam = merged.spam or v.spam
        merged.virus = merged.virus or v.virus
        merged.notes.extend(v.notes)
    if merged.action in (Action.ACCEPT, Action.QUARANTINE):
        merged.reply = None
    if merged.action == Action.QUARANTINE:
        who = ", ".join(dict.fromkeys(v.check or "filter" for v in verdicts if v.action == Action.QUARANTINE))
        merged.headers.append((QUARANTINE_HEADER, who))
    if QUARANTINE_HEADER.lower() not in (n.lower() for n in merged.remove_headers):
        merged.remove_headers.append(QUARANTINE_HEADER)
    return merged
