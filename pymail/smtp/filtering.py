"""The SMTP side of the filters seam (docs/seams.md "Filters and queue", pymail/filters/api.py).

The session calls the configured checks once per SMTP phase (connect, HELO, MAIL, RCPT, DATA).
A refusing verdict becomes the reply of that command: a virus is refused during DATA, before the
final reply, so nothing is queued and nothing is bounced. Accepting verdicts may add headers
(spam score, virus-scanned) and remove forged copies of them; the spool file is then rewritten
(streaming, in a thread) before it is queued. With no checks configured this module costs
nothing: ``filters_for(ctx)`` returns None.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pymail.runtime import run_blocking
from pymail.smtp.errors import SmtpError

log = logging.getLogger(__name__)


def filters_for(ctx):
    """The shared ``Filters`` of this process, or None when no check is configured."""
    settings = getattr(ctx.config, "filters", None)
    if settings is None or not settings.checks:
        return None
    if "smtp_filters" not in ctx.extras:
        from pymail.filters.pipeline import Pipeline

        # from_config: Authentication-Results names this host, DKIM keys live under var_dir
        ctx.extras["smtp_filters"] = Filters(Pipeline.from_config(ctx.config, ctx.directory))
    return ctx.extras["smtp_filters"]


class Filters:
    def __init__(self, pipeline):
        self.pipeline = pipeline

    @staticmethod
    def session_view(session):
        """The checks' view of the connection: one object for the whole connection, so what a
        check learns in one phase (``facts``: DNSBL hits, SPF) is there in the later ones."""
        from pymail.filters.api import Session as FilterSession

        view = getattr(session, "filter_session", None)
        if view is None:
            view = FilterSession(remote_ip=session.peer_ip, remote_port=session.peer_port,
                                 listener_role=session.role)
            session.filter_session = view
        view.helo = session.helo
        view.tls = session.secure
        view.authenticated_user = session.auth_user
        return view

    async def check(self, phase: str, session, *args) -> None:
        """Run one phase; raise SmtpError if the merged verdict refuses."""
        verdict = await self.pipeline.deferred(phase, self.session_view(session), *args)
        _raise_if_refused(verdict)

    async def check_data(self, session, sender: str, rcpts: list[str], path: Path) -> set[str]:
        """Run the DATA phase on the spooled message; rewrites it in place with the verdict's
        headers. Returns the recipients (lower-cased) whose own settings refuse the message,
        which only LMTP can honour (one reply per recipient)."""
        from pymail.filters.api import Envelope as FilterEnvelope

        envelope = FilterEnvelope(self.session_view(session), sender, list(rcpts))
        verdict = await self.pipeline.deferred("data", envelope, str(path))
        for note in getattr(verdict, "notes", []) or []:
            log.info("filters: %s", note)
        _raise_if_refused(verdict)
        if verdict.headers or verdict.remove_headers:
            await run_blocking(_rewrite, path, verdict)
        return {addr.lower() for addr, d in (verdict.recipients or {}).items() if d.reject}


def _raise_if_refused(verdict) -> None:
    if verdict.refused and verdict.reply is not None:
        r = verdict.reply
        raise SmtpError(r.code, r.enhanced, " ".join(r.text.split()))


def _rewrite(path: Path, verdict) -> None:
    from pymail.filters.headers import rewrite_file

    tmp = path.with_name(path.name + ".filtered")
    rewrite_file(str(path), str(tmp), verdict)
    os.replace(tmp, path)
