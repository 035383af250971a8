"""One POP3 session per maildrop at a time (RFC 1939 §8, RFC 2449 §8.1.1 ``[IN-USE]``).

The lock is an ``flock(2)`` on the file ``pymail-pop3.lock`` in the user's maildir (or index
directory). flock belongs to the open file, so:
- it works across processes and workers on one host, and across hosts on NFS (Linux emulates
  flock with NFS byte-range locks);
- a crashed process holds nothing: the kernel drops the lock with the process, and the NFS server
  drops it when the dead client's lease expires. A leftover lock *file* means nothing.
The file is never unlinked (unlinking a lock file races with a process that just opened it).

On NFS an emulated flock is a POSIX lock, which does not conflict within one process; the
in-process registry below covers sessions of the same worker.

Only POP3 takes this lock. IMAP sessions and deliveries never wait for it, and a POP3 session
never blocks them: it works on the snapshot it took at login (RFC 1939 §8 allows new mail to
stay invisible until the next session).
"""

from __future__ import annotations

import fcntl
import os
import threading

from pymail.pop3.errors import Pop3Error

LOCK_NAME = "pymail-pop3.lock"

_held: set[str] = set()
_held_guard = threading.Lock()


class MaildropInUse(Pop3Error):
    def __init__(self) -> None:
        super().__init__("Mailbox is locked by another POP3 session", "IN-USE")


class SessionLock:
    """Blocking; ``acquire()`` raises MaildropInUse at once instead of waiting."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.path = os.path.realpath(os.path.join(os.fspath(directory), LOCK_NAME))
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        with _held_guard:
            if self.path in _held:
                raise MaildropInUse()
            _held.add(self.path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            with _held_guard:
                _held.discard(self.path)
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            with _held_guard:
                _held.discard(self.path)
            raise MaildropInUse() from None
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        os.close(fd)  # closing the descriptor drops the flock
        with _held_guard:
            _held.discard(self.path)
