"""Listening sockets, bound before the reactor starts so that worker processes can share them.

The parent binds every configured listener once (port 0 picks a free port, which is then
reported), and the reactor adopts the sockets (``adoptStreamPort``). With ``--workers N`` the
same sockets are inherited by N processes: the kernel spreads connections between them.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from pymail.config import ListenerConfig


class ListenError(Exception):
    """A listener could not be bound; the message names it and the reason."""


@dataclass
class BoundListener:
    listener: ListenerConfig
    sock: socket.socket

    @property
    def port(self) -> int:
        if self.sock.family == socket.AF_UNIX:
            return 0
        return self.sock.getsockname()[1]

    def describe(self) -> str:
        where = self.listener.unix_socket or f"{self.listener.address}:{self.port}"
        flags = [self.listener.tls]
        if self.listener.allow_plaintext_auth:
            flags.append("plaintext-auth")
        if self.listener.proxy_protocol:
            flags.append("proxy-protocol")
        return f"{self.listener.role:<12} {where:<24} {' '.join(flags)}"

    def as_dict(self) -> dict:
        return {"role": self.listener.role, "address": self.listener.address, "port": self.port,
                "tls": self.listener.tls, "unix_socket": self.listener.unix_socket}


def bind(listener: ListenerConfig, backlog: int = 511) -> BoundListener:
    try:
        if listener.unix_socket:
            path = listener.unix_socket
            if os.path.exists(path):
                os.unlink(path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(path)
            os.chmod(path, 0o660)
        else:
            family = socket.AF_INET6 if ":" in listener.address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((listener.address, listener.port))
        sock.listen(backlog)
        sock.setblocking(False)
        os.set_inheritable(sock.fileno(), True)
    except OSError as exc:
        where = listener.unix_socket or f"{listener.address}:{listener.port}"
        hint = " (ports below 1024 need root)" if exc.errno == 13 else ""
        raise ListenError(f"cannot listen for {listener.role} on {where}: {exc.strerror}{hint}") from None
    return BoundListener(listener, sock)
