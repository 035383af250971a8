"""NFS-safe dot-locks, the way Dovecot's file-dotlock.c takes them.

A lock for ``path`` is the file ``path + ".lock"``.  It is made by writing a unique temporary
file in the same directory and ``link()``-ing it to the lock name: link() is atomic on NFS, and
when its reply is lost we still know we won if the temp file's link count became 2.  The lock
holds ``<pid>:<host>``.  A lock is stale (and broken) when its mtime is older than
``stale_after`` seconds (Dovecot: 120 s for ``dovecot-uidlist.lock``), or at once when it names a
process on this host that no longer exists.  Dovecot uses the same file name, so pymail and
Dovecot never write ``dovecot-uidlist`` at the same time.
"""

from __future__ import annotations

import errno
import os
import random
import time

from pymail.store.errors import INUSE, StoreError
from pymail.store.filename import HOST

STALE_AFTER = 120.0


class DotLock:
    def __init__(self, path: str, timeout: float = STALE_AFTER + 2, stale_after: float = STALE_AFTER):
        self.path = path
        self.lock_path = path + ".lock"
        self.timeout = timeout
        self.stale_after = stale_after
        self._held = False

    def __enter__(self) -> "DotLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.002
        while True:
            if self._try_link():
                self._held = True
                return
            stale_ino = self._stale_inode()
            if stale_ino is not None:
                self._break_stale(stale_ino)
                continue
            if time.monotonic() >= deadline:
                raise StoreError(INUSE, "mailbox is locked by another process, try again later")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def release(self) -> None:
        if self._held:
            self._held = False
            try:
                os.unlink(self.lock_path)
            except FileNotFoundError:
                pass

    def touch(self) -> None:
        """Keep a long-held lock from looking stale."""
        if self._held:
            os.utime(self.lock_path)

    def _try_link(self) -> bool:
        directory = os.path.dirname(self.lock_path) or "."
        temp = os.path.join(directory, f".temp.{HOST}.{os.getpid()}.{random.getrandbits(48):x}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, f"{os.getpid()}:{HOST}".encode())
        finally:
            os.close(fd)
        try:
            try:
                os.link(temp, self.lock_path)
                return True
            except FileExistsError:
                return False
            except OSError as e:
                # NFS: the reply may be lost although link() succeeded.
                if e.errno in (errno.EEXIST,):
                    return False
                return os.stat(temp).st_nlink == 2
        finally:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass

    def _stale_inode(self) -> int | None:
        """The inode of the current lock file if it is stale, else None."""
        try:
            st = os.stat(self.lock_path)
        except FileNotFoundError:
            return None
        if time.time() - st.st_mtime > self.stale_after:
            return st.st_ino
        try:
            with open(self.lock_path, "rb") as f:
                content = f.read(256).decode("ascii", "replace")
        except FileNotFoundError:
            return None
        pid, _, host = content.partition(":")
        if host.strip() == HOST and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return st.st_ino
            except PermissionError:
                return None
        return None

    def _break_stale(self, inode: int) -> None:
        # Only remove the lock we judged stale, not one a rival took meanwhile.
        try:
            if os.stat(self.lock_path).st_ino == inode:
                os.unlink(self.lock_path)
        except FileNotFoundError:
            pass
