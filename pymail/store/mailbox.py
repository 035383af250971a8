"""One open mailbox: the index kept in step with the maildir, and every message operation.

Truth lives in the maildir (files and their names) and its control files; ``_refresh()``
re-reads them when their stamps (mtime/size/inode of ``new/``, ``cur/``, ``dovecot-uidlist``,
``dovecot-keywords``) differ from what the index last saw, so ``sync()`` is a few stat() calls
when nothing changed.  A stamp taken within ``DIRTY_WINDOW`` seconds of a change is not trusted
(mtime granularity) and the next refresh rescans.

Modseq rule (RFC 7162 needs modseqs that never go down under one UIDVALIDITY): when an index is
(re)built its highest modseq starts at ``max(wall clock in microseconds, floor + 1)`` where the
floor is kept in the control file ``pymail-modseq`` next to ``dovecot-uidlist``.  Every time the
highest modseq passes the floor, the floor is moved ``FLOOR_STEP`` ahead (written before use).
So deleting the index, or taking over a Dovecot maildir (whose modseqs count up from 1), always
yields modseqs above any a client has seen.
"""

from __future__ import annotations

import json
import os
import time

from pymail.store import filename as fn
from pymail.store import parse
from pymail.store import keywords as kw
from pymail.store import uidlist as ul_mod
from pymail.store.errors import BADNAME, EXPUNGED, NONEXISTENT, StoreError
from pymail.store.folder import Folder
from pymail.store.index import Index
from pymail.store.types import Change, MessageRecord, SyncResult

DIRTY_WINDOW_NS = 1_000_000_000
FLOOR_STEP = 1_000_000
SCAN_THRESHOLD = 2000     # above this many UIDs, one table scan beats IN (...) lookups
MODSEQ_FILE = "pymail-modseq"
_RECORD_SELECT = ("SELECT uid, flags, modseq, vsize, mtime, COALESCE(guid, base) "
                  "FROM records")
_FNAME_SELECT = ("SELECT subdir || '/' || base || CASE WHEN info IS NULL THEN '' "
                 "ELSE ':2,' || info END FROM records")
_SYSTEM_BY_LOWER = {f.lower(): f for f in fn.SYSTEM_FLAGS}
_ATOM_SPECIALS = set('(){ %*"\\]') | {chr(i) for i in range(0x20)} | {"\x7f"}


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
            if any(c in _ATOM_SPECIALS or ord(c) > 0x7E for c in flag):
                raise StoreError(BADNAME, f"invalid keyword {flag!r}")
            out.add(flag)
    return frozenset(out)


def _order_key(base: str):
    """Maildir delivery order: "<sec>.M<usec>..." by time, then by name."""
    sec, _, rest = base.partition(".")
    usec = 0
    if rest.startswith("M"):
        digits = rest[1:].split("P", 1)[0]
        usec = int(digits) if digits.isdigit() else 0
    return (int(sec) if sec.isdigit() else 0, usec, base)


