"""One open mailbox (one session): state, records, flags, expunge, copy/move, \\Recent, POP3
UIDLs.  Keeping the index in step with the maildir is in ``sync.py`` (IndexSync), the parse cache
in ``cache.py`` (ParseCache); both are mixed into ``Mailbox``.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import operator
import logging
import os
import sqlite3
import threading
import weakref

from pymail.store import filename as fn
from pymail.store import keywords as kw
from pymail.store import snapshot
from pymail.store import uidlist as ul_mod
from pymail.store.cache import ParseCache
from pymail.store.errors import BADNAME, EXPUNGED, StoreError
from pymail.store.folder import Folder
from pymail.store.index import (SCAN_THRESHOLD, Index, execute_in, existing_index,
                                flag_columns, select_in)
from pymail.store.walkeeper import add_background_task, keep_open
from pymail.store.sync import IndexSync, gc_paused
from pymail.store.types import Change, MessageRecord, SyncResult, with_date
from pymail.store.uidl import expand_uidl

log = logging.getLogger(__name__)
SHARED_VIEWS = 32   # mailboxes whose records() view is kept per process for new sessions
_shared_lock = threading.Lock()
_shared: dict[str, tuple] = {}   # index path → (generation, modseq, {uid: record}, [records])
UIDLIST_STALE_PERCENT = 25   # rewrite dovecot-uidlist when stale records pass this share
_RECORD_SELECT = ("SELECT uid, flags, modseq, vsize, mtime, COALESCE(guid, base) "
                  "FROM records")
_DATE_SELECT = "SELECT uid, base, subdir, info, mtime FROM records"
# A STORE puts its records into the shared view (a copy: ~0.2 µs a message) when that is
# cheaper than the next session reading the changed rows back (~5 µs a row).
VIEW_COPY_RATIO = 25
_SYSTEM_BY_LOWER = {f.lower(): f for f in fn.SYSTEM_FLAGS}


def normalize_flags(flags) -> frozenset:
    """Canonical IMAP flags: system flags in their RFC 3501 spelling; \\Recent dropped."""
    out = set()
    for flag in flags:
        if not isinstance(flag, str) or not flag:
            raise StoreError(BADNAME, "invalid flag")
        if flag.startswith("\\"):
            canon = _SYSTEM_BY_LOWER.get(flag.lower())
            if canon is None:
                if flag.lower() == "\\recent":
                    continue
                raise StoreError(BADNAME, f"unknown system flag {flag}")
            out.add(canon)
        else:
            if not kw.is_valid(flag):
                raise StoreError(BADNAME, f"invalid keyword {flag!r}")
            out.add(flag)
    return frozenset(out)


_uid_of = operator.itemgetter(0)


def _parsed_meta(meta: dict) -> dict:
    meta["stamp"] = json.loads(meta["stamp"]) if meta.get("stamp") else None
    meta["highest_modseq"] = int(meta.get("highest_modseq") or 0)
    meta.setdefault("generation", None)
    return meta


def _unread_dates(rows, known: dict) -> list:
    """Date rows (uid, base, subdir, info, mtime): the dates the index has go into ``known``;
    → (uid, base, subdir, info) of those it has not read yet."""
    todo = []
    for uid, base, subdir, info, mtime in rows:
        if mtime is not None:
            known[uid] = mtime
        else:
            todo.append((uid, base, subdir, info))
    return todo


def _name_time(base: str) -> float:
    """The delivery time a maildir base name starts with ("<sec>.…"), else 0."""
    sec = base.partition(".")[0]
    return float(sec) if sec.isascii() and sec.isdigit() else 0.0


_snapshot_looked: dict[str, tuple] = {}   # index path → (generation, modseq) last considered


def save_view_snapshots() -> list[str]:
    """Save this process's records views of big mailboxes into their indexes where the saved
    one is missing or stale (``snapshot.wanted``), for other processes' first look.  Run by
    the WAL keeper's thread once a second, never inside a command.  → the paths saved."""
    with _shared_lock:
        views = [(path, view[0], view[1], view[3]) for path, view in _shared.items()
                 if len(view[3]) >= snapshot.MIN_MESSAGES]
    if len(_snapshot_looked) > 4 * SHARED_VIEWS:
        _snapshot_looked.clear()
    saved = []
    for path, generation, modseq, ordered in views:
        if _snapshot_looked.get(path) == (generation, modseq):
            continue
        _snapshot_looked[path] = (generation, modseq)
        try:
            with existing_index(path) as index:
                if index is None or not snapshot.wanted(index.db, generation, modseq,
                                                        len(ordered)):
                    continue
                columns = snapshot.pack(list(ordered))    # a copy: dates are patched in place
                with index.write() as db:
                    if snapshot.save(db, generation, modseq, columns):
                        saved.append(path)
        except (sqlite3.Error, OSError, TypeError, ValueError, OverflowError) as exc:
            log.debug("snapshot of %s not saved: %s", path, exc)
    return saved


