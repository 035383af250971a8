"""HAProxy PROXY protocol (v1 and v2) in front of server-speaks-first protocols.

Twisted's ``HAProxyWrappingFactory`` starts the wrapped protocol as soon as the TCP connection
is made, so an SMTP/IMAP/POP3 greeting would be sent, and the client address read, before the
PROXY header has arrived. Here the wrapped protocol is started only once the header is parsed:
its greeting goes out after the header and ``getPeer()`` is the real client from the start.
A connection without a valid header within ``HEADER_TIMEOUT`` seconds is closed unserved.
(Header parsing is Twisted's: ``twisted.protocols.haproxy``.)
"""

from __future__ import annotations

from twisted.internet.protocol import Protocol
from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
from twisted.protocols.haproxy._v1parser import V1Parser
from twisted.protocols.haproxy._v2parser import V2Parser
from twisted.protocols.haproxy._wrapper import HAProxyProtocolWrapper, HAProxyWrappingFactory
from zope.interface import directlyProvides, providedBy

HEADER_TIMEOUT = 10.0
MAX_HEADER = 536  # PROXY v2 with TLVs stays well below this; v1 is at most 107 bytes


class HeaderFirstWrapper(HAProxyProtocolWrapper):
    _started = False
    _timeout = None
    _pending = b""

    def makeConnection(self, transport) -> None:
        from twisted.internet import reactor

        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self._timeout = reactor.callLater(HEADER_TIMEOUT, self.loseConnection)

    def dataReceived(self, data: bytes) -> None:
        if self._started:
            self.wrappedProtocol.dataReceived(data)
            return
        if self._parser is None:
            self._pending += data
            self._parser = self._choose_parser(self._pending)
            if self._parser is None:
                return  # too short to tell which version yet
            data, self._pending = self._pending, b""
        try:
            self._proxyInfo, remaining = self._parser.feed(data)
        except InvalidProxyHeader:
            self.loseConnection()
            return
        if self._proxyInfo is None:
            return  # header incomplete
        self._started = True
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        self.wrappedProtocol.makeConnection(self)
        if remaining:
            self.wrappedProtocol.dataReceived(remaining)

    def _choose_parser(self, head: bytes):
        """V1 or V2 parser by the first bytes; None when more bytes are needed."""
        if len(head) >= 13 and head[:12] == V2Parser.PREFIX and head[12] & 0xF0 == 0x20:
            return V2Parser()
        if len(head) >= 5 and head[:5] == V1Parser.PROXYSTR:
            return V1Parser()
        if V2Parser.PREFIX.startswith(head[:12]) or V1Parser.PROXYSTR.startswith(head[:5]):
            if len(head) < MAX_HEADER:
                return None
        self.loseConnection()  # not a PROXY header: never served
        return None

    def connectionLost(self, reason) -> None:
        if self._timeout is not None and self._timeout.active():
            self._timeout.cancel()
        if self._started:
            super().connectionLost(reason)
        else:
            self.factory.unregisterProtocol(self)


class HeaderFirstFactory(HAProxyWrappingFactory):
    protocol = HeaderFirstWrapper