class Mailbox:
    """Safe to use from one thread at a time; many instances in many processes is normal."""

    def __init__(self, account, name: str, folder: Folder, index_path: str):
        self.account = account
        self.name = name
        self.folder = folder
        self._fsync = folder.fsync
        self.index = Index(index_path)
        self._flagsets: dict[str, frozenset] = {}
        self._known: set[int] | None = None
        self._seen_modseq = 0
        self._generation = None
        self._records: dict[int, MessageRecord] | None = None
        self._records_list: list[MessageRecord] = []
        self._records_modseq = 0
        self._records_generation = None
        self._refresh()
        self._init_session()

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

        The first call reads every row; later calls only read rows whose modseq moved and the
        expunge log, so a warm session's full UID+FLAGS scan costs about a list copy."""
        with self.index.read() as db:
            highest = int(self.index.get("highest_modseq", 0, db))
            generation = self.index.get("generation", None, db)
            if self._records is None or generation != self._records_generation:
                rows = db.execute(_RECORD_SELECT + " ORDER BY uid").fetchall()
                self._records = {row[0]: self._make_record(row) for row in rows}
                self._records_list = list(self._records.values())
            elif highest != self._records_modseq:
                rows = db.execute(_RECORD_SELECT + " WHERE modseq > ?",
                                  (self._records_modseq,)).fetchall()
                gone = db.execute("SELECT uid FROM expunged WHERE modseq > ?",
                                  (self._records_modseq,)).fetchall()
                cache = self._records
                reorder = False
                for (uid,) in gone:
                    if cache.pop(uid, None) is not None:
                        reorder = True
                for row in rows:
                    if row[0] not in cache:
                        reorder = True
                    cache[row[0]] = self._make_record(row)
                if reorder:
                    self._records_list = [cache[u] for u in sorted(cache)]
                else:
                    self._records_list = [cache[r.uid] for r in self._records_list]
            self._records_modseq = highest
            self._records_generation = generation
        return list(self._records_list)

    def _make_record(self, row) -> MessageRecord:
        uid, flags, modseq, vsize, mtime, guid = row
        return tuple.__new__(MessageRecord, (uid, self._flagset(flags), modseq, vsize, mtime, guid))

    def record(self, uid: int) -> MessageRecord | None:
        row = self.index.db.execute(
            "SELECT uid, flags, modseq, vsize, mtime, COALESCE(guid, base) FROM records WHERE uid=?",
            (uid,)).fetchone()
        if row is None:
            return None
        return MessageRecord(row[0], self._flagset(row[1]), row[2], row[3], row[4], row[5])

    def uids(self) -> list[int]:
        return [r[0] for r in self.index.db.execute("SELECT uid FROM records ORDER BY uid")]

    # -- sessions ----------------------------------------------------------------------------

    def _init_session(self) -> None:
        with self.index.read() as db:
            self._known = {r[0] for r in db.execute("SELECT uid FROM records")}
            self._seen_modseq = int(self.index.get("highest_modseq", 0, db))
            self._generation = self.index.get("generation", None, db)

    def sync(self) -> SyncResult:
        """What changed since this object last looked (other sessions, processes, Dovecot)."""
        self._refresh()
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

    def claim_recent(self) -> list[int]:
        """UIDs \\Recent for the caller; each UID is recent in exactly one session (RFC 3501
        §2.3.2).  Claimed messages still in new/ move to cur/ as Dovecot does."""
        self._refresh()
        with self.index.write() as db:
            first = int(self.index.get("first_recent_uid", 1, db))
            rows = db.execute("SELECT uid, base, subdir, info FROM records WHERE uid >= ? "
                              "ORDER BY uid", (first,)).fetchall()
            self.index.set("first_recent_uid", int(self.index.get("uidnext", 1, db)), db)
            for uid, base, subdir, info in rows:
                if subdir != "new":
                    continue
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
        """The UIDL Dovecot would show: the uidlist ``P`` field, else ``fmt`` expanded.

        ``fmt`` follows Dovecot's ``pop3_uidl_format`` (default ``%08Xu%08Xv``): ``%u`` UID,
        ``%v`` UIDVALIDITY, ``%m`` MD5 of the header (hex), ``%f`` maildir base file name,
        ``%g`` GUID, ``%%``; a zero-padded width and ``X``/``x`` (hex) may precede the letter.
        """
        row = self._row(uid)
        if row is None:
            raise StoreError(EXPUNGED, f"message {uid} does not exist")
        base, _, _, _, _, pop3, guid = row
        if pop3:
            return pop3
        return _expand_uidl(fmt, uid, self.uidvalidity, base, guid,
                            lambda: self._header_md5(uid))

    def _header_md5(self, uid: int) -> str:
        import hashlib
        with self.open_message(uid) as f:
            header = bytearray()
            for line in f:
                if line in (b"\n", b"\r\n"):
                    break
                header += line
        return hashlib.md5(bytes(header)).hexdigest()

    # -- the parse cache (parse.py shapes) ---------------------------------------------------

    def envelope(self, uid: int) -> list:
        return parse.from_json(json.loads(self._parsed(uid)[0]))

    def bodystructure(self, uid: int, extended: bool = True) -> list:
        """BODYSTRUCTURE (``extended``) or BODY shape of RFC 3501 §7.4.2."""
        structure = parse.from_json(json.loads(self._parsed(uid)[2]))
        return structure if extended else parse.bodystructure_strip(structure)

    def raw_header(self, uid: int) -> bytes:
        """The header block as stored, with its closing blank line."""
        return bytes(self._parsed(uid)[3])

    def header_fields(self, uid: int, names, negate: bool = False) -> bytes:
        """BODY[HEADER.FIELDS (names)] (or .NOT with ``negate``): CRLF lines + blank line."""
        return parse.select_fields(bytes(self._parsed(uid)[3]), names, negate)

    def header_fields_many(self, uids, names, negate: bool = False) -> dict[int, bytes]:
        """header_fields for many messages with one index query (FETCH 1:* BODY[HEADER...])."""
        wanted = set(uids)
        self.cache_all(wanted)
        out: dict[int, bytes] = {}
        select = parse.field_selector(names, negate)
        if len(wanted) > SCAN_THRESHOLD:   # most of a big mailbox: one table scan is cheapest
            for uid, header in self.index.db.execute("SELECT uid, header FROM parsed"):
                if uid in wanted:
                    out[uid] = select(header)
            return out
        ordered = sorted(wanted)
        for i in range(0, len(ordered), 500):
            chunk = ordered[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for uid, header in self.index.db.execute(
                    f"SELECT uid, header FROM parsed WHERE uid IN ({marks})", chunk):
                out[uid] = select(header)
        return out

    def _parsed(self, uid: int):
        row = self.index.db.execute(
            "SELECT envelope, body, bodystructure, header FROM parsed WHERE uid=?",
            (uid,)).fetchone()
        if row is not None:
            return row
        with self.open_message(uid) as f:
            raw = f.read()
        row = parsed_row(raw)
        with self.index.write() as db:
            if db.execute("SELECT 1 FROM records WHERE uid=?", (uid,)).fetchone():
                db.execute("INSERT OR REPLACE INTO parsed (uid, envelope, body, bodystructure, "
                           "header) VALUES (?,?,?,?,?)", (uid, *row))
        return row

    def cache_all(self, uids=None) -> int:
        """Parse every message not yet in the parse cache (each file is read once).
        → how many were parsed."""
        if uids is not None and len(uids) <= SCAN_THRESHOLD:
            wanted = sorted(set(uids))
            have = set()
            for i in range(0, len(wanted), 500):
                chunk = wanted[i:i + 500]
                marks = ",".join("?" * len(chunk))
                have.update(r[0] for r in self.index.db.execute(
                    f"SELECT uid FROM parsed WHERE uid IN ({marks})", chunk))
            todo = [u for u in wanted if u not in have]
        else:
            todo = [r[0] for r in self.index.db.execute(
                "SELECT uid FROM records WHERE uid NOT IN (SELECT uid FROM parsed) ORDER BY uid")]
            if uids is not None:
                wanted_set = set(uids)
                todo = [u for u in todo if u in wanted_set]
        done = 0
        for i in range(0, len(todo), 500):
            batch = []
            for uid in todo[i:i + 500]:
                try:
                    with self.open_message(uid) as f:
                        batch.append((uid, *parsed_row(f.read())))
                except StoreError:
                    continue
            with self.index.write() as db:
                db.executemany("INSERT OR REPLACE INTO parsed (uid, envelope, body, bodystructure,"
                               " header) SELECT ?,?,?,?,? WHERE EXISTS "
                               "(SELECT 1 FROM records WHERE uid=?)",
                               [(*row, row[0]) for row in batch])
            done += len(batch)
        return done

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
            listing = None
            for uid, base, subdir, info, flag_text, rec_modseq, vsize, mtime, guid in rows:
                if unchanged_since is not None and rec_modseq > unchanged_since:
                    failed.append(uid)
                    continue
                old = self._flagset(flag_text)
                if mode == "add":
                    new = old | flags
                elif mode == "remove":
                    new = old - flags
                else:
                    new = flags
                new = frozenset(f if f in fn.SYSTEM_FLAGS else kw_canon.get(f.lower(), f)
                                for f in new)
                if new == old:
                    updated.append(MessageRecord(uid, old, rec_modseq, vsize, mtime, guid))
                    continue
                new_info = fn.info_from_flags(new, index, info or "")
                src_name = self._fname(base, info)
                for attempt in range(2):
                    try:
                        os.rename(os.path.join(self.folder.path, subdir, src_name),
                                  os.path.join(self.folder.path, "cur",
                                               fn.full_name(base, new_info)))
                        break
                    except FileNotFoundError:
                        if listing is None:
                            listing = self._list_dir()
                        found = listing.get(base)
                        if found is None or attempt:
                            src_name = None
                            break
                        subdir, info = found
                        src_name = self._fname(base, info)
                if src_name is None:
                    continue        # expunged meanwhile; the next refresh records it
                if modseq is None:
                    modseq = self._next_modseq(db)
                text = " ".join(sorted(new))
                db.execute("UPDATE records SET subdir='cur', info=?, flags=?, seen=?, modseq=? "
                           "WHERE uid=?", (new_info, text, int("\\Seen" in new), modseq, uid))
                updated.append(MessageRecord(uid, self._flagset(text), modseq, vsize, mtime, guid))
        return updated, failed

    def _rows_for(self, db, uids):
        rows = []
        for i in range(0, len(uids), 500):
            chunk = uids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rows += db.execute(
                "SELECT uid, base, subdir, info, flags, modseq, vsize, mtime, COALESCE(guid, base) FROM records "
                f"WHERE uid IN ({marks}) ORDER BY uid", chunk).fetchall()
        return rows

    # -- adding and removing messages --------------------------------------------------------

    def append(self, source, flags=(), internal_date: float | None = None) -> int:
        result = self.account._deliver_to(self.name, self.folder, source, flags, internal_date)
        return result.uid

    def copy(self, uids, dest_name: str) -> list[tuple[int, int]]:
        self._refresh()
        dest = self.account._folder_for(dest_name)
        wanted = sorted(set(uids))
        with self.index.read() as db:
            rows = self._rows_for(db, wanted)
        if not rows:
            return []
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
        pairs = self.copy(uids, dest_name)
        self._expunge([src for src, _ in pairs], require_deleted=False)
        return pairs

    def expunge(self, uids=None) -> list[int]:
        """Remove messages flagged \\Deleted (only among ``uids`` when given)."""
        self._refresh()
        return self._expunge(None if uids is None else sorted(set(uids)), require_deleted=True)

    def _expunge(self, uids, require_deleted: bool) -> list[int]:
        with self.index.write() as db:
            if uids is None:
                rows = db.execute("SELECT uid, base, subdir, info, flags, modseq, vsize, mtime, "
                                  "COALESCE(guid, base) FROM records ORDER BY uid").fetchall()
            else:
                rows = self._rows_for(db, uids)
            if require_deleted:
                rows = [r for r in rows if "\\Deleted" in self._flagset(r[4])]
            if not rows:
                return []
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
            self._drop_from_uidlist(set(gone))
        self.account._quota.add(-freed, -len(gone))
        return gone

    def _drop_from_uidlist(self, uids: set[int]) -> None:
        with self.folder.lock():
            ul = self.folder.read_or_create_uidlist()
            ul.next_uid = ul.effective_next_uid()
            ul.entries = [e for e in ul.entries if e.uid not in uids]
            ul_mod.write(self.folder.uidlist_path, ul, self._fsync)

    # -- keeping the index in step with the maildir ------------------------------------------

    def _stamp(self) -> tuple[list, list]:
        """(current stamp, stamp to save).  Parts: new/, cur/, dovecot-uidlist,
        dovecot-keywords as [mtime ns, size, inode] or "absent"; in the saved copy a part
        changed within DIRTY_WINDOW is "dirty", which never equals a real stamp."""
        now = time.time_ns()
        current, save = [], []
        for path in (os.path.join(self.folder.path, "new"), os.path.join(self.folder.path, "cur"),
                     self.folder.uidlist_path, self.folder.keywords_path):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                current.append("absent")
                save.append("absent")
                continue
            part = [st.st_mtime_ns, st.st_size, st.st_ino]
            current.append(part)
            save.append("dirty" if now - st.st_mtime_ns < DIRTY_WINDOW_NS else part)
        if current[1] == "absent":
            raise StoreError(NONEXISTENT, f"mailbox {self.name} no longer exists")
        return current, save

    def _list_dir(self) -> dict[str, tuple[str, str | None]]:
        """base → (subdir, info or None).  new/ is listed before cur/, so a file moving from
        new/ to cur/ meanwhile is seen at least once."""
        out: dict[str, tuple[str, str | None]] = {}
        for sub in ("new", "cur"):
            try:
                names = os.listdir(os.path.join(self.folder.path, sub))
            except FileNotFoundError:
                continue
            for name in names:
                if name.startswith("."):
                    continue
                pos = name.find(fn.INFO_SEP)
                if pos < 0:
                    out[name.split(":", 1)[0]] = (sub, None)
                else:
                    out[name[:pos]] = (sub, name[pos + 3:])
        return out

    def refresh(self, force: bool = False) -> bool:
        """Bring the index up to date with the maildir; True if it re-read the maildir."""
        return self._refresh(force)

    def rebuild_index(self) -> None:
        """Throw the cached state away and rebuild it from the maildir and control files.
        UIDs and UIDVALIDITY are unchanged (they live in dovecot-uidlist); modseqs restart above
        every earlier one (see the module docstring)."""
        with self.index.write() as db:
            self.index.reset(db)
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> bool:
        current, _ = self._stamp()
        if not force and self.index.get_json("stamp") == current:
            return False
        with self.index.write() as db:
            stored = self.index.get_json("stamp", db)
            if not force and stored == current:
                return False
            current, save = self._stamp()
            self._scan(db, None if force else stored, current)
            self.index.set_json("stamp", save, db)
        return True

    def _listing(self, dirs=("new", "cur")) -> set[str]:
        """Every message file in ``dirs`` as "new/<name>" or "cur/<name>".  new/ is listed
        before cur/, so a file moving from new/ to cur/ meanwhile is seen at least once."""
        out: set[str] = set()
        for sub in dirs:
            try:
                names = os.listdir(os.path.join(self.folder.path, sub))
            except FileNotFoundError:
                continue
            prefix = sub + "/"
            out.update(prefix + n for n in names if n[:1] != ".")
        return out

    @staticmethod
    def _indexed(db, dirs) -> set[str]:
        if len(dirs) == 2:
            return {r[0] for r in db.execute(_FNAME_SELECT)}
        return {r[0] for r in db.execute(_FNAME_SELECT + " WHERE subdir=?", (dirs[0],))}

    @staticmethod
    def _split_listed(item: str) -> tuple[str, str, str | None]:
        """"cur/<base>:2,<info>" → (base, subdir, info or None)."""
        sub, name = item[:3], item[4:]
        base, sep, info = name.partition(fn.INFO_SEP)
        if not sep:
            return base.split(":", 1)[0], sub, None
        return base, sub, info

    def _scan(self, db, stored, current) -> None:
        """Compare the directory listing with the index by full file name (set difference in
        C), then look at only the differences: renamed (flags changed), new, gone."""
        summary = ul_mod.read_summary(self.folder.uidlist_path)
        if summary is None:
            with self.folder.lock():
                self.folder.read_or_create_uidlist()
            summary = ul_mod.read_summary(self.folder.uidlist_path)
        fresh = self._check_uidvalidity(db, summary)
        names = kw.read(self.folder.keywords_path)
        both = ("new", "cur")
        if fresh or not isinstance(stored, list) or len(stored) != 4 or stored[3] != current[3]:
            dirs = both                      # keyword letters may mean something new
        else:
            dirs = tuple(d for i, d in enumerate(both) if stored[i] != current[i])
        listed = self._listing(dirs) if dirs else set()
        indexed = self._indexed(db, dirs) if dirs else set()
        missing = indexed - listed
        if missing and dirs != both:
            # moved between new/ and cur/, or removed: look at everything
            dirs = both
            listed, indexed = self._listing(), self._indexed(db, both)
            missing = indexed - listed
        if missing:
            listed |= self._listing()      # readdir can miss a file renamed meanwhile
            missing = indexed - listed
        appeared = listed - indexed
        seen_new: dict[str, tuple[str, str | None]] = {}
        for item in sorted(appeared):       # "cur/..." sorts before "new/...": cur wins
            base, sub, info = self._split_listed(item)
            seen_new.setdefault(base, (sub, info))
        missing_bases = {self._split_listed(item)[0] for item in missing}
        rows = self._rows_by_base(db, missing_bases | set(seen_new))
        modseq = None
        updates, gone = [], []
        for uid, base, subdir, info, flag_text in rows:
            where = seen_new.pop(base, None)
            if where is not None:
                new_flags = fn.flags_from_info(where[1] or "", names)
                updates.append((uid, where, new_flags, new_flags != self._flagset(flag_text)))
            elif base in missing_bases:
                gone.append(uid)
        if seen_new:
            modseq = self._next_modseq(db)
            self._insert_new(db, seen_new, names, modseq)
        if updates or gone:
            if modseq is None:
                modseq = self._next_modseq(db)
            for uid, (subdir, info), flags, changed in updates:
                if changed:
                    db.execute("UPDATE records SET subdir=?, info=?, flags=?, seen=?, modseq=? "
                               "WHERE uid=?", (subdir, info, " ".join(sorted(flags)),
                                               int("\\Seen" in flags), modseq, uid))
                else:
                    db.execute("UPDATE records SET subdir=?, info=? WHERE uid=?",
                               (subdir, info, uid))
            db.executemany("DELETE FROM records WHERE uid=?", [(u,) for u in gone])
            db.executemany("INSERT OR REPLACE INTO expunged VALUES (?, ?)",
                           [(u, modseq) for u in gone])
        top = db.execute("SELECT MAX(uid) FROM records").fetchone()[0] or 0
        summary = ul_mod.read_summary(self.folder.uidlist_path) or summary
        uidnext = max(int(self.index.get("uidnext", 1, db)), summary.effective_next_uid(),
                      top + 1)
        self.index.set("uidnext", uidnext, db)
        if fresh:
            row = db.execute("SELECT MIN(uid) FROM records WHERE subdir='new'").fetchone()
            self.index.set("first_recent_uid", row[0] or uidnext, db)

    def _rows_by_base(self, db, bases) -> list:
        bases = sorted(bases)
        rows = []
        for i in range(0, len(bases), 500):
            chunk = bases[i:i + 500]
            marks = ",".join("?" * len(chunk))
            rows += db.execute("SELECT uid, base, subdir, info, flags FROM records "
                               f"WHERE base IN ({marks})", chunk).fetchall()
        return rows

    def _uidlist_entries(self, db, wanted: set[str]) -> dict[str, ul_mod.Entry]:
        """uidlist records for ``wanted`` base names.  Reads only what was appended since the
        last scan when the file is the same inode (Dovecot appends too), else all of it; files
        without a record get UIDs under the lock."""
        found: dict[str, ul_mod.Entry] = {}
        offset = int(self.index.get("uidlist_offset", 0, db))
        tail = ul_mod.read_tail(self.folder.uidlist_path, offset,
                                self.index.get("uidlist_ino", None, db))
        if tail is not None:
            ino, entries, end = tail
            keep_from = end
            for pos, entry in entries:
                if entry.base in wanted:
                    found[entry.base] = entry
                elif keep_from == end:
                    keep_from = pos          # a record whose file we have not listed yet
            if len(found) == len(wanted):
                self.index.set("uidlist_offset", keep_from, db)
                self.index.set("uidlist_ino", ino, db)
                return found
        ul = self.folder.read_uidlist()
        by_base = ul.by_base() if ul is not None else {}
        found = {b: by_base[b] for b in wanted if b in by_base}
        if len(found) < len(wanted):
            with self.folder.lock():
                ul = self.folder.read_or_create_uidlist()
                by_base = ul.by_base()
                still = sorted((b for b in wanted if b not in by_base), key=_order_key)
                if still:
                    nxt = ul.effective_next_uid()
                    entries = [ul_mod.Entry(nxt + i, b) for i, b in enumerate(still)]
                    ul_mod.append(self.folder.uidlist_path, ul, entries, self._fsync)
                    by_base.update((e.base, e) for e in entries)
            found = {b: by_base[b] for b in wanted}
        self.index.set("uidlist_offset", ul.size, db)
        self.index.set("uidlist_ino", ul.ino, db)
        return found

    def _insert_new(self, db, seen_new: dict, names: dict, modseq: int) -> None:
        by_base = self._uidlist_entries(db, set(seen_new))
        rows = []
        for base in sorted(seen_new, key=lambda b: by_base[b].uid):
            entry = by_base[base]
            subdir, info = seen_new[base]
            path = os.path.join(self.folder.path, subdir, self._fname(base, info))
            size, vsize = fn.size_fields(base)
            if vsize is None and (entry.get("W") or "").isdigit():
                vsize = int(entry.get("W"))
            try:
                st = os.stat(path)
                if vsize is None:
                    vsize = _count_vsize(path)
            except FileNotFoundError:
                continue        # gone again already; never recorded
            if size is None:
                size = st.st_size
            flags = fn.flags_from_info(info or "", names)
            rows.append((entry.uid, base, subdir, info, " ".join(sorted(flags)),
                         int("\\Seen" in flags), modseq, modseq, size, vsize, st.st_mtime,
                         entry.get("G"), entry.get("P")))
        db.executemany("INSERT OR IGNORE INTO records (uid, base, subdir, info, flags, seen, "
                       "modseq, created, size, vsize, mtime, guid, pop3) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def _check_uidvalidity(self, db, ul) -> bool:
        """Reset the index when it is new or the UIDVALIDITY changed.  True if reset."""
        current = self.index.get("uidvalidity", None, db)
        if current is not None and int(current) == ul.uidvalidity:
            return False
        self.index.reset(db)
        self.index.set("uidvalidity", ul.uidvalidity, db)
        self.index.set("guid", ul.guid or None, db)
        self.index.set("uidnext", ul.effective_next_uid(), db)
        self.index.set("generation", os.urandom(8).hex(), db)
        floor = self._read_floor(ul.uidvalidity)
        base = max(time.time_ns() // 1000, floor + 1)
        self.index.set("highest_modseq", base, db)
        self._write_floor(ul.uidvalidity, base + FLOOR_STEP)
        self.index.set("modseq_floor", base + FLOOR_STEP, db)
        return True

    def _next_modseq(self, db) -> int:
        value = int(self.index.get("highest_modseq", 0, db)) + 1
        floor = int(self.index.get("modseq_floor", 0, db))
        if value > floor:
            floor = value + FLOOR_STEP
            self._write_floor(self.uidvalidity_in(db), floor)
            self.index.set("modseq_floor", floor, db)
        self.index.set("highest_modseq", value, db)
        return value

    def uidvalidity_in(self, db) -> int:
        return int(self.index.get("uidvalidity", 0, db))

    def _read_floor(self, uidvalidity: int) -> int:
        try:
            with open(os.path.join(self.folder.path, MODSEQ_FILE), "rb") as f:
                parts = f.read().split()
            if len(parts) == 2 and int(parts[0]) == uidvalidity:
                return int(parts[1])
        except (FileNotFoundError, ValueError):
            pass
        return 0

    def _write_floor(self, uidvalidity: int, floor: int) -> None:
        path = os.path.join(self.folder.path, MODSEQ_FILE)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(b"%d %d\n" % (uidvalidity, floor))
            if self._fsync:
                f.flush()
                os.fsync(f.fileno())
        os.rename(tmp, path)


def parsed_row(raw: bytes) -> tuple[str, None, str, bytes]:
    """(envelope JSON, None, bodystructure JSON, header bytes) for the parse cache.  BODY is
    derived from BODYSTRUCTURE when asked, so it is not stored (the column stays for later)."""
    header, _ = parse.split_message(raw)
    dump = lambda v: json.dumps(parse.to_json(v), separators=(",", ":"))  # noqa: E731
    return (dump(parse.envelope(header)), None,
            dump(parse.bodystructure(raw, extended=True)), header)


def _count_vsize(path: str) -> int:
    size = bare = 0
    prev_cr = False
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                return size + bare
            size += len(chunk)
            bare += chunk.count(b"\n") - chunk.count(b"\r\n")
            if chunk[:1] == b"\n" and prev_cr:
                bare -= 1
            prev_cr = chunk[-1:] == b"\r"


def _expand_uidl(fmt: str, uid: int, uidvalidity: int, base: str, guid: str, md5) -> str:
    out = []
    i, n = 0, len(fmt)
    while i < n:
        ch = fmt[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        j = i + 1
        spec = ""
        while j < n and (fmt[j].isdigit()):
            spec += fmt[j]
            j += 1
        hexa = ""
        if j < n and fmt[j] in "Xx":
            hexa = fmt[j]
            j += 1
        if j >= n:
            out.append(fmt[i:])
            break
        var = fmt[j]
        if var == "%":
            value: str | int = "%"
        elif var == "u":
            value = uid
        elif var == "v":
            value = uidvalidity
        elif var == "m":
            value = md5()
        elif var == "f":
            value = base
        elif var == "g":
            value = guid
        else:
            value = fmt[i:j + 1]
            out.append(value)
            i = j + 1
            continue
        if isinstance(value, int):
            text = format(value, hexa) if hexa else str(value)
        else:
            text = value
        if spec:
            width = int(spec)
            pad = "0" if spec.startswith("0") else " "
            text = text.rjust(width, pad)
        out.append(text)
        i = j + 1
    return "".join(out)
