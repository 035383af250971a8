"""ManageSieve (RFC 5804) over real sockets and TLS, with a small raw client and sieve-connect."""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess

import pytest

from pymail.config import ListenerConfig, parse_config
from pymail.filters.managesieve import make_factory
from pymail.filters.managesieve.wire import Reader, WireError
from pymail.server.context import ServiceContext
from pymail.store import Store
from pymail.testing import reactor_thread


@pytest.fixture
def server(reactor, directory, tmp_path, tls_context):
    from pymail.directory.auth import Authenticator

    store = Store(tmp_path / "mail", fsync=False)
    ctx = ServiceContext(config=parse_config({}), hostname="localhost", store=store, directory=directory,
                         authenticator=Authenticator(directory, failure_delay=0.0), tls=tls_context)
    ports = []

    def start(tls="starttls", plaintext=False):
        listener = ListenerConfig(role="managesieve", port=0, tls=tls, allow_plaintext_auth=plaintext)
        port = reactor_thread.listen_tcp(make_factory(ctx, listener), tls_context if tls == "implicit" else None)
        ports.append(port)
        return port.getHost().port, store

    yield start
    for port in ports:
        reactor_thread.call(port.stopListening)


class Client:
    def __init__(self, port, ssl_context=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")

    def read(self):
        """Lines (literals inlined) up to and including the OK/NO/BYE line."""
        lines = []
        while True:
            line = self.file.readline()
            assert line, "connection closed"
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                line = line[:m.start()] + self.file.read(int(m.group(1))) + self.file.readline()
            lines.append(line.decode())
            if re.match(r"(OK|NO|BYE)\b", line.decode()):
                return lines

    def cmd(self, text: bytes | str):
        self.sock.sendall(text.encode() if isinstance(text, str) else text)
        return self.read()

    def starttls(self, ssl_context):
        assert self.cmd("STARTTLS\r\n")[-1].startswith("OK")
        self.sock = ssl_context.wrap_socket(self.sock)
        self.file = self.sock.makefile("rb")
        return self.read()  # capabilities again (RFC 5804 §2.2.1)

    def login(self, user="alice@example.com", password="password-1234"):
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        return self.cmd(f'AUTHENTICATE "PLAIN" "{token}"\r\n')[-1]


def literal(text: str) -> str:
    return "{%d+}\r\n%s" % (len(text.encode()), text)


def test_greeting_starttls_login_and_script_lifecycle(server, client_ssl_context):
    port, store = server()
    c = Client(port)
    greeting = c.read()
    assert '"STARTTLS"\r\n' in greeting and '"SASL" ""\r\n' in greeting
    assert any(line.startswith('"SIEVE" "') and "vacation" in line for line in greeting)
    assert c.login().startswith("NO (ENCRYPT-NEEDED)")
    caps = c.starttls(client_ssl_context)
    assert '"SASL" "PLAIN"\r\n' in caps and not any("STARTTLS" in line for line in caps)
    assert c.cmd("LISTSCRIPTS\r\n")[-1].startswith("NO")  # not logged in yet
    assert c.login(password="wrong") .startswith("NO")
    assert c.login() == 'OK "logged in"\r\n'
    script = 'require "fileinto";\r\nif header :contains "subject" "x" { fileinto "X"; }\r\n'
    assert c.cmd(f'HAVESPACE "main" {len(script)}\r\n')[-1].startswith("OK")
    assert c.cmd(f'PUTSCRIPT "main" {literal(script)}\r\n')[-1].startswith("OK")
    assert c.cmd('PUTSCRIPT "other" "keep;"\r\n')[-1].startswith("OK")
    assert c.cmd('SETACTIVE "main"\r\n')[-1].startswith("OK")
    assert c.cmd("LISTSCRIPTS\r\n") == ['"main" ACTIVE\r\n', '"other"\r\n', 'OK "listscripts completed"\r\n']
    got = c.cmd('GETSCRIPT "main"\r\n')
    assert got[0] == script + "\r\n" and got[-1].startswith("OK")
    assert c.cmd('DELETESCRIPT "main"\r\n')[-1].startswith("NO (ACTIVE)")
    assert c.cmd('RENAMESCRIPT "main" "renamed"\r\n')[-1].startswith("OK")
    assert c.cmd('DELETESCRIPT "other"\r\n')[-1].startswith("OK")
    assert c.cmd('GETSCRIPT "other"\r\n')[-1].startswith("NO (NONEXISTENT)")
    assert c.cmd("NOOP \"t1\"\r\n")[-1] == 'OK (TAG "t1") "done"\r\n'
    assert c.cmd("LOGOUT\r\n")[-1].startswith("OK")
    # On disk, Dovecot's layout: ~/sieve/renamed.sieve and ~/.dovecot.sieve -> sieve/renamed.sieve
    home = os.path.dirname(store.account("alice@example.com").root)
    assert os.readlink(os.path.join(home, ".dovecot.sieve")) == "sieve/renamed.sieve"


def test_checkscript_and_putscript_report_line_numbers(server, client_ssl_context):
    port, _ = server(tls="implicit")
    c = Client(port, client_ssl_context)
    greeting = c.read()
    assert '"SASL" "PLAIN"\r\n' in greeting
    assert c.login().startswith("OK")
    bad = 'require "fileinto";\r\nkeep;\r\nfileinto "x"\r\nstop;\r\n'
    reply = c.cmd(f"CHECKSCRIPT {literal(bad)}\r\n")[-1]
    assert reply.startswith('NO "line 4: expected') or reply.startswith("NO {")
    assert "line 4" in reply
    assert c.cmd(f"CHECKSCRIPT {literal('keep;')}\r\n")[-1].startswith("OK")
    assert "line 1" in c.cmd('PUTSCRIPT "x" "vacation \\"gone\\";"\r\n')[-1]
    assert c.cmd("LISTSCRIPTS\r\n") == ['OK "listscripts completed"\r\n']


def test_sasl_continuation_and_abort(server):
    port, _ = server(plaintext=True)
    c = Client(port)
    c.read()
    assert c.sock.sendall(b'AUTHENTICATE "PLAIN"\r\n') is None
    assert c.file.readline() == b'""\r\n'
    assert c.cmd('"*"\r\n')[-1].startswith("NO")
    c.sock.sendall(b'AUTHENTICATE "PLAIN"\r\n')
    assert c.file.readline() == b'""\r\n'
    token = base64.b64encode(b"\0alice@example.com\0password-1234").decode()
    assert c.cmd(f'"{token}"\r\n')[-1].startswith("OK")


def test_bad_input_gets_protocol_errors_not_crashes(server):
    port, _ = server(plaintext=True)
    c = Client(port)
    c.read()
    assert c.cmd("FROBNICATE\r\n")[-1].startswith("NO")
    assert c.cmd('CAPABILITY "extra"\r\n')[-1].startswith("NO")
    assert c.cmd('"no command"\r\n')[-1].startswith("NO")
    assert c.cmd("@@@\r\n")[-1].startswith("NO")
    assert c.cmd("PUTSCRIPT {999999999+}\r\n")[-1].startswith("BYE")


def test_starttls_discards_injected_commands(server, client_ssl_context):
    port, _ = server()
    c = Client(port)
    c.read()
    # A command smuggled in the same packet as STARTTLS must not run after TLS starts.
    c.sock.sendall(b"STARTTLS\r\nLOGOUT\r\n")
    assert c.file.readline().startswith(b"OK")
    c.sock = client_ssl_context.wrap_socket(c.sock)
    c.file = c.sock.makefile("rb")
    caps = c.read()
    assert caps[-1] == 'OK "TLS active"\r\n'
    assert c.cmd("CAPABILITY\r\n")[-1].startswith("OK")  # still connected: LOGOUT was dropped


def test_reader_limits():
    r = Reader(max_literal=10)
    r.feed(b'PUTSCRIPT "a" {3+}\r\nab')
    assert r.next() is None
    r.feed(b"c\r\n")
    assert r.next()[1:] == [b"a", b"abc"]
    r.feed(b"X {11+}\r\n")
    with pytest.raises(WireError):
        r.next()


def test_sieve_connect_uploads_lists_and_activates(server, tmp_path):
    assert shutil.which("sieve-connect"), "install the Debian package sieve-connect (bin/test does)"
    port, store = server()
    script = tmp_path / "vacation.sieve"
    script.write_text('require "vacation";\nvacation :days 3 "Away until Monday.";\n')
    base = ["sieve-connect", "-s", "127.0.0.1", "-p", str(port), "-u", "alice@example.com",
            "--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN"]

    def run(*args):
        return subprocess.run(base + list(args), input="password-1234\n", capture_output=True, text=True,
                              timeout=30)

    up = run("--upload", "--localsieve", str(script), "--remotesieve", "away")
    assert up.returncode == 0, up.stderr
    act = run("--activate", "--remotesieve", "away")
    assert act.returncode == 0, act.stderr
    listing = run("--list")
    assert listing.returncode == 0 and listing.stdout.strip() == '"away" ACTIVE', listing.stdout
    home = os.path.dirname(store.account("alice@example.com").root)
    assert open(os.path.join(home, "sieve", "away.sieve")).read() == script.read_text()
