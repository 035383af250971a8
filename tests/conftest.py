"""Shared fixtures: a reactor thread, temporary var/ trees, a self-signed certificate."""

from __future__ import annotations

import pytest

from pymail.testing import reactor_thread


@pytest.fixture(scope="session")
def reactor():
    """The asyncio reactor running in a background thread for the whole session."""
    return reactor_thread.start()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """(cert_path, key_path) of a self-signed certificate for 127.0.0.1/localhost."""
    from pymail.tls import ensure_self_signed

    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    ensure_self_signed(cert, key, "localhost")
    return cert, key


@pytest.fixture(scope="session")
def tls_context(tls_files):
    """A Twisted server context factory for the test certificate."""
    from pymail.tls import server_context

    return server_context(*tls_files)


@pytest.fixture
def client_ssl_context():
    """A stdlib client SSLContext that accepts the self-signed test certificate."""
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx
