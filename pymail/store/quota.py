"""Quota accounting in a Maildir++ ``maildirsize`` file at the account's maildir root.

Format (Maildir++ quota, also what Dovecot's ``quota = maildir`` backend keeps)::

    <bytes limit>S,<message limit>C        (0 = no limit)
    <bytes> <messages>                      one line per change, may be negative

Deliveries append ``<size> 1``, expunges ``-<size> -<count>`` (O_APPEND, one write, so
concurrent writers never interleave).  The file is recalculated from the folders (sum of the
``S=`` sizes) when it is missing, when its limit line differs from the caller's limits, or when
it has grown past 5120 bytes, as the Maildir++ rules say.  Limits are the caller's (they live in
the directory): ``Store.account(address, quota_bytes=..., quota_messages=...)``.

Exactness: a recalculation scans the folders and replaces the file, so a change made while it
scans would be lost or counted twice. ``Quota.locked()`` (an exclusive lock: a thread lock for
this process plus ``flock`` on ``maildirsize.lock`` for other processes) is held around every
"files appear or disappear + their maildirsize line" step and around each recalculation; the
readers of mail never take it.
"""

from __future__ import annotations

import fcntl
import os
import threading
from contextlib import contextmanager

from pymail.store.atomic import replace_file
from pymail.store import filename as fn
from pymail.store.errors import OVERQUOTA, StoreError

NAME = "maildirsize"
LOCK_NAME = "maildirsize.lock"
RECALC_SIZE = 5120

_thread_locks: dict[str, threading.RLock] = {}
_thread_locks_guard = threading.Lock()
_depth = threading.local()  # how deeply this thread holds each account's lock (re-entrant)


class Quota:
    def __init__(self, root: str, quota_bytes: int | None, quota_messages: int | None,
                 fsync: bool = True):
        self.root = root
        self.path = os.path.join(root, NAME)
        self.quota_bytes = quota_bytes or None
        self.quota_messages = quota_messages or None
        self.fsync = fsync

    @contextmanager
    def locked(self):
        """Hold this account's quota lock (re-entrant within a thread)."""
        with _thread_locks_guard:
            rlock = _thread_locks.setdefault(self.path, threading.RLock())
        held = _depth.__dict__.setdefault("held", {})
        with rlock:
            if held.get(self.path):
                held[self.path] += 1
                try:
                    yield
                finally:
                    held[self.path] -= 1
                return
            fd = os.open(os.path.join(self.root, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                held[self.path] = 1
                try:
                    yield
                finally:
                    held[self.path] = 0
            finally:
                os.close(fd)  # releases the flock

    def limit_line(self) -> str:
        return f"{self.quota_bytes or 0}S,{self.quota_messages or 0}C"

    def usage(self) -> tuple[int, int]:
        """(messages, bytes) in use."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return self.recalculate()
        lines = data.decode("ascii", "replace").split("\n")
        if len(data) > RECALC_SIZE or not lines or lines[0].strip() != self.limit_line():
            return self.recalculate()
        used_bytes = used_msgs = 0
        for line in lines[1:]:
            parts = line.split()
            if len(parts) != 2:
                continue
            try:
                used_bytes += int(parts[0])
                used_msgs += int(parts[1])
            except ValueError:
                return self.recalculate()
        return max(used_msgs, 0), max(used_bytes, 0)

    def check(self, add_bytes: int, add_messages: int = 1) -> None:
        """Raise StoreError(OVERQUOTA) when adding would pass a limit."""
        if self.quota_bytes is None and self.quota_messages is None:
            return
        msgs, used = self.usage()
        if self.quota_bytes is not None and used + add_bytes > self.quota_bytes:
            raise StoreError(OVERQUOTA, "mailbox is full (storage quota exceeded)")
        if self.quota_messages is not None and msgs + add_messages > self.quota_messages:
            raise StoreError(OVERQUOTA, "mailbox is full (message count quota exceeded)")

    def add(self, delta_bytes: int, delta_messages: int) -> None:
        if delta_bytes == 0 and delta_messages == 0:
            return
        with self.locked():
            if not os.path.exists(self.path):
                self.recalculate()
                return
            line = f"{delta_bytes} {delta_messages}\n".encode()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def recalculate(self) -> tuple[int, int]:
        """Count every message of every folder and rewrite the file (under the lock)."""
        with self.locked():
            return self._recalculate()

    def _recalculate(self) -> tuple[int, int]:
        msgs = used = 0
        for folder in _folders(self.root):
            for sub in ("new", "cur"):
                try:
                    entries = os.scandir(os.path.join(folder, sub))
                except FileNotFoundError:
                    continue
                with entries:
                    for entry in entries:
                        if entry.name.startswith("."):
                            continue
                        size, _ = fn.size_fields(fn.base_of(entry.name))
                        if size is None:
                            try:
                                size = entry.stat().st_size
                            except FileNotFoundError:
                                continue
                        msgs += 1
                        used += size
        replace_file(self.path, f"{self.limit_line()}\n{used} {msgs}\n".encode(), self.fsync)
        return msgs, used


def _folders(root: str):
    yield root
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(".") and name not in (".", ".."):
            path = os.path.join(root, name)
            if os.path.isdir(os.path.join(path, "cur")):
                yield path
