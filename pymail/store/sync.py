"""Keeping a mailbox's index in step with its maildir (the ``IndexSync`` part of Mailbox).

Truth lives in the maildir (files and their names) and its control files.  ``_refresh()``
compares the stamps (mtime ns, size, inode) of ``new/``, ``cur/``, ``dovecot-uidlist`` and
``dovecot-keywords`` with those the index saved; equal → nothing to read.  Otherwise only the
directories whose stamp changed are listed, and the listing is compared with the index by full
file name (a set difference, in C); only the differences are looked at: renamed files (flags
changed), new files (UIDs from the records appended to ``dovecot-uidlist`` since the last scan,
or from the whole file, or given under the lock), missing files (listed again before they count
as expunged).

Timestamp granularity (Dovecot's maildir-sync.c "Problem 1"): on a filesystem whose timestamps
are coarse, a change made in the same tick as our look leaves the stamp unchanged.  There a stamp
younger than ``DIRTY_WINDOW_NS`` is saved as dirty until ``mtime + DIRTY_WINDOW_NS``, and, as in
Dovecot, an unchanged dirty stamp is trusted until that moment and then looked at once more —
a change hidden by the granularity shows up at most that late.  Linux 6.13+ gives ext4, XFS,
btrfs and tmpfs fine-grained ("multigrain") timestamps: once a stamp was read, the next change
gets a newer one.  ``fine_grained()`` probes this once per filesystem; there no stamp is dirty.

Own changes (``own_changes``): a flag change, expunge or \\Recent claim made here renames or
removes files under the index write lock and the ``dovecot-uidlist`` lock (which deliveries take
to put a file in place).  If the saved stamp matched the folder before the change, the stamp after
it is saved too, so nobody re-lists a 100,000-name ``cur/`` for a change the index already has.
A foreign program renaming in ``cur/`` without that lock during those milliseconds would go
unnoticed until the next change of ``cur/`` (the same trade Dovecot makes).

Modseq rule (RFC 7162 needs modseqs that never go down under one UIDVALIDITY): when an index is
(re)built its highest modseq starts at ``max(wall clock in microseconds, floor + 1)`` where the
floor is kept in the control file ``pymail-modseq`` next to ``dovecot-uidlist``.  Every time the
highest modseq passes the floor, the floor is moved ``FLOOR_STEP`` ahead (written before use).
So deleting the index, or taking over a Dovecot maildir (whose modseqs count up from 1), always
yields modseqs above any a client has seen.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import logging
import operator
import os
import re
import threading
import time

from pymail.store.atomic import replace_file
from pymail.store import filename as fn
from pymail.store import keywords as kw
from pymail.store import uidlist as ul_mod
from pymail.store.errors import NONEXISTENT, StoreError
from pymail.store.index import flag_columns, select_in
from pymail.store.types import MessageRecord

log = logging.getLogger(__name__)
_first, _second, _third = (operator.itemgetter(i) for i in range(3))

DIRTY_WINDOW_NS = 1_000_000_000
FLOOR_STEP = 1_000_000
MODSEQ_FILE = "pymail-modseq"
_FNAME_SELECT = ("SELECT subdir || '/' || base || CASE WHEN info IS NULL THEN '' "
                 "ELSE ':2,' || info END FROM records")


_ORDER = re.compile(r"([0-9]+)\.M([0-9]+)(?:P|$)")


def _order_key(base: str):
    """Maildir delivery order: "<sec>.M<usec>..." by time, then by name
    (maildir_filename_sort_cmp())."""
    m = _ORDER.match(base)
    if m is not None:
        return (int(m[1]), int(m[2]), base)
    sec = base.partition(".")[0]
    return (int(sec) if sec.isascii() and sec.isdigit() else 0, 0, base)


def _order_number(base: str) -> int:
    """(sec, usec) of ``_order_key`` as one integer; OverflowError if usec does not fit."""
    m = _ORDER.match(base)
    if m is not None:
        usec = int(m[2])
        if usec >> 64:
            raise OverflowError(base)
        return int(m[1]) << 64 | usec
    sec = base.partition(".")[0]
    return int(sec) << 64 if sec.isascii() and sec.isdigit() else 0


def delivery_order(bases) -> list[str]:
    """``sorted(bases, key=_order_key)``, but sorted by name first and then (stable) by one
    integer per name: a third cheaper than tuple keys on 100,000 names."""
    out = sorted(bases)
    try:
        out.sort(key=_order_number)
    except OverflowError:
        out.sort(key=_order_key)
    return out


_unreadable_names: set = set()    # (folder, subdir, name) already logged as not UTF-8
_grain_lock = threading.Lock()
_fine_by_dev: dict[int, bool] = {}
_fine_by_path: dict[str, bool] = {}   # folder → its device's answer (saves a stat per sync)
PROBE_ROUNDS = 64


@contextlib.contextmanager
def gc_paused():
    """A bulk build makes some hundred thousand objects that all stay alive: the cyclic
    collector would walk them (and everything else) again and again and find nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def fine_grained(path: str) -> bool:
    """True if the filesystem holding ``path`` gives every directory change a new mtime once
    the old one was read (probed: rename a file back and forth, stat between; on a coarse
    filesystem most of those stats are equal).  Cached per device."""
    known = _fine_by_path.get(path)
    if known is not None:
        return known
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return False
    with _grain_lock:
        known = _fine_by_dev.get(dev)
    if known is not None:
        _fine_by_path[path] = known
        return known
    probe = os.path.join(path, f".pymail-mtime-probe.{os.getpid()}.{threading.get_ident()}")
    fine = False
    try:
        os.mkdir(probe)
        a, b = os.path.join(probe, "a"), os.path.join(probe, "b")
        open(a, "wb").close()
        try:
            fine = True
            for _ in range(PROBE_ROUNDS):
                before = os.stat(probe).st_mtime_ns
                os.rename(a, b)
                a, b = b, a
                if os.stat(probe).st_mtime_ns == before:
                    fine = False
                    break
        finally:
            os.unlink(a)
            os.rmdir(probe)
    except OSError:
        fine = False
    with _grain_lock:
        _fine_by_dev[dev] = fine
    if len(_fine_by_path) > 10_000:
        _fine_by_path.clear()
    _fine_by_path[path] = fine
    return fine


