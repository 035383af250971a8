"""The private Postfix peer (perf/peers/postfix.py) and the SMTP load against it."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from tests.perf.conftest import run_cli
from peers import postfix as postfix_peer
from pymail_loadtest.maildir_data import make_maildir


@pytest.fixture
def workdir():
    base = Path(tempfile.mkdtemp(prefix="pymail-perf-postfix-"))  # not under pytest's 0700 tree
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def needs_postfix():
    if not postfix_peer.installed():
        pytest.skip("Postfix is not installed (apt-get install postfix, preseeded 'No configuration')")


def test_postfix_maildir_mode_accepts_and_delivers(workdir, capsys):
    needs_postfix()
    mail = workdir / "mail"
    make_maildir(mail, "user1@example.test", 1)
    peer = postfix_peer.PostfixPeer(workdir / "pf", mode="maildir", mail_root=mail, users=["user1@example.test"])
    with peer:
        assert peer.pid is not None
        code, summary, out = run_cli(capsys, "smtp", "--port", peer.smtp_port, "--to", "user1@example.test",
                                     "--sessions", 2, "--count", 20, "--duration", 20, "--progress", 0)
        assert code == 0, out
        assert summary["ops"]["message"]["count"] == 20
        new = mail / "example.test" / "user1" / "Maildir" / "new"
        deadline = time.monotonic() + 20
        while len(list(new.iterdir())) < 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(list(new.iterdir())) == 20
    assert peer.pid is None or not Path(f"/proc/{peer.pid}").exists()


def test_postfix_submission_with_dovecot_sasl(workdir, tls_files, capsys):
    needs_postfix()
    from peers import dovecot as dovecot_peer

    if not dovecot_peer.installed():
        pytest.skip("Dovecot is not installed: Postfix's submission port authenticates through it")
    mail = workdir / "mail"
    users = [("user1@example.test", "secret1"), ("user2@example.test", "secret2")]
    for name, _ in users:
        make_maildir(mail, name, 1)
    with dovecot_peer.DovecotPeer(workdir / "dv", mail, users) as dovecot, \
            postfix_peer.PostfixPeer(workdir / "pf", mode="maildir", mail_root=mail, users=[u for u, _ in users],
                                     sasl_socket=dovecot.auth_socket, cert=tls_files[0], key=tls_files[1]) as peer:
        assert peer.submission_port
        code, summary, out = run_cli(capsys, "smtp", "--port", peer.submission_port, "--tls", "starttls", "--auth",
                                     "--user", "user1@example.test:secret1", "--user", "user2@example.test:secret2",
                                     "--to", "user1@example.test", "--sessions", 2, "--count", 6, "--duration", 20,
                                     "--progress", 0)
        assert code == 0, out
        assert summary["ops"]["message"]["count"] == 6
        bad, summary, _ = run_cli(capsys, "smtp", "--port", peer.submission_port, "--tls", "starttls", "--auth",
                                  "--user", "user1@example.test:wrong", "--to", "user1@example.test",
                                  "--sessions", 1, "--count", 1, "--duration", 1, "--progress", 0, "--json-only")
        assert bad == 1 and any("535" in e for e in summary["error_samples"])
        plain, summary, _ = run_cli(capsys, "smtp", "--port", peer.submission_port, "--to", "user1@example.test",
                                    "--sessions", 1, "--count", 1, "--duration", 1, "--progress", 0, "--json-only")
        assert plain == 1  # no TLS on submission: refused (smtpd_tls_security_level=encrypt)