add_background_task(save_view_snapshots)


def _weak_call(method):
    """``method`` (bound) as a callable that does nothing once its object is gone."""
    ref = weakref.WeakMethod(method)

    def call():
        bound = ref()
        if bound is not None:
            bound()
    return call


def _shared_view(path: str):
    with _shared_lock:
        return _shared.get(path)


def _publish_view(path: str, generation, modseq: int, records: dict, ordered: list) -> None:
    """Offer this session's (never mutated) view to later sessions of the same process."""
    with _shared_lock:
        old = _shared.get(path)
        if old is not None and old[0] == generation and old[1] >= modseq:
            return
        _shared.pop(path, None)
        _shared[path] = (generation, modseq, records, ordered)
        while len(_shared) > SHARED_VIEWS:
            del _shared[next(iter(_shared))]


class _Relister:
    """A STORE's second try for a file that was not where the index said (another process
    renamed it): the folder is listed once per STORE, on first need."""

    def __init__(self, mailbox, fds: dict):
        self._mailbox, self._fds, self._listing = mailbox, fds, None

    def rename(self, base: str, dst_name: str) -> str | None:
        """Rename ``base``'s file, wherever it is now, to ``dst_name`` in cur/ → the subdir it
        was in, or None when it is gone (expunged meanwhile)."""
        if self._listing is None:
            self._listing = self._mailbox._list_dir()
        found = self._listing.get(base)
        if found is None:
            return None
        subdir, info = found
        try:
            os.rename(self._mailbox._fname(base, info), dst_name,
                      src_dir_fd=self._fds[subdir], dst_dir_fd=self._fds["cur"])
        except (FileNotFoundError, KeyError):
            return None
        return subdir


