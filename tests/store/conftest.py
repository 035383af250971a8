"""Fixtures for the store tests: a Store on a tmp_path and a ready account."""

from __future__ import annotations

import pytest

from pymail.store import Store


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "mail", fsync=False)


@pytest.fixture
def account(store):
    acct = store.account("alice@example.org")
    acct.ensure()
    return acct


def msg(subject="hello", body="body text\n", sender="bob@example.net", extra=""):
    return (f"From: Bob <{sender}>\nTo: alice@example.org\nSubject: {subject}\n"
            f"Date: Mon, 30 Nov 2026 01:00:00 +0000\nMessage-ID: <{subject}@example.net>\n"
            f"{extra}\n{body}").encode()
