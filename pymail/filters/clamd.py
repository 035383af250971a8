"""A native asyncio clamd client (INSTREAM) and the virus check built on it.

Why not python-clamd (PyPI ``clamd`` 1.0.2): it is blocking (a thread per scan), unmaintained,
sends 1 KiB chunks (30-120% slower on 1 MB than 64 KiB chunks), uses ``send()`` without checking
how much was sent, and has no connect timeout. The protocol is ~40 lines; see docs/filters.md.

Protocol (clamd(8), "INSTREAM"): ``zINSTREAM\\0``, then chunks ``<uint32 big-endian length>
<bytes>``, then a zero length; the reply is ``stream: OK\\0``, ``stream: NAME FOUND\\0`` or
``... ERROR\\0``. The ``z`` prefix means NUL-terminated commands and replies.
"""

from __future__ import annotations

import asyncio
import os
import struct
from dataclasses import dataclass

from pymail.filters import backend
from pymail.filters.api import BackendUnavailable, Check, Envelope, Verdict

CHUNK = 64 * 1024
REPLY_LIMIT = 4096


@dataclass(frozen=True)
class ScanResult:
    clean: bool
    signature: str = ""  # e.g. "Test.EICAR.UNOFFICIAL"


class ClamdClient:
    def __init__(self, address: str, connect_timeout: float = 5.0):
        backend.parse_address(address)  # fail early on a bad address
        self.address = address
        self.connect_timeout = connect_timeout

    async def _command(self, command: bytes, chunks=None) -> str:
        reader, writer = await backend.connect(self.address, self.connect_timeout)
        try:
            writer.write(b"z" + command + b"\0")
            if chunks is not None:
                async for block in chunks:
                    for i in range(0, len(block), CHUNK):
                        part = block[i:i + CHUNK]
                        writer.write(struct.pack("!I", len(part)) + part)
                        await writer.drain()  # flow control: the whole chunk is sent (sendall)
                writer.write(struct.pack("!I", 0))
            await writer.drain()
            reply = await reader.readuntil(b"\0")
        except asyncio.IncompleteReadError as exc:
            raise BackendUnavailable(f"clamd closed the connection ({exc.partial[:80]!r})") from None
        except asyncio.LimitOverrunError:
            raise BackendUnavailable("clamd sent an over-long reply") from None
        except (ConnectionError, OSError) as exc:
            # clamd drops the connection when the stream exceeds StreamMaxLength.
            raise BackendUnavailable(f"clamd connection failed: {exc}") from None
        finally:
            await backend.close_quietly(writer)
        return reply[:-1].decode("utf-8", "replace")

    async def ping(self) -> bool:
        return await self._command(b"PING") == "PONG"

    async def version(self) -> str:
        return await self._command(b"VERSION")

    async def scan_file(self, path: str) -> ScanResult:
        """INSTREAM the file's bytes (clamd need not see our filesystem)."""
        return self._parse(await self._command(b"INSTREAM", backend.read_blocks(path)))

    async def scan_bytes(self, data: bytes) -> ScanResult:
        async def one():
            yield data
        return self._parse(await self._command(b"INSTREAM", one()))

    @staticmethod
    def _parse(reply: str) -> ScanResult:
        # "stream: OK" | "stream: Eicar-Signature FOUND" | "INSTREAM size limit exceeded. ERROR"
        body = reply.partition(": ")[2] if reply.startswith("stream:") else reply
        if body == "OK":
            return ScanResult(True)
        if body.endswith(" FOUND"):
            return ScanResult(False, body[: -len(" FOUND")].strip())
        raise BackendUnavailable(f"clamd: {reply}")


class ClamdCheck(Check):
    """End of DATA: scan the spooled message; a virus is refused with 554 5.7.1 (issue 6)."""

    name = "clamd"
    runs_for_authenticated = True  # submissions are virus-scanned too

    def __init__(self, client: ClamdClient, max_size: int = 25 * 1024 * 1024):
        self.client = client
        self.max_size = max_size

    async def data(self, envelope: Envelope, message_path: str) -> Verdict:
        size = await asyncio.to_thread(os.path.getsize, message_path)
        if size > self.max_size:
            # Bigger than clamd accepts: not scanned, said so in a header (no silent pass).
            return Verdict.accept([("X-Virus-Scanned", f"no (larger than {self.max_size} bytes)")],
                                  remove_headers=["X-Virus-Scanned"])
        result = await self.client.scan_file(message_path)
        if not result.clean:
            return Verdict.reject(554, "5.7.1", f"Message refused: virus found: {result.signature}",
                                  virus=result.signature)
        return Verdict.accept([("X-Virus-Scanned", "clean (clamd)")], remove_headers=["X-Virus-Scanned"])
