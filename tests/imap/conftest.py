"""IMAP test rig: a real Store and Directory in tmp_path, the IMAP factory on 127.0.0.1 port 0,
stdlib imaplib clients (plain, STARTTLS, implicit TLS)."""

from __future__ import annotations

import imaplib
import socket

import pytest

from pymail.config import Config, ListenerConfig
from pymail.imap.settings import ImapSettings
from pymail.server.context import ServiceContext
from pymail.testing import reactor_thread

USER, PASSWORD = "alice@example.org", "secret-pass"
USER2, PASSWORD2 = "bob@example.org", "bob-pass"


@pytest.fixture
def directory(tmp_path):
    from pymail.directory.directory import Directory

    d = Directory(f"sqlite:///{tmp_path}/directory.sqlite", bcrypt_rounds=4)
    d.create_schema()
    d.add_domain("example.org")
    d.add_user(USER, PASSWORD)
    d.add_user(USER2, PASSWORD2)
    yield d
    d.close()


@pytest.fixture
def store(tmp_path):
    from pymail.store import Store

    return Store(tmp_path / "mail", fsync=False)


class Server:
    def __init__(self, ctx, listener, settings, tls_ctx=None):
        from pymail.imap.protocol import ImapFactory

        self.factory = ImapFactory(ctx, listener, settings)
        self.port_obj = reactor_thread.listen_tcp(self.factory, tls_ctx)
        self.port = self.port_obj.getHost().port
        self.ctx = ctx

    def stop(self):
        reactor_thread.call(self.port_obj.stopListening)


@pytest.fixture
def make_server(reactor, directory, store, tls_context):
    from pymail.directory.auth import Authenticator

    servers = []

    def make(tls="none", allow_plaintext_auth=True, implicit=False, **settings):
        auth = Authenticator(directory, failure_delay=0.05)
        ctx = ServiceContext(config=Config(), hostname="imap.test", store=store, directory=directory,
                             authenticator=auth, tls=tls_context)
        listener = ListenerConfig(role="imap", port=0, tls="implicit" if implicit else tls,
                                  allow_plaintext_auth=allow_plaintext_auth)
        s = Server(ctx, listener, ImapSettings(**settings), tls_context if implicit else None)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


@pytest.fixture
def server(make_server):
    return make_server()


@pytest.fixture
def connect(server):
    clients = []

    def make(login=True, user=USER, password=PASSWORD, srv=None):
        c = imaplib.IMAP4("127.0.0.1", (srv or server).port, timeout=10)
        clients.append(c)
        if login:
            c.login(user, password)
        return c

    yield make
    for c in clients:
        try:
            c.shutdown()
        except OSError:
            pass


class Raw:
    """A raw socket client for byte-exact tests."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.greeting = self.line()

    def send(self, data: bytes):
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed; buffered {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line + b"\r\n"

    def until(self, tag: bytes) -> list[bytes]:
        """Lines up to and including the tagged response for ``tag``."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if ln.startswith(tag + b" "):
                return lines

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def closed(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        self.buf += data
        return data == b""

    def close(self):
        self.sock.close()


@pytest.fixture
def raw(server):
    conns = []

    def make(srv=None, login=False):
        r = Raw((srv or server).port)
        conns.append(r)
        if login:
            r.send(f"L LOGIN {USER} {PASSWORD}\r\n".encode())
            assert r.until(b"L")[-1].startswith(b"L OK")
        return r

    yield make
    for r in conns:
        r.close()


def message(subject="hello", body="body text\r\n", sender="bob@example.net", to=USER, extra=""):
    return (f"From: Bob <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
            f"Date: Mon, 30 Nov 2026 01:00:00 +0000\r\nMessage-ID: <{subject}@example.net>\r\n"
            f"{extra}\r\n{body}").encode()


def deliver(store, raw_msg, mailbox="INBOX", user=USER, flags=()):
    acct = store.account(user)
    acct.ensure()
    return acct.deliver(raw_msg, mailbox, flags=flags)
