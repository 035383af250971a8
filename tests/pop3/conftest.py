"""POP3 session fixtures: a real Store and Directory in tmp_path, real listeners, real TLS."""

from __future__ import annotations

import poplib
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

import pytest

from pymail.config import Config, ListenerConfig
from pymail.pop3.settings import Pop3Settings
from pymail.testing import reactor_thread

USER = "alice@example.org"
PASSWORD = "correct horse"
FAILURE_DELAY = 0.2


@dataclass
class Pop3Env:
    store: Any
    directory: Any
    authenticator: Any
    tls: Any
    client_ssl: ssl.SSLContext
    ports: list = field(default_factory=list)
    factories: list = field(default_factory=list)
    user: str = USER
    password: str = PASSWORD
    failure_delay: float = FAILURE_DELAY

    def serve(self, tls: str = "starttls", allow_plaintext_auth: bool = False,
              settings: Pop3Settings | None = None) -> int:
        """Start a POP3 listener on 127.0.0.1; returns its port."""
        from pymail.pop3.server import make_factory
        from pymail.server.context import ServiceContext

        config = Config()
        if settings is not None:
            config.pop3 = settings
        ctx = ServiceContext(config=config, hostname="localhost", store=self.store,
                             directory=self.directory, authenticator=self.authenticator,
                             tls=self.tls)
        listener = ListenerConfig(role="pop3", port=0, tls=tls,
                                  allow_plaintext_auth=allow_plaintext_auth)
        factory = make_factory(ctx, listener)
        port = reactor_thread.listen_tcp(factory, self.tls if tls == "implicit" else None)
        self.ports.append(port)
        self.factories.append(factory)
        return port.getHost().port

    def deliver(self, raw: bytes, user: str = USER) -> int:
        return self.store.account(user).deliver(raw).uid

    def inbox(self, user: str = USER):
        return self.store.account(user).mailbox("INBOX")

    def uids(self, user: str = USER) -> list[int]:
        with self.inbox(user) as mailbox:
            mailbox.sync()
            return [r.uid for r in mailbox.records()]

    def client(self, port: int, login: bool = True, user: str = USER,
               password: str = PASSWORD) -> poplib.POP3:
        """poplib over STLS, logged in unless told otherwise."""
        pop = poplib.POP3("127.0.0.1", port, timeout=10)
        pop.stls(context=self.client_ssl)
        if login:
            pop.user(user)
            pop.pass_(password)
        return pop

    def client_ssl_implicit(self, port: int) -> poplib.POP3_SSL:
        return poplib.POP3_SSL("127.0.0.1", port, context=self.client_ssl, timeout=10)

    def raw(self, port: int) -> "RawClient":
        return RawClient(socket.create_connection(("127.0.0.1", port), timeout=10))


class RawClient:
    """A bare socket for what poplib cannot do: pipelining, STLS with a pipelined tail."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed; pending {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def multiline(self) -> list[bytes]:
        lines = []
        while (line := self.line()) != b".":
            lines.append(line[1:] if line.startswith(b"..") else line)
        return lines

    def read_until_closed(self) -> bytes:
        data = self.buffer
        self.buffer = b""
        while chunk := self.sock.recv(65536):
            data += chunk
        return data

    def starttls(self, context: ssl.SSLContext) -> None:
        assert self.buffer == b"", self.buffer
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def pop3env(reactor, tmp_path, tls_context, client_ssl_context):
    from pymail.directory import Directory
    from pymail.directory.auth import Authenticator
    from pymail.directory.limiter import FailureLimiter
    from pymail.store import Store

    directory = Directory(f"sqlite:///{tmp_path / 'directory.sqlite'}", bcrypt_rounds=4)
    directory.create_schema()
    directory.add_domain("example.org")
    directory.add_user(USER, PASSWORD)
    directory.add_user("bob@example.org", "bob password")
    store = Store(tmp_path / "mail", fsync=False)
    store.account(USER).ensure()
    authenticator = Authenticator(directory, FailureLimiter(5, 5, 60.0),
                                  failure_delay=FAILURE_DELAY)
    env = Pop3Env(store, directory, authenticator, tls_context, client_ssl_context)
    yield env
    for port in env.ports:
        reactor_thread.call(port.stopListening)
