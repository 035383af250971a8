"""RCPT keeps positive recipient resolutions for RESOLVE_TTL seconds; never negative ones."""

from __future__ import annotations

import smtplib
import time

import pytest

from pymail.smtp import mail


def rcpt(port: int, address: str) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("a@remote.test")
        return c.rcpt(address)[0]


@pytest.fixture
def counted(mailsys, monkeypatch):
    calls: list[str] = []
    real = mailsys.directory.resolve_recipient

    def resolve(address):
        calls.append(address)
        return real(address)

    monkeypatch.setattr(mailsys.directory, "resolve_recipient", resolve)
    return calls


def test_known_recipient_is_looked_up_once(mailsys, counted):
    port = mailsys.listen("mx")
    assert rcpt(port, "bob@example.org") == 250
    assert rcpt(port, "BOB@example.org") == 250
    assert counted == ["bob@example.org"]


def test_unknown_recipient_is_not_cached(mailsys, counted):
    port = mailsys.listen("mx")
    assert rcpt(port, "carol@example.org") == 550
    mailsys.add_user("carol@example.org")
    assert rcpt(port, "carol@example.org") == 250  # no stale 550 for a new user


def test_deleted_recipient_is_refused_after_the_ttl(mailsys, monkeypatch):
    monkeypatch.setattr(mail, "RESOLVE_TTL", 0.3)
    port = mailsys.listen("mx")
    assert rcpt(port, "bob@example.org") == 250
    mailsys.directory.delete_user("bob@example.org")
    time.sleep(0.4)
    assert rcpt(port, "bob@example.org") == 550


def test_another_directory_never_sees_the_answers(mailsys, tmp_path):
    from pymail.directory.directory import Directory

    port = mailsys.listen("mx")
    assert rcpt(port, "bob@example.org") == 250
    other = Directory(f"sqlite:///{tmp_path / 'other.sqlite'}", bcrypt_rounds=4)
    other.create_schema()
    assert mail.resolve_cache.get(other, "bob@example.org") is None
    assert mail.resolve_cache.get(mailsys.directory, "bob@example.org") is not None
    other.close()
