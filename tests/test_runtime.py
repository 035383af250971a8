"""The test reactor thread and TLS helpers work with real sockets."""

import socket
import ssl

from twisted.internet import protocol

from pymail.testing import reactor_thread


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


def test_reactor_serves_plain_and_tls(reactor, tls_context, client_ssl_context):
    factory = protocol.Factory.forProtocol(Echo)
    plain = reactor_thread.listen_tcp(factory)
    tls = reactor_thread.listen_tcp(factory, tls_context)
    try:
        with socket.create_connection(("127.0.0.1", plain.getHost().port), timeout=5) as s:
            s.sendall(b"hello")
            assert s.recv(100) == b"hello"
        raw = socket.create_connection(("127.0.0.1", tls.getHost().port), timeout=5)
        with client_ssl_context.wrap_socket(raw) as s:
            s.sendall(b"secure")
            assert s.recv(100) == b"secure"
            assert s.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        reactor_thread.call(plain.stopListening)
        reactor_thread.call(tls.stopListening)


def test_reactor_is_asyncio():
    from twisted.internet import reactor

    assert reactor.__class__.__name__ == "AsyncioSelectorReactor"
