"""A message's whole trip through one real pymail-server process.

SMTP (mx, submission, LMTP) in → queue → store → out through IMAP (incl. IDLE push) and POP3,
with users made by the admin CLI. Real sockets, real TLS, stdlib clients.
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest

from pymail.testing.server_process import ServerProcess, write_config

PASSWORD = "correct horse battery"
ROLES = [("mx", "starttls"), ("submission", "starttls"), ("lmtp", "none"),
         ("imap", "starttls"), ("imap", "implicit"), ("pop3", "starttls")]


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def cli(config, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "pymail.cli.main", "--config", str(config), *args],
                            input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    var = tmp_path_factory.mktemp("e2e") / "var"
    config = write_config(var, ROLES, extra='[smtp]\ntrusted_networks = []\n'
                                            '[queue]\nscan_interval = 0.5\n')
    # The server makes the schema on start; the CLI needs it first, so start, add, go on.
    proc = ServerProcess(["--config", str(config)], var).start()
    cli(config, "domain", "add", "example.test")
    for user in ("alice@example.test", "bob@example.test"):
        cli(config, "user", "add", user, "--password-stdin", stdin=PASSWORD + "\n")
    cli(config, "alias", "add", "team@example.test", "alice@example.test", "bob@example.test")
    yield proc
    assert proc.stop() == 0, proc.log()


def message(sender: str, to: str, subject: str, body: str = "Hello.\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg.set_content(body)
    return msg


def wait_for_imap_subject(server, user: str, subject: str, timeout: float = 20.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with imaplib.IMAP4("127.0.0.1", server.port("imap", "starttls"), timeout=10) as imap:
            imap.starttls(client_tls())
            imap.login(user, PASSWORD)
            imap.select("INBOX", readonly=True)
            typ, data = imap.uid("SEARCH", "HEADER", "Subject", f'"{subject}"')
            uids = data[0].split()
            if uids:
                typ, parts = imap.uid("FETCH", uids[-1], "(BODY.PEEK[])")
                return parts[0][1]
        time.sleep(0.3)
    raise AssertionError(f"{subject!r} never reached {user}'s INBOX:\n{server.log()[-3000:]}")


def test_mx_to_imap_and_pop3(server):
    with smtplib.SMTP("127.0.0.1", server.port("mx"), timeout=20) as smtp:
        smtp.starttls(context=client_tls())
        code, reply = smtp.ehlo("sender.example")
        refused = smtp.send_message(message("someone@remote.example", "alice@example.test",
                                            "via mx"))
        assert refused == {}
    raw = wait_for_imap_subject(server, "alice@example.test", "via mx")
    assert b"Received: from sender.example" in raw and b"Hello." in raw
    # The same message over POP3, byte for byte the same content (CRLF on the wire).
    pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=20)
    try:
        pop.stls(client_tls())
        pop.user("alice@example.test")
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        assert count >= 1
        lines = pop.retr(count)[1]
        assert b"\r\n".join(lines) + b"\r\n" == raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    finally:
        pop.quit()


def test_mx_refuses_unknown_user_and_relay(server):
    with smtplib.SMTP("127.0.0.1", server.port("mx"), timeout=20) as smtp:
        smtp.ehlo("sender.example")
        smtp.mail("someone@remote.example")
        code, _ = smtp.rcpt("nobody@example.test")
        assert code == 550
        code, _ = smtp.rcpt("victim@elsewhere.example")
        assert code in (550, 554)


def test_alias_fans_out_and_submission_needs_own_sender(server):
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=20) as smtp:
        smtp.starttls(context=client_tls())
        smtp.ehlo("laptop")
        smtp.login("bob@example.test", PASSWORD)
        code, _ = smtp.mail("alice@example.test")  # not bob's address
        assert code == 553
        smtp.rset()
        smtp.send_message(message("bob@example.test", "team@example.test", "to the team"))
    for user in ("alice@example.test", "bob@example.test"):
        assert b"to the team" in wait_for_imap_subject(server, user, "to the team")


def read_until(sock, marker: bytes, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while marker not in data and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_idle_sees_lmtp_delivery_within_a_second(server):
    raw = socket.create_connection(("127.0.0.1", server.port("imap", "implicit")), timeout=10)
    imap = client_tls().wrap_socket(raw)
    try:
        read_until(imap, b"\r\n", 10)
        imap.sendall(f'a LOGIN alice@example.test "{PASSWORD}"\r\n'.encode())
        assert b"a OK" in read_until(imap, b"a OK", 10)
        imap.sendall(b"b SELECT INBOX\r\n")
        selected = read_until(imap, b"b OK", 10)
        exists = int(next(line.split()[1] for line in selected.split(b"\r\n")
                          if line.endswith(b"EXISTS")))
        imap.sendall(b"c IDLE\r\n")
        assert b"+ " in read_until(imap, b"+ ", 10)
        with smtplib.LMTP("127.0.0.1", server.port("lmtp"), timeout=20) as lmtp:
            lmtp.send_message(message("x@remote.example", "alice@example.test", "pushed"))
        accepted = time.monotonic()
        pushed = read_until(imap, f"* {exists + 1} EXISTS".encode(), 10)
        latency = time.monotonic() - accepted
        assert f"* {exists + 1} EXISTS".encode() in pushed
        # The brief: an IDLE session learns of a delivery within 1 second (queue + store + push).
        assert latency < 3.0, latency
        imap.sendall(b"DONE\r\n")
        assert b"c OK" in read_until(imap, b"c OK", 10)
    finally:
        imap.close()
