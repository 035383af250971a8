"""Pipeline: concurrency, timeouts, fail policies, merging, roles, settings, header rewriting."""

from __future__ import annotations

import asyncio
import io
import time

import pytest

from pymail.config import ConfigError, parse_config
from pymail.filters.api import (Action, BackendUnavailable, Check, Envelope, FilterError, Session,
                                SmtpReply, Verdict)
from pymail.filters.headers import rewrite
from pymail.filters.pipeline import QUARANTINE_HEADER, UNCHECKED_HEADER, CheckSlot, Pipeline, merge
from pymail.filters.settings import FilterSettings


class Fixed(Check):
    """A check whose data phase sleeps, then returns (or raises) what it was given."""

    def __init__(self, name, result=None, delay=0.0, runs_for_authenticated=True):
        self.name = name
        self.result = result if result is not None else Verdict()
        self.delay = delay
        self.runs_for_authenticated = runs_for_authenticated
        self.calls = 0

    async def data(self, envelope, message_path):
        self.calls += 1
        await asyncio.sleep(self.delay)
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result

    async def rcpt(self, session, address):
        if address.startswith("bad"):
            raise FilterError(SmtpReply(550, "5.1.1", "no such user"))
        return Verdict()


def envelope(role="mx", user=None):
    return Envelope(Session("192.0.2.1", 4000, role, authenticated_user=user), "s@example.org", ["a@example.com"])


def test_checks_of_one_phase_run_concurrently(run):
    checks = [Fixed(f"c{i}", delay=0.3) for i in range(4)]
    pipeline = Pipeline([CheckSlot(c) for c in checks])
    start = time.monotonic()
    verdict = run(pipeline.data(envelope(), "/nonexistent"))
    elapsed = time.monotonic() - start
    assert verdict.action == Action.ACCEPT and verdict.reply is None
    assert elapsed < 0.9, f"4 checks of 0.3 s took {elapsed:.2f} s: not concurrent"
    assert all(c.calls == 1 for c in checks)


def test_timeout_gets_tempfail_451_by_default(run):
    pipeline = Pipeline([CheckSlot(Fixed("slow", delay=5), timeout=0.2), CheckSlot(Fixed("fast"))])
    start = time.monotonic()
    verdict = run(pipeline.data(envelope(), "/x"))
    assert time.monotonic() - start < 2
    assert verdict.action == Action.TEMPFAIL
    assert verdict.reply.line().startswith("451 4.7.1 ")
    assert "slow" in verdict.reply.text and verdict.check == "slow"


def test_accept_policy_tags_the_message(run):
    pipeline = Pipeline([CheckSlot(Fixed("down", BackendUnavailable("connection refused")), fail_policy="accept")])
    verdict = run(pipeline.data(envelope(), "/x"))
    assert verdict.action == Action.ACCEPT and not verdict.refused
    assert verdict.headers == [(UNCHECKED_HEADER, "down (connection refused)")]
    assert "fail policy accept" in verdict.notes[0]


def test_a_bug_in_a_check_is_a_backend_failure_not_a_crash(run, caplog):
    pipeline = Pipeline([CheckSlot(Fixed("buggy", ZeroDivisionError("x")))])
    verdict = run(pipeline.data(envelope(), "/x"))
    assert verdict.action == Action.TEMPFAIL and verdict.reply.code == 451
    assert "internal error (ZeroDivisionError)" in verdict.notes[0]


def test_filter_error_maps_to_its_reply(run):
    pipeline = Pipeline([CheckSlot(Fixed("users"))])
    verdict = run(pipeline.rcpt(Session(), "bad@example.com"))
    assert verdict.action == Action.REJECT and verdict.reply.line() == "550 5.1.1 no such user"
    assert run(pipeline.rcpt(Session(), "good@example.com")).reply is None


