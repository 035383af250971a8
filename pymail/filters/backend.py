"""Reaching a filter daemon (clamd, spamd) over TCP or a unix socket, with a connect timeout."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, BinaryIO

from pymail.filters.api import BackendUnavailable

READ_BLOCK = 1024 * 1024  # file reads go to a thread in blocks this big


def parse_address(address: str) -> tuple[str, str, int]:
    """``"tcp:127.0.0.1:3310"`` → ("tcp", "127.0.0.1", 3310); ``"unix:/p"`` → ("unix", "/p", 0)."""
    kind, _, rest = address.partition(":")
    if kind == "unix" and rest:
        return "unix", rest, 0
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if host and port.isdigit() and 0 < int(port) < 65536:
            return "tcp", host, int(port)
    raise ValueError(f"bad backend address {address!r} (use tcp:HOST:PORT or unix:/PATH)")


async def connect(address: str, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a stream to the daemon; raises BackendUnavailable when it cannot be reached in time."""
    kind, where, port = parse_address(address)
    try:
        if kind == "unix":
            opening = asyncio.open_unix_connection(where)
        else:
            opening = asyncio.open_connection(where, port)
        return await asyncio.wait_for(opening, timeout)
    except asyncio.TimeoutError:
        raise BackendUnavailable(f"cannot connect to {address}: timed out after {timeout:g} s") from None
    except OSError as exc:
        raise BackendUnavailable(f"cannot connect to {address}: {exc.strerror or exc}") from None


async def read_blocks(path: str, block: int = READ_BLOCK) -> AsyncIterator[bytes]:
    """The file's bytes in blocks, each read in a worker thread (never blocking the loop)."""
    f: BinaryIO = await asyncio.to_thread(open, path, "rb")
    try:
        while True:
            data = await asyncio.to_thread(f.read, block)
            if not data:
                return
            yield data
    finally:
        f.close()


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (OSError, asyncio.TimeoutError):
        pass
