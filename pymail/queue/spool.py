"""The queue on disk: message files and envelopes, written so that a 250 is never a lie.

Layout under the queue directory (one folder, so one directory fsync covers both files)::

    msg/<id>            the message (Received header first); written while it arrives, then
                        never changed
    msg/<id>.json       the envelope; its presence makes the message queued
    msg/.<id>.<pid>.tmp an envelope being written

``commit`` fsyncs the message file, writes the envelope to a temporary file, fsyncs it, renames
it to ``<id>.json`` and fsyncs the folder (POSIX makes a new name durable only once its directory
is synced). Only then does the SMTP server say 250. Folder fsyncs are shared: sessions that commit
at the same time wait for one fsync that started after their rename (group commit), which is what
keeps concurrent sessions fast. A crash before the envelope is durable leaves a message file
without envelope; ``recover()`` removes those (the client got no 250 and will retry). Envelope
updates use the same write-temp/fsync/rename/fsync-folder dance.

A runner delivering a message holds an exclusive ``flock`` on its message file, so several
processes (pymail-server workers, the admin CLI) can share one queue directory.
"""

from __future__ import annotations

import fcntl
import os
import threading
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


class GroupSync:
    """Directory fsync shared by concurrent callers: each caller returns after an fsync that
    started after it called, but one fsync serves every caller waiting for it."""

    def __init__(self, path: Path):
        self.path = path
        self._cond = threading.Condition()
        self._started = 0
        self._done = 0
        self._running = False
        self._error: OSError | None = None

    def sync(self) -> None:
        with self._cond:
            target = self._started + 1
            while self._done < target:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                self._started += 1
                generation = self._started
                self._cond.release()
                error = None
                try:
                    fsync_dir(self.path)
                except OSError as exc:
                    error = exc
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._done = generation
                    self._error = error
                    self._cond.notify_all()
            if self._error is not None:
                raise self._error


class QueueDir:
    def __init__(self, root: str | os.PathLike, fsync: bool = True):
        self.root = Path(root)
        self.fsync = fsync
        self.msg = self.root / "msg"
        self.msg.mkdir(parents=True, exist_ok=True)
        self._group = GroupSync(self.msg)
        self._due_cache: dict[str, tuple[int, bool, float]] = {}
        self.made_here = 0

    # -- paths ---------------------------------------------------------------------------------
    def new_id(self) -> str:
        return new_queue_id()

    def tmp_path(self, queue_id: str) -> Path:
        """Where a message is spooled while it arrives (its final place: no rename needed)."""
        return self.msg / queue_id

    def data_path(self, queue_id: str) -> Path:
        return self.msg / queue_id

    def env_path(self, queue_id: str) -> Path:
        return self.msg / f"{queue_id}.json"

    def files(self) -> list[str]:
        return sorted(os.listdir(self.msg))

    # -- writing -------------------------------------------------------------------------------
    def _sync(self, fd: int) -> None:
        if self.fsync:
            os.fsync(fd)

    def _sync_dir(self) -> None:
        if self.fsync:
            self._group.sync()

    def commit(self, envelope: Envelope, spooled: Path) -> None:
        """Make a fully written spool file and its envelope durable (blocking)."""
        final = self.data_path(envelope.queue_id)
        fd = os.open(spooled, os.O_RDONLY)
        try:
            self._sync(fd)
        finally:
            os.close(fd)
        if Path(spooled) != final:
            os.rename(spooled, final)
        self._write_envelope(envelope)

    def save(self, envelope: Envelope) -> None:
        """Durably replace an envelope (after a delivery attempt)."""
        self._write_envelope(envelope)

    def _write_envelope(self, envelope: Envelope) -> None:
        final = self.env_path(envelope.queue_id)
        tmp = self.msg / f".{envelope.queue_id}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, envelope.to_json())
            self._sync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.rename(tmp, final)
        self._sync_dir()

    def enqueue_bytes(self, envelope: Envelope, message: bytes) -> None:
        """Queue a message made here (bounces)."""
        path = self.tmp_path(envelope.queue_id)
        with open(path, "wb") as f:
            f.write(message)
        envelope.size = len(message)
        self.commit(envelope, path)
        self.made_here += 1  # tells the runner to look again soon (bounces, Sieve redirects)

    def remove(self, queue_id: str) -> None:
        """Dequeue: the envelope goes first, so a crash never leaves an envelope without data."""
        for path in (self.env_path(queue_id), self.data_path(queue_id)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self._sync_dir()

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
        for name in os.listdir(self.msg):
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
        """IDs of messages to try now. Envelopes are re-read only when their file changed, so a
        large deferred queue costs a stat per message per scan, not a JSON parse."""
        now = time.time() if now is None else now
        cache = self._due_cache
        fresh: dict[str, tuple[int, bool, float]] = {}
        out = []
        for qid in self.ids():
            try:
                mtime = os.stat(self.env_path(qid)).st_mtime_ns
            except FileNotFoundError:
                continue
            entry = cache.get(qid)
            if entry is None or entry[0] != mtime:
                try:
                    env = self.load(qid)
                except QueueError:
                    continue
                entry = (mtime, env.held, env.next_attempt)
            fresh[qid] = entry
            if not entry[1] and entry[2] <= now:
                out.append(qid)
        self._due_cache = fresh
        return out

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

        queued = set(self.ids())
        for name in os.listdir(self.msg):
            path = self.msg / name
            if name.startswith("."):
                if name.endswith(".tmp") and old(path):
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                continue
            if name.endswith(".json") or name in queued or not old(path):
                continue
            with self.locked(name) as got:
                if got and not self.env_path(name).exists():
                    os.unlink(path)
                    removed.append(name)
        return removed
