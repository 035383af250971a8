"""The queue on disk: message files and envelopes, written so that a 250 is never a lie.

Layout under the queue directory::

    tmp/<id>        message being received (deleted at start: never acknowledged)
    data/<id>       the message (Received header first), written once, never changed
    env/<id>.json   the envelope; its presence makes the message queued

``commit`` fsyncs the message file, renames it into ``data/``, writes the envelope to a
temporary file, fsyncs it, renames it into ``env/`` and fsyncs both directories (POSIX only makes a
rename durable once its directory is synced). Only then does the SMTP server say 250. A crash
before the envelope rename leaves an orphan in ``data/`` that ``recover()`` removes: the client got
no 250 and will retry. Envelope updates use the same write-temp/fsync/rename/fsync-dir dance.

A runner delivering a message holds an exclusive ``flock`` on its data file, so several
processes (pymail-server workers, the admin CLI) can share one queue directory.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path

from pymail.queue.envelope import Envelope
from pymail.queue.ids import new_queue_id, valid_queue_id


class QueueError(Exception):
    """A queue operation failed; the message is safe to show an administrator."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class QueueDir:
    def __init__(self, root: str | os.PathLike, fsync: bool = True):
        self.root = Path(root)
        self.fsync = fsync
        self.tmp = self.root / "tmp"
        self.data = self.root / "data"
        self.env = self.root / "env"
        for d in (self.tmp, self.data, self.env):
            d.mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------------
    def new_id(self) -> str:
        return new_queue_id()

    def tmp_path(self, queue_id: str) -> Path:
        return self.tmp / queue_id

    def data_path(self, queue_id: str) -> Path:
        return self.data / queue_id

    def env_path(self, queue_id: str) -> Path:
        return self.env / f"{queue_id}.json"

    # -- writing -------------------------------------------------------------------------------
    def _sync(self, fd: int) -> None:
        if self.fsync:
            os.fsync(fd)

    def _sync_dir(self, path: Path) -> None:
        if self.fsync:
            fsync_dir(path)

    def commit(self, envelope: Envelope, spooled: Path) -> None:
        """Make a fully written spool file and its envelope durable (blocking)."""
        fd = os.open(spooled, os.O_RDONLY)
        try:
            self._sync(fd)
        finally:
            os.close(fd)
        os.rename(spooled, self.data_path(envelope.queue_id))
        self._write_envelope(envelope, sync_data_dir=True)

    def save(self, envelope: Envelope) -> None:
        """Durably replace an envelope (after a delivery attempt)."""
        self._write_envelope(envelope, sync_data_dir=False)

    def _write_envelope(self, envelope: Envelope, sync_data_dir: bool) -> None:
        final = self.env_path(envelope.queue_id)
        tmp = self.env / f".{envelope.queue_id}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, envelope.to_json())
            self._sync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final)
        if sync_data_dir:
            self._sync_dir(self.data)
        self._sync_dir(self.env)

    def enqueue_bytes(self, envelope: Envelope, message: bytes) -> None:
        """Queue a message made here (bounces)."""
        path = self.tmp_path(envelope.queue_id)
        with open(path, "wb") as f:
            f.write(message)
        envelope.size = len(message)
        self.commit(envelope, path)

    def remove(self, queue_id: str) -> None:
        """Dequeue: the envelope goes first, so a crash never leaves an envelope without data."""
        for path in (self.env_path(queue_id), self.data_path(queue_id)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._sync_dir(self.env)

    # -- reading -------------------------------------------------------------------------------
    def load(self, queue_id: str) -> Envelope:
        if not valid_queue_id(queue_id):
            raise QueueError(f"{queue_id!r} is not a queue ID")
        try:
            return Envelope.from_json(self.env_path(queue_id).read_bytes())
        except FileNotFoundError:
            raise QueueError(f"{queue_id}: no such message in the queue") from None
        except (ValueError, TypeError, KeyError) as exc:
            raise QueueError(f"{queue_id}: damaged envelope ({exc})") from None

    def ids(self) -> list[str]:
        out = []
        for name in os.listdir(self.env):
            if name.endswith(".json") and not name.startswith("."):
                out.append(name[:-5])
        return sorted(out)

    def envelopes(self) -> list[Envelope]:
        out = []
        for qid in self.ids():
            try:
                out.append(self.load(qid))
            except QueueError:
                continue
        return out

    def due(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        return [e.queue_id for e in self.envelopes() if not e.held and e.next_attempt <= now]

    # -- locking ------------------------------------------------------------------------------
    @contextmanager
    def locked(self, queue_id: str, wait: float = 0.0):
        """Hold the message's lock; yields False (and holds nothing) if another holds it."""
        try:
            fd = os.open(self.data_path(queue_id), os.O_RDONLY)
        except FileNotFoundError:
            yield False
            return
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            yield True
        finally:
            os.close(fd)

    # -- start-up ------------------------------------------------------------------------------
    def recover(self, min_age: float = 3600.0) -> list[str]:
        """Clean what a crash left behind; returns the IDs of removed orphans (never acked).

        Only files older than ``min_age`` seconds go: another process sharing the queue may be
        writing a young one right now.
        """
        removed = []
        cutoff = time.time() - min_age

        def old(path: Path) -> bool:
            try:
                return path.stat().st_mtime < cutoff
            except FileNotFoundError:
                return False

        for name in os.listdir(self.tmp):
            if old(self.tmp / name):
                try:
                    os.unlink(self.tmp / name)
                except FileNotFoundError:
                    pass
        for name in os.listdir(self.env):
            if name.startswith(".") and name.endswith(".tmp") and old(self.env / name):
                try:
                    os.unlink(self.env / name)
                except FileNotFoundError:
                    pass
        queued = set(self.ids())
        for name in os.listdir(self.data):
            if name not in queued and old(self.data / name):
                with self.locked(name) as got:
                    if got and not self.env_path(name).exists():
                        os.unlink(self.data_path(name))
                        removed.append(name)
        return removed
