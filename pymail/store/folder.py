"""Putting message files into one maildir folder and giving them UIDs.

Delivery steps (the maildir rules, plus Dovecot's uidlist):
1. write the message to ``tmp/<base>`` and fsync it (the internal date is the file's mtime);
2. take ``dovecot-uidlist.lock`` (readers never wait for it: they read the uidlist as is);
3. rename into ``new/<base>`` (no flags) or ``cur/<base>:2,<flags>``, fsync that directory;
4. append ``<uid> :<base>`` to ``dovecot-uidlist``, fsync, release the lock.
Only after step 4 is the message stored and its UID known.  Renaming while the lock is held
means no other process (Dovecot included) can give the file a different UID first.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass

from pymail.durable import sync_path
from pymail.store.atomic import replace_file
from pymail.store import filename as fn
from pymail.store import keywords as kw
from pymail.store import uidlist as ul_mod
from pymail.store.dotlock import DotLock
from pymail.store.errors import SERVERBUG, StoreError

CHUNK = 1 << 16
UIDVALIDITY_FILE = "pymail-uidvalidity"


@dataclass
class TmpFile:
    path: str
    base: str
    size: int
    vsize: int


class Folder:
    """One maildir folder on disk (INBOX = the account root, others ``.Name``)."""

    def __init__(self, path: str, root: str, fsync: bool = True):
        self.path = path
        self.root = root
        self.fsync = fsync
        self.uidlist_path = os.path.join(path, ul_mod.NAME)
        self.keywords_path = os.path.join(path, kw.NAME)

    def exists(self) -> bool:
        return os.path.isdir(os.path.join(self.path, "cur"))

    def create(self, is_subfolder: bool) -> None:
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.path, sub), mode=0o700, exist_ok=True)
        if is_subfolder:
            marker = os.path.join(self.path, "maildirfolder")   # Maildir++ folder marker
            if not os.path.exists(marker):
                open(marker, "wb").close()
        with self.lock():
            self.read_or_create_uidlist()
        self._fsync_dir(self.path)
        self._fsync_dir(os.path.dirname(self.path.rstrip("/")))

    def lock(self) -> DotLock:
        return DotLock(self.uidlist_path)

    # -- uidlist -----------------------------------------------------------------------------

    def read_uidlist(self) -> ul_mod.Uidlist | None:
        return ul_mod.read(self.uidlist_path)

    def read_or_create_uidlist(self) -> ul_mod.Uidlist:
        """Caller holds the lock."""
        ul = ul_mod.read(self.uidlist_path)
        if ul is None:
            ul = ul_mod.Uidlist(self._next_uidvalidity(), 1, ul_mod.new_guid())
            ul_mod.write(self.uidlist_path, ul, self.fsync)
        return ul

    def _next_uidvalidity(self) -> int:
        """Time-based, and strictly above any UIDVALIDITY this account handed out before."""
        path = os.path.join(self.root, UIDVALIDITY_FILE)
        last = 0
        try:
            with open(path, "rb") as f:
                last = int(f.read().strip() or b"0")
        except (FileNotFoundError, ValueError):
            pass
        value = max(int(time.time()), last + 1) & 0xFFFFFFFF or 1
        replace_file(path, b"%d\n" % value, fsync=False)
        return value

    # -- writing messages --------------------------------------------------------------------

    def write_tmp(self, source, internal_date: float | None = None) -> TmpFile:
        """Copy ``source`` (bytes or a binary file object) into tmp/ and fsync it."""
        fd, path, counter = self._open_tmp()
        size = vsize = 0
        prev_cr = False
        try:
            with os.fdopen(fd, "wb", closefd=True) as out:
                for chunk in _chunks(source):
                    out.write(chunk)
                    size += len(chunk)
                    # W= counts a bare LF as CRLF (the RFC 822 size).
                    bare = chunk.count(b"\n") - chunk.count(b"\r\n")
                    if chunk[:1] == b"\n" and prev_cr:
                        bare -= 1
                    vsize += len(chunk) + bare
                    prev_cr = chunk[-1:] == b"\r"
                out.flush()
                if self.fsync:
                    os.fsync(out.fileno())
            if internal_date is not None:
                os.utime(path, (internal_date, internal_date))
        except BaseException:
            _unlink_quiet(path)
            raise
        return self._finish_tmp(path, counter, size, vsize)

    def link_tmp(self, src_path: str, size: int, vsize: int) -> TmpFile:
        """Hard-link (or copy) an existing message file into tmp/ (COPY/MOVE)."""
        for counter in range(1000):
            base = fn.new_basename(size, vsize, counter)
            path = os.path.join(self.path, "tmp", base)
            try:
                os.link(src_path, path)
                return TmpFile(path, base, size, vsize)
            except FileExistsError:
                continue
            except OSError as e:
                if isinstance(e, FileNotFoundError):
                    raise
                shutil.copy2(src_path, path)
                if self.fsync:
                    with open(path, "rb") as f:
                        os.fsync(f.fileno())
                return TmpFile(path, base, size, vsize)
        raise StoreError(SERVERBUG, "could not create a unique file name")

    def _open_tmp(self):
        for counter in range(1000):
            base = fn.new_basename(0, 0, counter)
            path = os.path.join(self.path, "tmp", base)
            try:
                return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path, counter
            except FileExistsError:
                continue
        raise StoreError(SERVERBUG, "could not create a unique file name")

    def _finish_tmp(self, path: str, counter: int, size: int, vsize: int) -> TmpFile:
        # The final base carries S= and W=, known only now; same time/pid part.
        head = os.path.basename(path).split(",", 1)[0]
        base = f"{head},S={size},W={vsize}"
        final = os.path.join(self.path, "tmp", base)
        os.rename(path, final)
        return TmpFile(final, base, size, vsize)

    def commit(self, items: list[tuple[TmpFile, frozenset]]) -> tuple[list[int], int]:
        """Move tmp files into new/ or cur/ and give them UIDs.  → (uids, uidvalidity)."""
        with self.lock():
            summary = ul_mod.read_summary(self.uidlist_path)
            if summary is None or summary.version != 3:
                self.read_or_create_uidlist() if summary is None else self._upgrade_uidlist()
                summary = ul_mod.read_summary(self.uidlist_path)
            wanted_kw = {f for _, flags in items for f in flags if f not in fn.SYSTEM_FLAGS}
            names = kw.read(self.keywords_path)
            if wanted_kw:
                names = kw.add(self.keywords_path, names, sorted(wanted_kw), self.fsync)
            index = kw.index_map(names)
            dirs = set()
            entries = []
            next_uid = summary.effective_next_uid()
            for tmp, flags in items:
                if flags:
                    dest = os.path.join(self.path, "cur",
                                        fn.full_name(tmp.base, fn.info_from_flags(flags, index)))
                    dirs.add("cur")
                else:
                    dest = os.path.join(self.path, "new", tmp.base)
                    dirs.add("new")
                os.rename(tmp.path, dest)
                entries.append(ul_mod.Entry(next_uid, tmp.base))
                next_uid += 1
            # The records go in right after the renames, and both are made durable after: a
            # session listing new/ in between found files without records, read the whole
            # uidlist, waited for this lock and read it again (one IMAP-mix profile: 4 % of a
            # worker's Python time).  Durable before we return either way.
            ul_mod.append_records(self.uidlist_path, summary, entries, fsync=False)
            for d in dirs:
                self._fsync_dir(os.path.join(self.path, d))
            if self.fsync:
                sync_path(self.uidlist_path, data_only=True)
            return [e.uid for e in entries], summary.uidvalidity

    def _upgrade_uidlist(self) -> None:
        """Rewrite a version 1 file as version 3 (caller holds the lock)."""
        ul = ul_mod.read(self.uidlist_path)
        ul_mod.write(self.uidlist_path, ul, self.fsync)

    def _fsync_dir(self, path: str) -> None:
        if self.fsync:
            sync_path(path)


def _chunks(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        for i in range(0, len(data), CHUNK):
            yield data[i:i + CHUNK]
        return
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            return
        yield bytes(chunk)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
