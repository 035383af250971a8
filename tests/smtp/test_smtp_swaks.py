"""Debian's swaks against pymail: STARTTLS + AUTH on submission, implicit TLS, PIPELINING, LMTP."""

from __future__ import annotations

import shutil
import subprocess

import pytest

SWAKS = shutil.which("swaks")
pytestmark = pytest.mark.skipif(SWAKS is None, reason="swaks is not installed (apt-get install swaks)")


def swaks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SWAKS, "--server", "127.0.0.1", "--helo", "swaks.test", "--timeout", "10",
                           *args], capture_output=True, text=True, timeout=60)


def test_swaks_submission_starttls_auth_plain(mailsys):
    port = mailsys.listen("submission")
    r = swaks("--port", str(port), "--tls", "--auth", "PLAIN", "--auth-user", "alice@example.org",
              "--auth-password", "secret", "--from", "alice@example.org", "--to", "bob@example.org",
              "--header", "Subject: from swaks")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "235 2.7.0" in r.stdout and "queued as" in r.stdout
    raw = mailsys.wait_for(lambda: mailsys.inbox("bob@example.org"), what="delivery")[0]
    assert b"Subject: from swaks" in raw


def test_swaks_smtps_auth_login_pipelining(mailsys, tls_context):
    port = mailsys.listen("submission", implicit_ctx=tls_context)
    r = swaks("--port", str(port), "--tlsc", "--pipeline", "--auth", "LOGIN", "--auth-user", "alice@example.org",
              "--auth-password", "secret", "--from", "sales@example.org", "--to", "bob@example.org,alice@example.org")
    assert r.returncode == 0, r.stdout + r.stderr
    mailsys.wait_for(lambda: mailsys.inbox("bob@example.org") and mailsys.inbox("alice@example.org"),
                     what="delivery to both")


def test_swaks_wrong_password_fails(mailsys, tls_context):
    port = mailsys.listen("submission", implicit_ctx=tls_context)
    r = swaks("--port", str(port), "--tlsc", "--auth", "PLAIN", "--auth-user", "alice@example.org",
              "--auth-password", "nope", "--from", "alice@example.org", "--to", "bob@example.org")
    assert r.returncode != 0
    assert "535 5.7.8" in r.stdout


def test_swaks_mx_relay_denied_and_lmtp(mailsys):
    mailsys.smtp.trusted_networks = []
    mx = mailsys.listen("mx")
    r = swaks("--port", str(mx), "--from", "x@ext.test", "--to", "victim@ext.test")
    assert r.returncode != 0 and "554 5.7.1" in r.stdout
    lmtp = mailsys.listen("lmtp", tls="none")
    r = swaks("--port", str(lmtp), "--protocol", "LMTP", "--from", "x@ext.test",
              "--to", "alice@example.org,bob@example.org")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("250 2.1.5 <") == 2
    assert mailsys.inbox("alice@example.org") and mailsys.inbox("bob@example.org")
