"""POP3 load (RFC 1939): cycles of login, STAT, UIDL, LIST, RETR, DELE, QUIT.

Checks: STAT, LIST and UIDL agree on the number of messages; UIDLs are unique and at most 70
printable characters (RFC 1939 §7); each RETR returns exactly the octets LIST announced.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from pymail_loadtest.common import Bounds, LoadError, ProtocolMismatch, Target, User, close_writer
from pymail_loadtest.stats import Recorder


class Pop3Client:
    def __init__(self, target: Target):
        self.target = target
        self.reader = self.writer = None

    async def line(self) -> bytes:
        raw = await asyncio.wait_for(self.reader.readline(), self.target.timeout)
        if not raw:
            raise ProtocolMismatch("connection closed by server")
        return raw

    async def command(self, text: str, multiline: bool = False) -> tuple[str, list[bytes]]:
        if text:
            self.writer.write(text.encode() + b"\r\n")
        status = (await self.line()).decode("utf-8", "replace").rstrip("\r\n")
        if not status.startswith("+OK"):
            raise ProtocolMismatch(f"{text.split(' ')[0] or 'greeting'} -> {status}")
        lines = []
        if multiline:
            while True:
                raw = await self.line()
                if raw in (b".\r\n", b".\n"):
                    break
                lines.append(raw[1:] if raw.startswith(b"..") else raw)  # RFC 1939 §3 byte-stuffing
        return status, lines

    async def connect(self, user: User) -> None:
        self.reader, self.writer = await self.target.open()
        await self.command("")
        if self.target.tls == "starttls":
            await self.command("STLS")
            await asyncio.wait_for(self.writer.start_tls(self.target.ssl_context()), self.target.timeout)
        await self.command(f"USER {user.name}")
        await self.command(f"PASS {user.password}")

    async def close(self) -> None:
        await close_writer(self.writer)
        self.writer = None


@dataclass
class Pop3Load:
    target: Target
    clients: int
    users: list[User]
    bounds: Bounds
    retr: int = 5  # messages retrieved per cycle
    dele: int = 0  # messages deleted per cycle
    seed: int = 1


async def run_pop3(load: Pop3Load, rec: Recorder) -> None:
    if not load.users:
        raise LoadError("POP3 load needs at least one user (--users FILE or --user NAME:PASS)")
    rec.extra["retr_bytes"] = 0

    async def timed(op, coro):
        t0 = time.monotonic()
        result = await coro
        rec.record(op, time.monotonic() - t0)
        return result

    async def cycle(client: Pop3Client, user: User, rng: random.Random) -> None:
        await timed("login", client.connect(user))
        status, _ = await timed("stat", client.command("STAT"))
        count = int(status.split()[1])
        _, uidl = await timed("uidl", client.command("UIDL", multiline=True))
        _, listing = await timed("list", client.command("LIST", multiline=True))
        if len(uidl) != count or len(listing) != count:
            raise ProtocolMismatch(f"STAT says {count}, UIDL lists {len(uidl)}, LIST {len(listing)}")
        ids = [line.split()[1] for line in uidl]
        if len(set(ids)) != len(ids) or any(len(i) > 70 for i in ids):
            raise ProtocolMismatch("UIDLs are not unique or longer than 70 characters")
        sizes = {int(a): int(b) for a, b in (line.split()[:2] for line in listing)}
        for number in rng.sample(sorted(sizes), min(load.retr, len(sizes))):
            if not load.bounds.take():
                break
            _, body = await timed("retr", client.command(f"RETR {number}", multiline=True))
            got = sum(len(line) for line in body)
            if got != sizes[number]:
                raise ProtocolMismatch(f"RETR {number} gave {got} octets, LIST said {sizes[number]}")
            rec.extra["retr_bytes"] += got
        for number in rng.sample(sorted(sizes), min(load.dele, len(sizes))):
            await timed("dele", client.command(f"DELE {number}"))
        await timed("quit", client.command("QUIT"))
        await client.close()

    async def worker(number: int) -> None:
        rng = random.Random(load.seed * 31 + number)
        user = load.users[number % len(load.users)]
        while not load.bounds.expired():
            client = Pop3Client(load.target)
            try:
                await cycle(client, user, rng)
            except (ProtocolMismatch, OSError, asyncio.TimeoutError, ConnectionError, ValueError,
                    IndexError) as exc:
                rec.error("cycle", f"{type(exc).__name__}: {exc}")
                await client.close()
                await asyncio.sleep(0.05)

    await asyncio.gather(*(worker(i) for i in range(load.clients)))