def _same(stored, current, now: int) -> bool:
    """Does a saved stamp part still describe ``current`` ("absent" or [mtime, size, ino])?
    A dirty part ([mtime, size, ino, until]) is trusted only until ``until``."""
    if not isinstance(stored, list) or not isinstance(current, list):
        return stored == current
    if stored[:3] != current:
        return False
    return len(stored) == 3 or now < stored[3]


def _stamp_part(path: str, now: int, window: int) -> tuple:
    """(current, to save) stamp part of one file or directory: [mtime ns, size, inode] or
    "absent"; the saved copy of a part changed within the dirty ``window`` carries the time
    until which it is trusted."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "absent", "absent"
    part = [st.st_mtime_ns, st.st_size, st.st_ino]
    if window and now - st.st_mtime_ns < window:
        return part, part + [st.st_mtime_ns + window]
    return part, part


def stamps_match(stored, current, now: int | None = None) -> bool:
    if not isinstance(stored, list) or len(stored) != len(current):
        return False
    now = time.time_ns() if now is None else now
    return all(_same(s, c, now) for s, c in zip(stored, current))


class IndexSync:
    """Mixin of Mailbox: needs self.folder, self.index, self.name, self._fsync, self._flagset,
    self._fname, self._meta."""

    def _stamp(self) -> tuple[list, list]:
        """(current stamp, stamp to save).  Parts: new/, cur/, dovecot-uidlist,
        dovecot-keywords as [mtime ns, size, inode] or "absent"; in the saved copy a part
        changed within the dirty window carries the time until which it is trusted."""
        now, window = time.time_ns(), self._dirty_window()
        current, save = [], []
        for path in (os.path.join(self.folder.path, "new"), os.path.join(self.folder.path, "cur"),
                     self.folder.uidlist_path, self.folder.keywords_path):
            part, saved = _stamp_part(path, now, window)
            current.append(part)
            save.append(saved)
        if current[1] == "absent":
            raise StoreError(NONEXISTENT, f"mailbox {self.name} no longer exists")
        return current, save

    _uidlist_written = None     # (current, save) stamp part of our own uidlist write

    def _note_own_uidlist_write(self) -> None:
        """Call holding the uidlist lock, right after writing ``dovecot-uidlist``: the stamp
        then saved for it is the file as written — nobody can have changed it under the lock,
        and the index holds what was read under it — instead of the one taken before the
        scan, which made the next command (SELECT's \\Recent claim) scan again."""
        self._uidlist_written = _stamp_part(self.folder.uidlist_path, time.time_ns(),
                                            self._dirty_window())

    def _dirty_window(self) -> int:
        """How long a fresh stamp part is not trusted: 0 on a fine-grained filesystem."""
        return 0 if fine_grained(os.path.join(self.folder.path, "tmp")) else DIRTY_WINDOW_NS

    def _list_dir(self) -> dict[str, tuple[str, str | None]]:
        """base → (subdir, info or None).  new/ is listed before cur/, so a file moving from
        new/ to cur/ meanwhile is seen at least once."""
        out: dict[str, tuple[str, str | None]] = {}
        for sub in ("new", "cur"):
            try:
                names = os.listdir(os.path.join(self.folder.path, sub))
            except FileNotFoundError:
                continue
            for name in self._utf8_only(sub, names):
                if name[0] == ".":
                    continue
                base, sep, info = name.partition(fn.INFO_SEP)
                if sep:
                    out[base] = (sub, info)
                else:
                    out[name.split(":", 1)[0]] = (sub, None)
        return out

    def refresh(self, force: bool = False) -> bool:
        """Bring the index up to date with the maildir; True if it re-read the maildir."""
        return self._refresh(force)

    def _rebuild_lost_rows(self) -> None:
        """``Index.rebuild``: a first build's write-behind failed and left the table empty;
        build it again from the maildir (the same UIDs, from ``dovecot-uidlist``)."""
        self._refresh(force=True)

    def rebuild_index(self) -> None:
        """Throw the cached state away and rebuild it from the maildir and control files.
        UIDs and UIDVALIDITY are unchanged (they live in dovecot-uidlist); modseqs restart above
        every earlier one (see the module docstring)."""
        with self.index.write() as db:
            self.index.reset(db)
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> bool:
        current, _ = self._stamp()
        if not force and stamps_match(self._meta()["stamp"], current):
            return False
        self._bulk_view = None
        with self.index.write() as db:
            stored = self.index.get_json("stamp", db)
            if not force and stamps_match(stored, current):
                return False
            current, save = self._stamp()
            self._uidlist_written = None
            self._scan(db, None if force else stored, current)
            if self._uidlist_written is not None:
                save[2] = self._uidlist_written[1]
                self._uidlist_written = None
            self.index.set_json("stamp", save, db)
        if self._bulk_view is not None:      # committed: it is the index's state now
            self._install_view(*self._bulk_view)
            self._bulk_view = None
        return True

    @contextlib.contextmanager
    def own_changes(self, db):
        """Wrap renames/unlinks this mailbox makes and records in the index (``db`` is inside
        ``index.write()``): see "Own changes" in the module docstring.  Do not take the
        ``dovecot-uidlist`` lock inside (it is held here)."""
        with self.folder.lock():
            before, _ = self._stamp()
            in_sync = stamps_match(self.index.get_json("stamp", db), before)
            yield
            if in_sync:
                self.index.set_json("stamp", self._stamp()[1], db)

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
            out.update(prefix + n for n in self._utf8_only(sub, names) if n[:1] != ".")
        return out

    def _utf8_only(self, sub: str, names: list[str]) -> list[str]:
        """``names`` without those that are not UTF-8 (``_utf8_name``); one check of the whole
        listing in the usual all-ASCII case."""
        if "".join(names).isascii():
            return names
        return [n for n in names if n.isascii() or self._utf8_name(sub, n)]

    def _utf8_name(self, sub: str, name: str) -> bool:
        """False for a file name that is not UTF-8 (``os.listdir`` gives it with surrogates,
        which SQLite's text cannot hold): such a file is left alone, not shown, and logged
        once per process, instead of making the whole folder fail to open."""
        try:
            name.encode("utf-8")
            return True
        except UnicodeEncodeError:
            key = (self.folder.path, sub, name)
            if key not in _unreadable_names:
                if len(_unreadable_names) > 10_000:
                    _unreadable_names.clear()
                _unreadable_names.add(key)
                log.warning("%s/%s: file name %r is not UTF-8; the message is not shown",
                            self.folder.path, sub, name.encode("utf-8", "surrogateescape"))
            return False

    @staticmethod
    def _indexed(db, dirs) -> set[str]:
        if len(dirs) == 2:
            return {r[0] for r in db.execute(_FNAME_SELECT)}
        # a literal, not a parameter: only then can SQLite use the partial index records_new
        where = " WHERE subdir='new'" if dirs[0] == "new" else " WHERE subdir='cur'"
        return {r[0] for r in db.execute(_FNAME_SELECT + where)}

    @staticmethod
    def _split_listed(item: str) -> tuple[str, str, str | None]:
        """"cur/<base>:2,<info>" → (base, subdir, info or None)."""
        sub, name = item[:3], item[4:]
        base, sep, info = name.partition(fn.INFO_SEP)
        if not sep:
            return base.split(":", 1)[0], sub, None
        return base, sub, info

    def _scan(self, db, stored, current) -> None:
        """Bring the index in step: an empty index is filled from one listing in bulk
        (``_insert_bulk``), otherwise only the differences are looked at (``_scan_changes``)."""
        summary = ul_mod.read_summary(self.folder.uidlist_path)
        if summary is None:
            with self.folder.lock():
                self.folder.read_or_create_uidlist()
                self._note_own_uidlist_write()
            summary = ul_mod.read_summary(self.folder.uidlist_path)
        fresh = self._check_uidvalidity(db, summary)
        names = kw.read(self.folder.keywords_path)
        if fresh or db.execute("SELECT 1 FROM records LIMIT 1").fetchone() is None:
            # the rows may be inserted after this transaction's other writes (write_behind):
            # the highest UID and the first in new/ come from the build, not from the table
            top, first_new = 0, None
            with gc_paused():
                found = self._list_dir()
                if found:
                    top, first_new = self._insert_bulk(db, found, names, self._next_modseq(db))
        else:
            self._scan_changes(db, stored, current, names)
            top, first_new = db.execute("SELECT MAX(uid) FROM records").fetchone()[0] or 0, None
        summary = ul_mod.read_summary(self.folder.uidlist_path) or summary
        uidnext = max(int(self.index.get("uidnext", 1, db)), summary.effective_next_uid(),
                      top + 1)
        self.index.set("uidnext", uidnext, db)
        if fresh:
            self.index.set("first_recent_uid", first_new or uidnext, db)

    def _scan_changes(self, db, stored, current, names: dict) -> None:
        """Compare the directory listing with the index by full file name (set difference in
        C), then look at only the differences: renamed (flags changed), new, gone."""
        both = ("new", "cur")
        now = time.time_ns()
        if not isinstance(stored, list) or len(stored) != 4 \
                or not _same(stored[3], current[3], now):
            dirs = both                      # keyword letters may mean something new
        else:
            dirs = tuple(d for i, d in enumerate(both) if not _same(stored[i], current[i], now))
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
                               "WHERE uid=?", (subdir, info, *flag_columns(flags), modseq, uid))
                else:
                    db.execute("UPDATE records SET subdir=?, info=? WHERE uid=?",
                               (subdir, info, uid))
            db.executemany("DELETE FROM records WHERE uid=?", [(u,) for u in gone])
            db.executemany("INSERT OR REPLACE INTO expunged VALUES (?, ?)",
                           [(u, modseq) for u in gone])

    @staticmethod
    def _rows_by_base(db, bases) -> list:
        return select_in(db, "SELECT uid, base, subdir, info, flags FROM records "
                             "WHERE base IN ({marks})", sorted(bases))

    def _uidlist_entries(self, db, wanted) -> tuple[dict[str, ul_mod.Entry], int, list[str]]:
        """uidlist records for ``wanted`` base names (a set or dict) → (those found, in UID
        order; the first UID given to the rest; the rest, in delivery order).  Reads only
        what was appended since the last scan when the file is the same inode (Dovecot
        appends too), else all of it; files without a record get UIDs under the lock."""
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
                return found, 0, []
        ul = self.folder.read_uidlist()
        found = ul.entries_for(wanted) if ul is not None else {}
        first, still = 0, []
        if len(found) < len(wanted):
            with self.folder.lock():
                ul = self.folder.read_or_create_uidlist()
                found = ul.entries_for(wanted)
                still = delivery_order(b for b in wanted if b not in found)
                if still:
                    first = ul_mod.append_new(self.folder.uidlist_path, ul, still, self._fsync)
                    self._note_own_uidlist_write()
        self.index.set("uidlist_offset", ul.size, db)
        self.index.set("uidlist_ino", ul.ino, db)
        return found, first, still

    def _insert_new(self, db, seen_new: dict, names: dict, modseq: int) -> None:
        by_base, first, still = self._uidlist_entries(db, set(seen_new))
        by_base.update((b, ul_mod.Entry(first + i, b)) for i, b in enumerate(still))
        rows = []
        for base in sorted(seen_new, key=lambda b: by_base[b].uid):
            entry = by_base[base]
            subdir, info = seen_new[base]
            size, vsize = _named_sizes(base, entry)
            looked = _look_at(os.path.join(self.folder.path, subdir, self._fname(base, info)),
                              size, vsize)
            if looked is None:
                continue        # gone again already; never recorded
            rows.append((entry.uid, base, subdir, info,
                         *flag_columns(fn.flags_from_info(info or "", names)), modseq, modseq,
                         *looked, entry.get("G"), entry.get("P")))
        db.executemany("INSERT OR IGNORE INTO records (uid, base, subdir, info, flags, seen, "
                       "modseq, created, size, vsize, mtime, guid, pop3) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def _insert_bulk(self, db, found: dict, names: dict, modseq: int) -> tuple[int, int | None]:
        """Fill an empty index from a listing (base → (subdir, info)): a first SELECT of a
        100,000-message folder.  Only the file names and ``dovecot-uidlist`` are read: sizes
        come from ``S=``/``W=`` (a file whose name lacks them is looked at, as before) and the
        internal date is left NULL, read on first use (``Mailbox.internal_dates``).  The
        records view is made here too (``_bulk_view``), so the SELECT need not read the rows
        back, and when the transaction began with a reset, the rows are inserted and committed
        by a thread while the SELECT is answered (``Index.write_behind``).  → (the highest
        UID, the lowest UID of a file in new/ or None)."""
        known, first, still = self._uidlist_entries(db, found)
        usual = None if known else self._usual_rows(found, names, still, first, modseq)
        if usual is not None:
            plain, view = usual
            rows = []
        else:
            plain, rows, view = self._bulk_rows(found, names, known, still, first, modseq)
        # Most rows have no date, GUID or UIDL yet: binding three NULLs less per row saves a
        # third of the insert.
        stamp = f"{int(modseq)},{int(modseq)}"
        loads = [("INSERT INTO records (uid, base, subdir, info, flags, seen, size, vsize, "
                  f"modseq, created) VALUES (?,?,?,?,?,?,?,?,{stamp})", plain),
                 ("INSERT INTO records (uid, base, subdir, info, flags, seen, size, vsize, "
                  f"mtime, guid, pop3, modseq, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,{stamp})",
                  rows)]
        self.index.write_behind(db, functools.partial(self.index.bulk_insert, loads=loads),
                                len(plain) + len(rows))
        if known:
            view.sort()                     # the uidlist's own order is not promised
        generation = self.index.get("generation", None, db)
        self._bulk_view = (generation, modseq, view)
        return (view[-1][0] if view else 0), _first_new_uid(plain, rows)

    def _usual_rows(self, found: dict, names: dict, still: list, first: int, modseq: int):
        """The usual first build — no uidlist record, every name with ``S=``/``W=`` — in
        columns, by map/zip in C: → (rows, records view), or None for ``_bulk_rows``."""
        sizes = fn.usual_size_fields(still)
        if sizes is None:
            return None
        places = list(map(found.__getitem__, still))
        infos = list(map(_second, places))
        flags = list(map(_FlagMemo(names, self._flagset).__getitem__, infos))
        uids = range(first, first + len(still))
        rows = list(zip(uids, still, map(_first, places), infos, map(_first, flags),
                        map(_second, flags), *sizes))
        view = list(map(tuple.__new__, itertools.repeat(MessageRecord),
                        zip(uids, map(_third, flags), itertools.repeat(modseq), sizes[1],
                            itertools.repeat(None), still)))
        return rows, view

    def _bulk_rows(self, found: dict, names: dict, known: dict, still: list, first: int,
                   modseq: int) -> tuple[list, list, list]:
        """Rows and records view of a first build, one message at a time: → (rows without
        date, GUID or UIDL; rows with them; view)."""
        flag_memo = _FlagMemo(names, self._flagset)
        plain, rows, view = [], [], []
        record, size_fields = tuple.__new__, fn.size_fields
        # in UID order: the files the uidlist knows (Entry), then the ones just numbered (int)
        for base, entry in itertools.chain(known.items(), zip(still, itertools.count(first))):
            subdir, info = found[base]
            flags = flag_memo[info]
            if type(entry) is int:          # the usual cold case: a name and nothing else
                uid, entry = entry, None
                size, vsize = size_fields(base)
            else:
                uid = entry.uid
                if not entry.fields:
                    entry = None
                size, vsize = _named_sizes(base, entry)
            guid = pop3 = mtime = None
            if entry is not None:
                guid, pop3 = entry.get("G"), entry.get("P")
            if size is None or vsize is None:
                looked = _look_at(os.path.join(self.folder.path, subdir, self._fname(base, info)),
                                  size, vsize)
                if looked is None:
                    continue        # gone again already; never recorded
                size, vsize, mtime = looked
            if mtime is None and guid is None and pop3 is None:
                plain.append((uid, base, subdir, info, flags[0], flags[1], size, vsize))
            else:
                rows.append((uid, base, subdir, info, flags[0], flags[1], size, vsize, mtime,
                             guid, pop3))
            view.append(record(MessageRecord, (uid, flags[2], modseq, vsize, mtime, guid or base)))
        return plain, rows, view

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
        replace_file(path, b"%d %d\n" % (uidvalidity, floor), self._fsync)


class _FlagMemo(dict):
    """info letters → (flags text, seen, shared flag set) of a first build: each distinct
    info worked out once, on first lookup (``__missing__``, so ``map(memo.__getitem__, …)``
    fills it too)."""

    def __init__(self, keyword_names: dict, flagset):
        super().__init__()
        self._names, self._flagset = keyword_names, flagset

    def __missing__(self, info):
        text, seen = flag_columns(fn.flags_from_info(info or "", self._names))
        value = self[info] = (text, seen, self._flagset(text))
        return value


def _first_new_uid(*row_lists) -> int | None:
    """The lowest UID of the rows (uid, base, subdir, ...) whose file is in new/."""
    return min(itertools.chain.from_iterable(
        itertools.compress(map(_first, rows), map("new".__eq__, map(_third, rows)))
        for rows in row_lists), default=None)


def _named_sizes(base: str, entry) -> tuple[int | None, int | None]:
    """(S=, W=) from the name; W from the uidlist record (``entry``, may be None) when the
    name lacks it."""
    size, vsize = fn.size_fields(base)
    if vsize is None and entry is not None:
        w = entry.get("W") or ""
        if w.isdigit():
            vsize = int(w)
    return size, vsize


def _look_at(path: str, size: int | None, vsize: int | None):
    """(size, vsize, mtime) with what the name did not give read from the file; None when the
    file is gone."""
    try:
        st = os.stat(path)
        if vsize is None:
            vsize = _count_vsize(path)
    except FileNotFoundError:
        return None
    return (st.st_size if size is None else size), vsize, st.st_mtime


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
