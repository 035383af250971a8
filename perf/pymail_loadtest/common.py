"""What every load shares: the target, users, message bodies, bounds, and the loopback guard."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import resource
import socket
import ssl
import time
from dataclasses import dataclass, field
from email.utils import formatdate, make_msgid
from pathlib import Path


class LoadError(Exception):
    """A problem with the command line or the target; main() prints it as one line."""


class ProtocolMismatch(Exception):
    """The server answered something a correct server would not: counted as an error."""


@dataclass
class Target:
    host: str
    port: int
    tls: str = "none"  # none | starttls | implicit
    timeout: float = 30.0

    def ssl_context(self) -> ssl.SSLContext:
        # A load tool talks to test servers with self-signed certificates: no verification.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def open(self, limit: int = 1 << 22) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        ssl_ctx = self.ssl_context() if self.tls == "implicit" else None
        return await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=ssl_ctx, limit=limit,
                                    server_hostname=self.host if ssl_ctx else None),
            self.timeout)


def check_loopback(host: str, allow_remote: bool) -> None:
    """Refuse any address that is not loopback unless --allow-remote was given."""
    if allow_remote:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise LoadError(f"cannot resolve {host!r}: {exc.strerror}") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if not addr.is_loopback:
            raise LoadError(f"{host} resolves to {addr}, which is not loopback; "
                            "pass --allow-remote to load a remote server you own")


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE towards ``wanted`` (up to the hard limit); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


@dataclass
class User:
    name: str
    password: str


def load_users(path: str | None, inline: list[str] | None = None) -> list[User]:
    """Users from a file of ``name:password`` (or ``name password``) lines, # for comments."""
    lines: list[str] = list(inline or [])
    if path:
        try:
            lines += Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise LoadError(f"cannot read users file {path}: {exc.strerror}") from None
    users = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        sep = ":" if ":" in line else " "
        name, _, password = line.partition(sep)
        if not name or not password:
            raise LoadError(f"users line {number}: expected name:password")
        users.append(User(name.strip(), password.strip()))
    return users


_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024 * 1024, "mb": 1024 * 1024}


def parse_size(text: str) -> int:
    t = text.strip().lower()
    digits = t.rstrip("kmb")
    unit = t[len(digits):]
    if not digits.isdigit() or unit not in _UNITS:
        raise LoadError(f"bad size {text!r} (examples: 512, 5k, 1m)")
    return int(digits) * _UNITS[unit]


@dataclass
class SizeDistribution:
    """``5k`` (fixed) or ``1k:60,10k:30,1m:10`` (size:weight pairs)."""

    sizes: list[int]
    weights: list[float]

    @classmethod
    def parse(cls, text: str) -> "SizeDistribution":
        sizes, weights = [], []
        for part in text.split(","):
            size, _, weight = part.partition(":")
            sizes.append(parse_size(size))
            try:
                weights.append(float(weight) if weight else 1.0)
            except ValueError:
                raise LoadError(f"bad weight in size distribution {text!r}") from None
        if not sizes or sum(weights) <= 0:
            raise LoadError(f"empty size distribution {text!r}")
        return cls(sizes, weights)

    def pick(self, rng: random.Random) -> int:
        return rng.choices(self.sizes, self.weights)[0]


_WORDS = ("mail server load test message body words lorem ipsum dolor sit amet consectetur "
          "adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna").split()


def make_message(size: int, rng: random.Random, sender: str = "loadtest@example.test",
                 recipient: str = "user@example.test", subject: str = "") -> bytes:
    """An RFC 5322 message of about ``size`` bytes with CRLF lines of at most 78 characters."""
    head = (f"From: <{sender}>\r\nTo: <{recipient}>\r\n"
            f"Subject: {subject or 'load test %08x' % rng.getrandbits(32)}\r\n"
            f"Date: {formatdate()}\r\nMessage-ID: {make_msgid(domain='loadtest.invalid')}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n").encode()
    lines, total = [], len(head)
    while total < size:
        words, length = [], 0
        while length < 64:
            w = rng.choice(_WORDS)
            words.append(w)
            length += len(w) + 1
        line = (" ".join(words) + "\r\n").encode()
        lines.append(line)
        total += len(line)
    return head + b"".join(lines)


@dataclass
class Bounds:
    """A run stops at whichever comes first: ``count`` operations or ``duration`` seconds."""

    duration: float
    count: int | None = None
    started: float = field(default_factory=time.monotonic)
    done: int = 0

    def take(self) -> bool:
        """Claim one more operation; False once the count or the time is used up."""
        if self.count is not None and self.done >= self.count:
            return False
        if time.monotonic() - self.started >= self.duration:
            return False
        self.done += 1
        return True

    def remaining(self) -> float:
        return max(0.0, self.duration - (time.monotonic() - self.started))

    def expired(self) -> bool:
        return self.remaining() <= 0 or (self.count is not None and self.done >= self.count)


async def close_writer(writer) -> None:
    """Close an asyncio stream, waiting at most 2 s for the peer (never raises)."""
    if writer is None:
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (OSError, asyncio.TimeoutError, ConnectionError):
        pass
