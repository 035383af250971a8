"""Streams a message into its spool file from the reactor without blocking it.

Bytes are gathered in memory up to ``FLUSH_AT`` and then written by a thread
(``pymail.runtime.run_blocking``), one write after the other. ``backlog`` tells the protocol how
much is waiting so it can pause reading from a fast client (flow control) instead of buffering a
whole message.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from twisted.internet import defer

from pymail.runtime import run_blocking

FLUSH_AT = 256 * 1024


class SpoolWriter:
    def __init__(self, path: Path):
        self.path = path
        self.size = 0
        self.crc = 0  # CRC-32 of the bytes written so far (the queue file's trailer has it)
        self.backlog = 0  # bytes handed over but not yet written
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._fd: int | None = None
        self._tail: defer.Deferred = defer.succeed(None)
        self._error: BaseException | None = None
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        self.size += len(data)
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= FLUSH_AT:
            self._flush()

    def _flush(self) -> defer.Deferred:
        if self._buffered:
            data = b"".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            self.backlog += len(data)
            self._tail.addCallback(lambda _: run_blocking(self._write, data))
            self._tail.addCallback(self._written, len(data))
            self._tail.addErrback(self._failed)
        return self._tail

    def drained(self) -> defer.Deferred:
        """Fires once every byte handed over so far is written."""
        d = defer.Deferred()
        self._tail.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    def _written(self, _, n: int) -> None:
        self.backlog -= n

    def _failed(self, failure) -> None:
        self._error = failure.value

    def _write(self, data: bytes) -> None:
        if self._error is not None:
            return
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.crc = zlib.crc32(data, self.crc)
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def _close_fd(self) -> None:
        if self._fd is None:
            # an empty message still gets its file
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(self._fd)
        self._fd = None

    async def finish(self, then=None) -> Path:
        """Write what is left and close the file (the queue's commit fsyncs it).

        ``then(path)``, if given, runs in the same thread right after the close (the queue's
        commit: one thread hop for the tail and the commit); if it raises, the message file is
        removed and OSError raised as for a write error.
        """
        self.closed = True
        rest = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        await self._tail
        if self._error is None:
            try:
                await run_blocking(self._write_and_close, rest, then)  # one thread hop for the tail
            except OSError as exc:
                self._error = exc
        if self._error is not None:
            await run_blocking(self._discard)
            raise OSError(f"cannot write the spool file: {self._error}")
        return self.path

    def _write_and_close(self, data: bytes, then=None) -> None:
        if data:
            self._write(data)
        self._close_fd()
        if then is not None:
            then(self.path)

    def abort(self) -> defer.Deferred:
        """Drop the message: nothing of it is kept."""
        self.closed = True
        self._buffer.clear()
        self._buffered = 0
        self._tail.addBoth(lambda _: run_blocking(self._discard))
        self._tail.addErrback(lambda f: None)
        return self._tail

    def _discard(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