class Mailbox(IndexSync, ParseCache):
    """Safe to use from one thread at a time; many instances in many processes is normal."""

    def __init__(self, account, name: str, folder: Folder, index_path: str):
        self.account = account
        self.name = name
        self.folder = folder
        self._fsync = folder.fsync
        self.index = Index(index_path)
        # a failed write-behind: the next use of the table builds it again (weak: no cycle
        # that would keep the connection open past the last reference to this object)
        self.index.rebuild = _weak_call(self._rebuild_lost_rows)
        self._flagsets: dict[str, frozenset] = {}
        self._known: set[int] | None = None
        self._seen_modseq = 0
        self._generation = None
        self._records: dict[int, MessageRecord] | None = None
        self._records_list: list[MessageRecord] = []
        self._records_modseq = 0
        self._records_generation = None
        self._meta_cache = None
        self._bulk_view = None
        try:
            self._refresh()
            self._init_session()
        except BaseException:
            self.index.close()
            raise
        keep_open(index_path)

    def close(self) -> None:
        self.index.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- state -------------------------------------------------------------------------------

    @property
    def uidvalidity(self) -> int:
        return int(self.index.get("uidvalidity"))

    @property
    def uidnext(self) -> int:
        return int(self.index.get("uidnext"))

    @property
    def highest_modseq(self) -> int:
        return int(self.index.get("highest_modseq"))

    @property
    def mailbox_guid(self) -> str:
        return self.index.get("guid")

    def count(self) -> int:
        return self.index.counts()[0]

    def unseen_count(self) -> int:
        return self.index.counts()[1]

    def size(self) -> int:
        """Physical bytes of all messages (quota size)."""
        return self.index.counts()[2]

    def first_unseen_uid(self) -> int | None:
        row = self.index.db.execute("SELECT MIN(uid) FROM records WHERE seen = 0").fetchone()
        return row[0]

    def _flagset(self, text: str) -> frozenset:
        fs = self._flagsets.get(text)
        if fs is None:
            fs = frozenset(text.split(" ")) if text else frozenset()
            self._flagsets[text] = fs
        return fs

    def records(self) -> list[MessageRecord]:
        """All messages, ordered by UID, as the index has them now (call ``sync()`` first).

        A session's first call starts from the newest view another session of this process
        published (or reads every row); later calls read only rows whose modseq moved and the
        expunge log, so a warm full UID+FLAGS scan costs about a list copy."""
        self._update_view()
        return list(self._records_list)

    def _install_view(self, generation, modseq: int, ordered: list) -> None:
        """Take a records view made while filling the index in bulk (sync.py)."""
        self._records = dict(zip(map(_uid_of, ordered), ordered))
        self._records_list = ordered
        self._records_modseq = modseq
        self._records_generation = generation
        _publish_view(self.index.path, generation, modseq, self._records, ordered)

    def _update_view(self) -> None:
        if self._records is not None:
            meta = self._meta()
            if meta["generation"] == self._records_generation \
                    and meta["highest_modseq"] == self._records_modseq:
                return
        with self.index.read() as db:
            highest = int(self.index.get("highest_modseq", 0, db))
            generation = self.index.get("generation", None, db)
            if self._records is None or generation != self._records_generation:
                shared = _shared_view(self.index.path)
                if shared is not None and shared[0] == generation and shared[1] <= highest:
                    _, self._records_modseq, self._records, self._records_list = shared
                else:
                    # another process's view saved in the index (changes since: below), else
                    # every row
                    saved = snapshot.load(db, generation, highest, self._flagset)
                    if saved is not None:
                        self._records_modseq, self._records_list = saved
                    else:
                        rows = db.execute(_RECORD_SELECT + " ORDER BY uid").fetchall()
                        self._records_list = self._make_records(rows)
                        self._records_modseq = highest
                    self._records = dict(zip(map(_uid_of, self._records_list),
                                             self._records_list))
                self._records_generation = generation
            if highest != self._records_modseq:
                rows = db.execute(_RECORD_SELECT + " WHERE modseq > ?",
                                  (self._records_modseq,)).fetchall()
                gone = db.execute("SELECT uid FROM expunged WHERE modseq > ?",
                                  (self._records_modseq,)).fetchall()
                cache = dict(self._records)      # copy on write: the old one may be shared
                reorder = False
                for (uid,) in gone:
                    if cache.pop(uid, None) is not None:
                        reorder = True
                for rec in self._make_records(rows):
                    if rec.uid not in cache:
                        reorder = True
                    cache[rec.uid] = rec
                if reorder:
                    self._records_list = [cache[u] for u in sorted(cache)]
                else:
                    self._records_list = [cache[r.uid] for r in self._records_list]
                self._records = cache
                self._records_modseq = highest
            _publish_view(self.index.path, generation, highest, self._records,
                          self._records_list)

    def _make_records(self, rows) -> list[MessageRecord]:
        """Records from ``_RECORD_SELECT`` rows, each distinct flag text turned into its shared
        set once (a session reading a 10,000-message view another process built spent half
        its first SELECT in two calls per row)."""
        for text in {row[1] for row in rows}:
            self._flagset(text)
        flagsets, new = self._flagsets, tuple.__new__
        return [new(MessageRecord, (uid, flagsets[flags], modseq, vsize, mtime, guid))
                for uid, flags, modseq, vsize, mtime, guid in rows]

    def record(self, uid: int) -> MessageRecord | None:
        rows = self.index.db.execute(_RECORD_SELECT + " WHERE uid=?", (uid,)).fetchall()
        return self._make_records(rows)[0] if rows else None

    def internal_dates(self, uids) -> dict[int, float]:
        """uid → internal date (the file's mtime, as Dovecot's received date) for ``uids``.

        An index built in bulk (a first SELECT) leaves the dates NULL: a ``stat()`` per message
        would double that SELECT.  They are read here on first use and kept in the index
        (without a new modseq: the date of a message never changes).  A message whose file
        vanished under a record gets the delivery time its name starts with; one no longer
        in the index is left out."""
        with gc_paused():
            return self._internal_dates(set(uids))

    def _internal_dates(self, wanted: set) -> dict[int, float]:
        if len(wanted) > SCAN_THRESHOLD:
            rows = [r for r in self.index.db.execute(_DATE_SELECT) if r[0] in wanted]
        else:
            rows = self._date_rows(wanted)
        out: dict[int, float] = {}
        found, lost = self._stat_dates(_unread_dates(rows, out))
        if lost:            # renamed by a flag change elsewhere, or expunged: look again
            self._refresh()
            more, lost = self._stat_dates(_unread_dates(self._date_rows(u for u, _ in lost), out))
            found += more
            out.update((u, _name_time(base)) for u, base in lost)
        if found:
            with self.index.write() as db:
                db.executemany("UPDATE records SET mtime=? WHERE uid=? AND mtime IS NULL",
                               [(t, u) for u, t in found])
            self._patch_dates(found)
            out.update(found)
        return out

    def _date_rows(self, uids) -> list:
        return select_in(self.index.db, _DATE_SELECT + " WHERE uid IN ({marks})", sorted(uids))

    def _stat_dates(self, rows) -> tuple[list, list]:
        """→ ([(uid, mtime)], [(uid, base)] of files not found).  ``stat()`` relative to an
        open new/ or cur/ (no path joins, a shorter lookup in the kernel)."""
        found, lost = [], []
        if not rows:
            return found, lost
        with self._dir_fds() as fds:
            stat = os.stat
            for uid, base, subdir, info in rows:
                try:
                    found.append((uid, stat(self._fname(base, info),
                                            dir_fd=fds[subdir]).st_mtime))
                except (FileNotFoundError, KeyError):
                    lost.append((uid, base))
        return found, lost

    def _patch_dates(self, found) -> None:
        """Put dates just read into the records view, in place: views other sessions share
        may learn them too, as a date only ever goes from unknown to known."""
        records, ordered = self._records, self._records_list
        if records is None:
            return
        for uid, t in found:
            rec = records.get(uid)
            if rec is not None and rec.internal_date is None:
                records[uid] = with_date(rec, t)
        ordered[:] = [records.get(r.uid, r) for r in ordered]   # one step under the GIL

    def uids(self) -> list[int]:
        return [r[0] for r in self.index.db.execute("SELECT uid FROM records ORDER BY uid")]

    # -- sessions ----------------------------------------------------------------------------

    def _init_session(self) -> None:
        # The records view (often another session's, shared) is one consistent snapshot:
        # its UIDs, modseq and generation are where this session's sync() starts.
        self._update_view()
        self._known = set(self._records)
        self._seen_modseq = self._records_modseq
        self._generation = self._records_generation

    def _meta(self) -> dict:
        """The index's stamp, highest modseq and generation, read again only when something
        was committed since the last look (a command on a quiet mailbox then costs the
        directory stats and one PRAGMA instead of five queries)."""
        if self.index.writing_behind():      # its meta, without waiting for its rows
            get = self.index.get
            meta = {key: get(key) for key in ("stamp", "highest_modseq", "generation")}
            return _parsed_meta(meta)
        token = self.index.version()
        cached = self._meta_cache
        if cached is not None and cached[0] == token:
            return cached[1]
        meta = _parsed_meta(dict(self.index.db.execute(
            "SELECT key, value FROM meta WHERE key IN ('stamp', 'highest_modseq', 'generation')")))
        self._meta_cache = (token, meta)
        return meta

    def sync(self) -> SyncResult:
        """What changed since this object last looked (other sessions, processes, Dovecot).
        A flag change made through this object while it had seen everything else is not
        reported again (``store_flags`` returned its records)."""
        self._refresh()
        meta = self._meta()
        if meta["generation"] == self._generation and meta["highest_modseq"] == self._seen_modseq:
            return SyncResult([], [], [])
        with self.index.read() as db:
            highest = int(self.index.get("highest_modseq", 0, db))
            generation = self.index.get("generation", None, db)
            if generation != self._generation:
                # The index was rebuilt: compare whole UID sets.
                current = {r[0]: r[1] for r in db.execute("SELECT uid, modseq FROM records")}
                added = sorted(set(current) - self._known)
                expunged = sorted(self._known - set(current))
                changed = sorted(u for u in current if u in self._known)
                self._known = set(current)
                self._generation = generation
                self._seen_modseq = highest
                return SyncResult(added, expunged, changed)
            if highest == self._seen_modseq:
                return SyncResult([], [], [])
            rows = db.execute("SELECT uid FROM records WHERE modseq > ? ORDER BY uid",
                              (self._seen_modseq,)).fetchall()
            gone = db.execute("SELECT uid FROM expunged WHERE modseq > ? ORDER BY uid",
                              (self._seen_modseq,)).fetchall()
        known = self._known
        added = [u for (u,) in rows if u not in known]
        changed = [u for (u,) in rows if u in known]
        expunged = [u for (u,) in gone if u in known]
        known.update(added)
        known.difference_update(expunged)
        self._seen_modseq = highest
        return SyncResult(added, expunged, changed)

    @property
    def seen_modseq(self) -> int:
        """The highest modseq this session's ``sync()`` has looked at."""
        return self._seen_modseq

    @property
    def generation(self):
        """Which build of the index this session's view belongs to (a rebuild changes it)."""
        return self._generation

    def sync_from(self, changes) -> SyncResult | None:
        """``sync()``'s answer computed from a ``changeset.ChangeSet`` another session read,
        without touching the index; None when ``changes`` cannot give it (it starts after
        what this session saw, or belongs to another build): then call ``sync()``."""
        known = self._known
        seen = self._seen_modseq
        if known is None or seen < changes.low or self._generation != changes.generation:
            return None
        if changes.highest <= seen:
            return SyncResult([], [], [])
        records = changes.records
        rows = [u for u in changes.changed if records[u].modseq > seen]
        added = [u for u in rows if u not in known]
        changed = [u for u in rows if u in known]
        expunged = [u for u, m in changes.expunged if m > seen and u in known]
        known.update(added)
        known.difference_update(expunged)
        self._seen_modseq = changes.highest
        return SyncResult(added, expunged, changed)

    def changes_since(self, modseq: int) -> list[Change]:
        with self.index.read() as db:
            rows = db.execute("SELECT uid, modseq, created FROM records WHERE modseq > ?",
                              (modseq,)).fetchall()
            gone = db.execute("SELECT uid, modseq FROM expunged WHERE modseq > ?",
                              (modseq,)).fetchall()
        out = [Change(uid, ms, "append" if created > modseq else "flags")
               for uid, ms, created in rows]
        out += [Change(uid, ms, "expunge") for uid, ms in gone]
        out.sort(key=lambda c: (c.modseq, c.uid))
        return out

    @property
    def first_recent_uid(self) -> int:
        """The lowest UID no session has claimed as \\Recent yet."""
        return int(self.index.get("first_recent_uid", 1))

    def peek_recent(self) -> list[int]:
        """UIDs \\Recent but not claimed by any session, without claiming them (EXAMINE,
        STATUS RECENT; RFC 3501 §6.3.2)."""
        return [r[0] for r in self.index.db.execute(
            "SELECT uid FROM records WHERE uid >= ? ORDER BY uid", (self.first_recent_uid,))]

    def claim_recent(self) -> list[int]:
        """UIDs \\Recent for the caller; each UID is recent in exactly one session (RFC 3501
        §2.3.2).  Claimed messages still in new/ move to cur/ as Dovecot does."""
        self._refresh()
        first = self.first_recent_uid
        # Nothing unclaimed: no write transaction (every SELECT asks).  Every row's UID is
        # below uidnext (``_scan`` sets both in one transaction), so the meta alone answers
        # the usual case — also while a first build's rows are still being written.
        if first >= self.uidnext or self.index.db.execute(
                "SELECT 1 FROM records WHERE uid >= ? LIMIT 1", (first,)).fetchone() is None:
            return []
        with self.index.write() as db:
            first = int(self.index.get("first_recent_uid", 1, db))
            rows = db.execute("SELECT uid, base, subdir, info FROM records WHERE uid >= ? "
                              "ORDER BY uid", (first,)).fetchall()
            self.index.set("first_recent_uid", int(self.index.get("uidnext", 1, db)), db)
            moving = [r for r in rows if r[2] == "new"]
            with self.own_changes(db) if moving else contextlib.nullcontext():
                for uid, base, subdir, info in moving:
                    src = os.path.join(self.folder.path, "new", self._fname(base, info))
                    new_info = info or ""
                    dst = os.path.join(self.folder.path, "cur", fn.full_name(base, new_info))
                    try:
                        os.rename(src, dst)
                    except FileNotFoundError:
                        continue   # someone else moved it; the next refresh sees where
                    db.execute("UPDATE records SET subdir='cur', info=? WHERE uid=?", (new_info, uid))
        return [r[0] for r in rows]

    # -- reading messages --------------------------------------------------------------------

    @staticmethod
    def _fname(base: str, info: str | None) -> str:
        return base if info is None else fn.full_name(base, info)

    def _row(self, uid: int):
        return self.index.db.execute(
            "SELECT base, subdir, info, size, vsize, pop3, COALESCE(guid, base) FROM records WHERE uid=?",
            (uid,)).fetchone()

    def message_path(self, uid: int) -> str:
        row = self._row(uid)
        if row is None:
            raise StoreError(EXPUNGED, f"message {uid} does not exist")
        return os.path.join(self.folder.path, row[1], self._fname(row[0], row[2]))

    def open_message(self, uid: int):
        """The raw message as stored (LF or CRLF), as a binary file object."""
        for attempt in range(3):
            path = self.message_path(uid)
            try:
                return open(path, "rb")
            except FileNotFoundError:
                # Renamed (flag change elsewhere) or expunged: look again.
                self._refresh(force=True)
        raise StoreError(EXPUNGED, f"message {uid} was expunged")

    def message_size(self, uid: int) -> int:
        row = self._row(uid)
        if row is None:
            raise StoreError(EXPUNGED, f"message {uid} does not exist")
        return row[4]

    def pop3_uidl(self, uid: int, fmt: str = "%08Xu%08Xv") -> str:
        """The UIDL Dovecot would show: the uidlist ``P`` field, else ``fmt`` expanded as
        Dovecot's ``pop3_uidl_format`` (see uidl.py: ``%X`` is lower-case hex, as in Dovecot)."""
        row = self._row(uid)
        if row is None:
            raise StoreError(EXPUNGED, f"message {uid} does not exist")
        base, _, _, _, _, pop3, guid = row
        if pop3:
            return pop3
        return expand_uidl(fmt, uid, self.uidvalidity, base, guid,
                            lambda: self._header_md5(uid))

    def pop3_uidls(self, fmt: str = "%08Xu%08Xv") -> dict[int, str]:
        """pop3_uidl() of every message with one index query (POP3 UIDL at login)."""
        uidvalidity = self.uidvalidity
        out = {}
        for uid, base, pop3, guid in self.index.db.execute(
                "SELECT uid, base, pop3, COALESCE(guid, base) FROM records ORDER BY uid"):
            out[uid] = pop3 or expand_uidl(fmt, uid, uidvalidity, base, guid,
                                           lambda u=uid: self._header_md5(u))
        return out

    def _header_md5(self, uid: int) -> str:
        import hashlib
        with self.open_message(uid) as f:
            header = bytearray()
            for line in f:
                if line in (b"\n", b"\r\n"):
                    break
                header += line
        return hashlib.md5(bytes(header)).hexdigest()

    # -- changing flags ----------------------------------------------------------------------

    def store_flags(self, uids, flags, mode: str = "add", unchanged_since: int | None = None):
        """→ (records of every existing uid in ``uids`` after the change, failed uids).

        ``failed`` lists UIDs whose modseq is above ``unchanged_since`` (RFC 7162 §3.2).
        Messages whose flags do not change keep their modseq.
        """
        if mode not in ("add", "remove", "replace"):
            raise ValueError(f"bad mode {mode!r}")
        flags = normalize_flags(flags)
        wanted = sorted(set(uids))
        self._refresh()
        updated, failed = [], []
        with self.index.write() as db:
            highest = int(self.index.get("highest_modseq", 0, db))
            generation = self.index.get("generation", None, db)
            in_step = self._known is not None and (generation, highest) == (
                self._generation, self._seen_modseq)
            view_in_step = self._records is not None and (generation, highest) == (
                self._records_generation, self._records_modseq)
            rows = self._rows_for(db, wanted)
            names = kw.read(self.folder.keywords_path)
            new_kw = [f for f in flags if f not in fn.SYSTEM_FLAGS]
            if mode != "remove" and any(k.lower() not in kw.index_map(names) for k in new_kw):
                with self.folder.lock():
                    names = kw.add(self.folder.keywords_path, kw.read(self.folder.keywords_path),
                                   new_kw, self._fsync)
            index = kw.index_map(names)
            kw_canon = {name.lower(): name for name in names.values()}
            # keywords compare case-insensitively (as Dovecot): use the file's spelling
            flags = frozenset(f if f in fn.SYSTEM_FLAGS else kw_canon.get(f.lower(), f)
                              for f in flags)
            modseq = None
            changes: dict[tuple, list] = {}   # (moves out of new/, \\Seen changes) → rows
            # (flags text, info) → (old set, unchanged?, new set, new text, new info, seen,
            # \\Seen changed?): worked out once per combination, not per message
            outcome: dict[tuple, tuple] = {}
            record = tuple.__new__
            with self.own_changes(db), self._dir_fds() as fds:
                moved_away = _Relister(self, fds)
                for uid, base, subdir, info, flag_text, rec_modseq, vsize, mtime, guid in rows:
                    if unchanged_since is not None and rec_modseq > unchanged_since:
                        failed.append(uid)
                        continue
                    result = outcome.get((flag_text, info))
                    if result is None:
                        result = outcome[(flag_text, info)] = self._flag_outcome(
                            self._flagset(flag_text), flags, mode, kw_canon, index, info)
                    old, unchanged, new, text, new_info, seen, seen_changed = result
                    if unchanged:
                        updated.append(record(MessageRecord,
                                              (uid, old, rec_modseq, vsize, mtime, guid)))
                        continue
                    dst_name = fn.full_name(base, new_info)
                    try:
                        os.rename(self._fname(base, info), dst_name,
                                  src_dir_fd=fds[subdir], dst_dir_fd=fds["cur"])
                    except (FileNotFoundError, KeyError):
                        subdir = moved_away.rename(base, dst_name)
                        if subdir is None:
                            continue    # expunged meanwhile; the next refresh records it
                    if modseq is None:
                        modseq = self._next_modseq(db)
                    changes.setdefault((subdir != "cur", seen_changed, new_info, text, seen),
                                       []).append(uid)
                    updated.append(record(MessageRecord, (uid, new, modseq, vsize, mtime, guid)))
                # One UPDATE per outcome and IN list, not one per message (a STORE of 1,000
                # spent 2 ms in per-row statements).  Only the columns that change are named:
                # an UPDATE touches the indexes and triggers of the columns it names.
                for (moved, seen_changed, new_info, text, seen), group in changes.items():
                    execute_in(db, "UPDATE records SET info=?, flags=?, modseq=?"
                               + (", subdir='cur'" if moved else "")
                               + (", seen=?" if seen_changed else "") + " WHERE uid IN ({marks})",
                               (new_info, text, modseq, *((seen,) if seen_changed else ())),
                               group)
        if modseq is not None:       # committed.  If this session had seen every other change:
            if in_step:               # its next sync() need not read its own back (the caller
                self._seen_modseq = modseq                          # has the records),
            changed = [r for r in updated if r.modseq == modseq]
            if view_in_step and len(changed) * VIEW_COPY_RATIO >= len(self._records):
                self._advance_view(changed, modseq)   # and this process's next session
                                                      # starts from here
        return updated, failed

    def _advance_view(self, changed: list, modseq: int) -> None:
        """The records view with ``changed`` put in, published for this process's next
        sessions (copy on write: the old view may be shared)."""
        records, ordered = dict(self._records), list(self._records_list)
        for rec in changed:
            if rec.uid in records:
                records[rec.uid] = rec
                i = bisect.bisect_left(ordered, rec.uid, key=_uid_of)
                ordered[i] = rec
        self._records, self._records_list, self._records_modseq = records, ordered, modseq
        _publish_view(self.index.path, self._records_generation, modseq, records, ordered)

    def _flag_outcome(self, old: frozenset, flags: frozenset, mode: str, kw_canon: dict,
                      index: dict, info: str | None) -> tuple:
        """What a STORE does to one combination of flags and info letters: (old flags,
        unchanged?, new flags as the shared set of their text, that text, new info letters,
        1 if \\Seen, \\Seen changed?)."""
        if mode == "add":
            new = old | flags
        elif mode == "remove":
            new = old - flags
        else:
            new = flags
        new = frozenset(f if f in fn.SYSTEM_FLAGS else kw_canon.get(f.lower(), f) for f in new)
        text, seen = flag_columns(new)
        return (old, new == old, self._flagset(text), text,
                fn.info_from_flags(new, index, info or ""), seen, seen != ("\\Seen" in old))

    @contextlib.contextmanager
    def _dir_fds(self):
        """new/ and cur/ opened, for calls relative to them (no path joins, shorter lookups
        in the kernel); a directory that is missing has no entry."""
        fds = {}
        try:
            for sub in ("new", "cur"):
                with contextlib.suppress(FileNotFoundError):
                    fds[sub] = os.open(os.path.join(self.folder.path, sub),
                                       os.O_RDONLY | os.O_DIRECTORY)
            yield fds
        finally:
            for fd in fds.values():
                os.close(fd)

    @staticmethod
    def _rows_for(db, uids):
        return select_in(db, "SELECT uid, base, subdir, info, flags, modseq, vsize, mtime, "
                             "COALESCE(guid, base) FROM records WHERE uid IN ({marks}) "
                             "ORDER BY uid", uids)

    # -- adding and removing messages --------------------------------------------------------

    def append(self, source, flags=(), internal_date: float | None = None) -> int:
        result = self.account._deliver_to(self.name, self.folder, source, flags, internal_date)
        return result.uid

    def copy(self, uids, dest_name: str) -> list[tuple[int, int]]:
        """→ [(source uid, new uid)] for the messages that still exist (UIDPLUS COPYUID)."""
        return self._copy(uids, dest_name, check_quota=True)

    def _copy(self, uids, dest_name: str, check_quota: bool) -> list[tuple[int, int]]:
        self._refresh()
        dest = self.account._folder_for(dest_name)
        wanted = sorted(set(uids))
        with self.index.read() as db:
            rows = self._rows_for(db, wanted)
        if not rows:
            return []
        with self.account._quota.locked():
            return self._copy_locked(rows, dest, check_quota)

    def _copy_locked(self, rows, dest, check_quota: bool) -> list[tuple[int, int]]:
        if check_quota:
            self.account._quota.check(sum(self._physical(r) for r in rows), len(rows))
        items, sources = [], []
        try:
            for uid, base, subdir, info, flag_text, _ms, vsize, _mt, _g in rows:
                path = os.path.join(self.folder.path, subdir, self._fname(base, info))
                size = fn.size_fields(base)[0]
                try:
                    if size is None:
                        size = os.stat(path).st_size
                    tmp = dest.link_tmp(path, size, vsize)
                except FileNotFoundError:
                    found = self._list_dir().get(base)
                    if found is None:
                        continue
                    path = os.path.join(self.folder.path, found[0], self._fname(base, found[1]))
                    try:
                        tmp = dest.link_tmp(path, size or os.stat(path).st_size, vsize)
                    except FileNotFoundError:
                        continue
                items.append((tmp, self._flagset(flag_text)))
                sources.append(uid)
            new_uids, _ = dest.commit(items)
        except BaseException:
            for tmp, _ in items:
                try:
                    os.unlink(tmp.path)
                except FileNotFoundError:
                    pass
            raise
        self.account._quota.add(sum(t.size for t, _ in items), len(items))
        return list(zip(sources, new_uids))

    @staticmethod
    def _physical(row) -> int:
        size = fn.size_fields(row[1])[0]
        return size if size is not None else row[6]

    def move(self, uids, dest_name: str) -> list[tuple[int, int]]:
        # Same account, net zero: a MOVE never fails on quota.
        pairs = self._copy(uids, dest_name, check_quota=False)
        self._expunge([src for src, _ in pairs], require_deleted=False)
        return pairs

    def expunge(self, uids=None) -> list[int]:
        """Remove messages flagged \\Deleted (only among ``uids`` when given)."""
        self._refresh()
        return self._expunge(None if uids is None else sorted(set(uids)), require_deleted=True)

    def _expunge(self, uids, require_deleted: bool) -> list[int]:
        # Files disappear and the quota line is written under the quota lock (quota.py).
        with self.account._quota.locked():
            return self._expunge_locked(uids, require_deleted)

    def _expunge_locked(self, uids, require_deleted: bool) -> list[int]:
        with self.index.write() as db:
            if uids is None:
                rows = db.execute("SELECT uid, base, subdir, info, flags, modseq, vsize, mtime, "
                                  "COALESCE(guid, base) FROM records WHERE flags LIKE ? "
                                  "ORDER BY uid", ("%\\Deleted%",)).fetchall()
            else:
                rows = self._rows_for(db, uids)
            if require_deleted:
                rows = [r for r in rows if "\\Deleted" in self._flagset(r[4])]
            if not rows:
                return []
            with self.own_changes(db):
                listing = None
                gone, freed = [], 0
                for uid, base, subdir, info, *_ in rows:
                    path = os.path.join(self.folder.path, subdir, self._fname(base, info))
                    size = fn.size_fields(base)[0]
                    try:
                        if size is None:
                            size = os.stat(path).st_size
                        os.unlink(path)
                    except FileNotFoundError:
                        if listing is None:
                            listing = self._list_dir()
                        found = listing.get(base)
                        if found is not None:
                            try:
                                os.unlink(os.path.join(self.folder.path, found[0],
                                                       self._fname(base, found[1])))
                            except FileNotFoundError:
                                pass
                        size = 0     # someone else removed it and counted it
                    gone.append(uid)
                    freed += size or 0
                modseq = self._next_modseq(db)
                db.executemany("DELETE FROM records WHERE uid=?", [(u,) for u in gone])
                db.executemany("INSERT OR REPLACE INTO expunged VALUES (?, ?)",
                               [(u, modseq) for u in gone])
                if self._fsync:
                    for sub in ("new", "cur"):
                        self.folder._fsync_dir(os.path.join(self.folder.path, sub))
            stale = int(self.index.get("uidlist_stale", 0, db)) + len(gone)
            live = self.index.counts()[0]
            if stale * 100 > live * UIDLIST_STALE_PERCENT:
                self._compress_uidlist(db)
                stale = 0
            self.index.set("uidlist_stale", stale, db)
        self.account._quota.add(-freed, -len(gone))
        return gone

    def _compress_uidlist(self, db) -> None:
        """Rewrite dovecot-uidlist with only the records of messages that still exist.

        Like Dovecot (maildir-uidlist.c keeps records until they pass 25 %), records of expunged
        messages stay until they are more than UIDLIST_STALE_PERCENT of the live ones, so an
        expunge in a 100,000-message folder does not rewrite a 5 MB file each time.  A stale
        record is harmless: its file name never comes back."""
        live = {r[0] for r in db.execute("SELECT base FROM records")}
        with self.folder.lock():
            ul = self.folder.read_or_create_uidlist()
            ul.next_uid = ul.effective_next_uid()
            top = max((e.uid for e in ul.entries), default=0)
            # keep records of files not indexed yet (delivered after our last scan)
            indexed_top = int(self.index.get("uidnext", 1, db))
            ul.entries = [e for e in ul.entries if e.base in live or e.uid >= indexed_top]
            ul.next_uid = max(ul.next_uid, top + 1)
            ul_mod.write(self.folder.uidlist_path, ul, self._fsync)
