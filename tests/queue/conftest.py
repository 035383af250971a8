"""A remote world on loopback for queue tests: a DNS server and an aiosmtpd sink as remote MX."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from dataclasses import dataclass, field

import dns.message
import dns.rcode
import dns.rrset
import pytest

from pymail.smtp.testing import MailSystem


class DnsServer:
    """Answers A/AAAA/MX questions over UDP from a dict: {(name, type): [rdata text]}."""

    def __init__(self):
        self.zone: dict[tuple[str, str], list[str]] = {}
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.zone.setdefault((name.lower().rstrip("."), rdtype), []).extend(values)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            try:
                query = dns.message.from_wire(data)
            except Exception:
                continue
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().lower().rstrip(".")
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            values = self.zone.get((name, rdtype))
            if values:
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", rdtype, *values))
            elif not any(key[0] == name for key in self.zone):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    peer_port: int
    mail_options: list[str] = field(default_factory=list)
    rcpt_options: list[list[str]] = field(default_factory=list)
    login: str | None = None


class SinkHandler:
    def __init__(self):
        self.messages: list[Received] = []
        self.rcpt_replies: dict[str, list[str]] = {}  # address → replies to give in turn
        self.connections = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        replies = self.rcpt_replies.get(address.lower())
        if replies:
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        login = getattr(session, "sink_login", None)
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                                          session.ssl is not None or
                                          server.transport.get_extra_info("ssl_object") is not None,
                                          session.peer[1], list(envelope.mail_options),
                                          list(envelope.rcpt_options),
                                          login.decode() if isinstance(login, bytes) else login))
        return "250 2.0.0 sink ok"


class Sink:
    """An aiosmtpd server on its own event loop thread (the 'remote MX')."""

    def __init__(self, cert, key, auth: dict[str, str] | None = None, implicit_tls: bool = False,
                 broken_tls: bool = False):
        from aiosmtpd.smtp import SMTP, AuthResult

        self.handler = SinkHandler()
        self.protocols = []
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if broken_tls:  # demands a client certificate nobody has: every handshake fails
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cert)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        handler = self.handler

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth is not None and auth.get(auth_data.login.decode()) == auth_data.password.decode()
            if ok:
                session.sink_login = auth_data.login
            return AuthResult(success=ok)

        def factory():
            with handler.lock:
                handler.connections += 1
            kwargs = {}
            if auth is not None:
                kwargs = dict(authenticator=authenticator, auth_require_tls=not implicit_tls)
            proto = SMTP(handler, hostname="sink.remote.test", tls_context=None if implicit_tls else context,
                         enable_SMTPUTF8=True, **kwargs)
            self.protocols.append(proto)
            return proto

        async def start():
            self.server = await self.loop.create_server(factory, "127.0.0.1", 0,
                                                        ssl=context if implicit_tls else None)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(start())
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    @property
    def messages(self):
        return self.handler.messages

    def close(self) -> None:
        async def stop():
            self.server.close()
            for proto in self.protocols:  # hang up on clients too, as a dead host would
                if proto.transport is not None:
                    proto.transport.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def dns_server():
    server = DnsServer()
    yield server
    server.close()


@pytest.fixture
def make_sink(tls_files):
    """Start more sinks (smarthosts, broken servers): ``make_sink(auth=..., implicit_tls=...)``."""
    made = []

    def make(**kwargs):
        s = Sink(*tls_files, **kwargs)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


@pytest.fixture
def sink(tls_files):
    s = Sink(*tls_files)
    yield s
    s.close()


@pytest.fixture
def world(reactor, tmp_path, tls_context, dns_server, sink):
    """A mail system whose remote deliveries go to the sink through the test DNS server."""
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.1")
    system = MailSystem(tmp_path / "sys", tls=tls_context, start_runner=False,
                        dns_nameservers=["127.0.0.1"], dns_port=dns_server.port, remote_port=sink.port)
    system.add_user("alice@example.org")
    system.add_user("bob@example.org")
    system.dns = dns_server
    system.sink = sink
    yield system
    system.close()
