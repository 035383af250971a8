"""Many open SMTP connections and the server's memory while they wait.

N clients connect, read the greeting and say EHLO (through STARTTLS when asked), then hold the
connection without a transaction. The server's memory (RSS and PSS over its process tree, as
for IDLE sessions) is sampled before the connections open and once they all hold; the figure
per connection is the PSS difference divided by the connections held. A Postfix-like server
that forks an smtpd per connection and a single-process server are then compared on the same
footing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pymail_loadtest.common import Bounds, ProtocolMismatch, Target
from pymail_loadtest.idle_load import memory_of
from pymail_loadtest.smtp_client import SmtpClient, SmtpReplyError


@dataclass
class ConnLoad:
    target: Target
    connections: int
    bounds: Bounds
    hold: float = 3.0
    connect_concurrency: int = 50
    pid: int | None = None


async def run_connections(load: ConnLoad, rec) -> None:
    mem: dict = {}
    if load.pid is not None:
        mem["before"] = memory_of(load.pid)
    gate = asyncio.Semaphore(load.connect_concurrency)
    clients: list[SmtpClient] = []

    async def open_one() -> None:
        client = SmtpClient(load.target)
        async with gate:
            if load.bounds.expired():
                return
            started = asyncio.get_running_loop().time()
            try:
                await client.connect()
            except (ProtocolMismatch, SmtpReplyError, OSError, ConnectionError,
                    asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
                rec.error("connect", f"{type(exc).__name__}: {exc}")
                await client.close()
                return
            rec.record("connect", asyncio.get_running_loop().time() - started)
            clients.append(client)
            rec.extra["progress"] = f"held={len(clients)}"

    try:
        await asyncio.wait_for(asyncio.gather(*(open_one() for _ in range(load.connections))),
                               load.bounds.remaining() or 0.001)
    except asyncio.TimeoutError:
        rec.error("connect", f"only {len(clients)} of {load.connections} connections open "
                  "before the time ran out")
    held = len(clients)
    rec.extra["connections"] = {"wanted": load.connections, "held": held}
    if load.pid is not None:
        await asyncio.sleep(min(1.0, load.bounds.remaining()))   # let the server settle
        mem["holding"] = memory_of(load.pid)
        mem["per_connection_pss_kib"] = (round((mem["holding"]["pss_kib"] - mem["before"]["pss_kib"])
                                               / held, 2) if held else None)
        rec.extra["rss"] = mem
    end = asyncio.get_running_loop().time() + min(load.hold, load.bounds.remaining())
    while (left := end - asyncio.get_running_loop().time()) > 0:
        await asyncio.sleep(min(left, 1.0))
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
