"""Fixtures for the load-test harness tests: small servers the tests run themselves.

SMTP: an aiosmtpd server on its own event loop in a thread (port 0). IMAP/POP3: a private
Dovecot (perf/peers) over a small generated maildir, or a skip that says Dovecot is missing.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import sys
import tempfile
import threading
from pathlib import Path

import pytest

PERF = Path(__file__).resolve().parents[2] / "perf"
if str(PERF) not in sys.path:
    sys.path.insert(0, str(PERF))

from aiosmtpd.smtp import SMTP, AuthResult  # noqa: E402

from peers import dovecot as dovecot_peer  # noqa: E402
from pymail_loadtest.maildir_data import make_maildir, user_maildir  # noqa: E402

USERS = [("user1@example.test", "secret1"), ("user2@example.test", "secret2")]


class Collect:
    """aiosmtpd handler: keeps envelopes; optionally writes each message into a maildir."""

    def __init__(self, reply: str = "250 OK", mail_root: Path | None = None):
        self.reply = reply
        self.mail_root = mail_root
        self.messages: list[tuple[str, list[str], bytes, bool]] = []
        self.counter = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("unknown@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                              bool(session.authenticated)))
        if self.mail_root is not None and self.reply.startswith("250"):
            for rcpt in envelope.rcpt_tos:
                self.counter += 1
                box = user_maildir(self.mail_root, rcpt)
                tmp = box / "tmp" / f"sink.{self.counter}"
                tmp.write_bytes(envelope.content)
                st = box.stat()
                os.chown(tmp, st.st_uid, st.st_gid)
                os.rename(tmp, box / "new" / f"sink.{self.counter}.{os.getpid()}")
        return self.reply


class SmtpThread:
    def __init__(self, handler, implicit_tls: ssl.SSLContext | None = None, **kwargs):
        self.handler, self.kwargs, self.implicit_tls = handler, kwargs, implicit_tls
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        make = lambda: SMTP(self.handler, **self.kwargs)  # noqa: E731
        fut = asyncio.run_coroutine_threadsafe(self.loop.create_server(make, "127.0.0.1", 0, ssl=self.implicit_tls),
                                               self.loop)
        self.server = fut.result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def accept_all(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"user1@example.test" and auth_data.password == b"secret1"
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server():
    """Factory: ``with smtp_server(handler, **aiosmtpd_kwargs) as srv`` → srv.port."""
    return SmtpThread


@pytest.fixture
def server_ssl(tls_files):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*tls_files)
    return ctx


def run_cli(capsys, *argv) -> tuple[int, dict, str]:
    """Run pymail-loadtest in this process; returns (exit status, the JSON summary, stdout)."""
    from pymail_loadtest.main import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return code, summary, out


def user_args() -> list[str]:
    args = []
    for name, password in USERS:
        args += ["--user", f"{name}:{password}"]
    return args


@pytest.fixture(scope="module")
def dovecot(tls_files):
    """A private Dovecot (IMAP+POP3) over two users × 40 messages, or a skip saying why."""
    if not dovecot_peer.installed():
        pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d): "
                    "the IMAP/POP3 loads are tested against it")
    # Not under pytest's tmp tree: pytest keeps /tmp/pytest-of-<user> at mode 0700 (and any
    # concurrent pytest run resets it), which Dovecot's unprivileged processes cannot cross.
    base = Path(tempfile.mkdtemp(prefix="pymail-perf-dovecot-"))
    base.chmod(0o755)
    mail_root = base / "mail"
    for name, _ in USERS:
        make_maildir(mail_root, name, 40)
    peer = dovecot_peer.DovecotPeer(base / "run", mail_root, USERS, cert=tls_files[0], key=tls_files[1])
    peer.start()
    peer.mail_root = mail_root
    try:
        yield peer
    finally:
        peer.stop()
        shutil.rmtree(base, ignore_errors=True)