def test_merge_strongest_action_wins_first_reply_among_equals():
    r1 = Verdict.reject(554, "5.7.1", "virus", check="clamd", virus="V")
    r2 = Verdict.reject(550, "5.7.1", "spam", check="spamd")
    t = Verdict.tempfail(check="dns")
    q = Verdict.quarantine([("X-A", "1")])
    a = Verdict.accept([("X-B", "2")])
    merged = merge([a, q, t, r1, r2])
    assert merged.action == Action.REJECT and merged.reply.text == "virus" and merged.virus == "V"
    assert merged.headers == [("X-B", "2"), ("X-A", "1")]
    assert merge([a, t, q]).action == Action.TEMPFAIL
    quarantined = merge([a, q])
    assert quarantined.action == Action.QUARANTINE and quarantined.reply is None
    assert QUARANTINE_HEADER in quarantined.remove_headers and merge([a]).remove_headers == [QUARANTINE_HEADER]
    assert quarantined.folder_for("x@example.com") == "Junk"
    assert merge([a]).folder_for("x@example.com") == "INBOX"


def test_roles_and_authenticated_submissions(run):
    virus = Fixed("virus", Verdict.reject(554, "5.7.1", "virus"))
    spam = Fixed("spam", Verdict.quarantine(), runs_for_authenticated=False)
    pipeline = Pipeline([CheckSlot(virus, roles=("mx", "submission")), CheckSlot(spam, roles=("mx", "submission"))])
    # Authenticated submission: virus-scanned, spam check skipped.
    verdict = run(pipeline.data(envelope("submission", user="a@example.com"), "/x"))
    assert verdict.action == Action.REJECT and spam.calls == 0 and virus.calls == 1
    # LMTP is not among the roles: nothing runs.
    assert run(pipeline.data(envelope("lmtp"), "/x")).action == Action.ACCEPT
    assert virus.calls == 1


def test_deferred_on_the_twisted_reactor(reactor):
    from pymail.testing import reactor_thread

    pipeline = Pipeline([CheckSlot(Fixed("slow", delay=0.05, result=Verdict.quarantine([("X-Q", "1")])))])
    verdict = reactor_thread.call(pipeline.deferred, "data", envelope(), "/x")
    assert verdict.action == Action.QUARANTINE
    assert verdict.headers == [("X-Q", "1"), (QUARANTINE_HEADER, "slow")]  # local delivery files it to Junk


def test_settings_are_validated_by_the_config_loader():
    config = parse_config({"filters": {"checks": ["clamd"], "clamd": "tcp:127.0.0.1:3310",
                                       "fail_policy": {"clamd": "accept"}, "timeouts": {"clamd": 3}}})
    pipeline = Pipeline.from_settings(config.filters)
    slot = pipeline.slots[0]
    assert slot.check.name == "clamd" and slot.fail_policy == "accept" and slot.timeout == 3.0
    assert slot.roles == ("mx", "submission", "lmtp")
    assert FilterSettings().check_roles("spamd") == ["mx", "lmtp"]
    bad = [
        ({"checks": ["clamav"]}, "unknown check"),
        ({"checks": ["clamd"]}, "no address"),
        ({"fail_policy": {"clamd": "drop"}}, "is not one of"),
        ({"roles": {"spamd": ["imap"]}}, "is not one of"),
        ({"clamd": "127.0.0.1:3310"}, "tcp: or unix:"),
    ]
    for section, message in bad:
        with pytest.raises(ConfigError, match=message):
            parse_config({"filters": section})


def test_rewrite_removes_forged_headers_and_prepends_ours():
    verdict = Verdict.accept([("X-Spam-Flag", "NO"), ("X-Spam-Score", "0.1")],
                             remove_headers=["X-Spam-Flag", "X-Spam-Status", "X-Spam-Score"])
    source = (b"X-Spam-Status: No, score=-100\r\n\ttests=FORGED\r\nSubject: hi\r\n"
              b"x-spam-flag: NO\r\nFrom: a@example.org\r\n\r\nX-Spam-Flag: body line stays\r\n")
    out = io.BytesIO()
    rewrite(io.BytesIO(source), out, verdict)
    assert out.getvalue() == (b"X-Spam-Flag: NO\r\nX-Spam-Score: 0.1\r\nSubject: hi\r\n"
                              b"From: a@example.org\r\n\r\nX-Spam-Flag: body line stays\r\n")
