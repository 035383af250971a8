"""Fixtures for the filters tests: real clamd and spamd, started once per session."""

from __future__ import annotations

import asyncio

import pytest

from pymail.testing import services


@pytest.fixture(scope="session")
def clamd():
    with services.clamd_service() as service:
        yield service


@pytest.fixture(scope="session")
def spamd():
    with services.spamd_service() as service:
        yield service


@pytest.fixture
def run():
    """Run a coroutine to completion on a fresh event loop, bounded by a timeout."""
    def runner(coro, timeout: float = 60.0):
        return asyncio.run(asyncio.wait_for(coro, timeout))
    return runner


@pytest.fixture
def directory(tmp_path):
    from pymail.directory import Directory

    d = Directory(f"sqlite:///{tmp_path / 'directory.sqlite'}", bcrypt_rounds=4)
    d.create_schema()
    d.add_domain("example.com")
    for user in ("alice", "bob", "carol"):
        d.add_user(f"{user}@example.com", "password-1234")
    yield d
    d.close()
