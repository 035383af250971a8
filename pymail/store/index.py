"""The per-mailbox index cache: one SQLite file, rebuildable at any time.

Nothing here is authoritative: UIDs come from ``dovecot-uidlist``, flags from file names,
keywords from ``dovecot-keywords``.  The index caches them (plus sizes, dates, GUIDs and parse
results) so SELECT/STATUS/FETCH do not touch the maildir, and it keeps what the files cannot:
modseqs, the expunge log and which UIDs are \\Recent.

SQLite runs in WAL mode: readers never wait for the writer and see a consistent snapshot;
writers (sync, flag changes, expunge, recent claims) serialise on ``BEGIN IMMEDIATE``.  Lock
order is always "index write transaction → dovecot-uidlist.lock", never the other way, and
delivery takes only the uidlist lock, so there is no deadlock.

Tables: ``meta`` (key/value), ``counts`` (one row, kept by triggers: O(1) message/unseen/byte
counts), ``records`` (one row per message), ``expunged`` (uid, modseq: the expunge log),
``parsed`` (envelope/bodystructure/header cache).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
import urllib.parse
import weakref

log = logging.getLogger(__name__)

SCHEMA_VERSION = 7
FILE_NAME = "pymail-index.sqlite"

# A records view as one process had it at (generation, modseq), for another process's first
# look (snapshot.py): its columns packed as arrays.
_SNAPSHOT_TABLE = """CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),
    generation TEXT NOT NULL, modseq INTEGER NOT NULL, count INTEGER NOT NULL,
    uids BLOB NOT NULL, modseqs BLOB NOT NULL, sizes BLOB NOT NULL, dates BLOB NOT NULL,
    flag_texts TEXT NOT NULL, flag_index BLOB NOT NULL, guids TEXT NOT NULL);"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counts (id INTEGER PRIMARY KEY CHECK (id = 1),
    messages INTEGER NOT NULL, unseen INTEGER NOT NULL, bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO counts VALUES (1, 0, 0, 0);
CREATE TABLE IF NOT EXISTS records (
    uid INTEGER PRIMARY KEY,
    base TEXT NOT NULL,
    subdir TEXT NOT NULL,
    info TEXT,
    flags TEXT NOT NULL,
    seen INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    created INTEGER NOT NULL,
    size INTEGER NOT NULL,
    vsize INTEGER,
    mtime REAL,                -- the internal date; NULL until first read (sync.py)
    guid TEXT,                 -- NULL: the GUID is the base name (Dovecot's rule)
    pop3 TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS records_base ON records(base);
CREATE INDEX IF NOT EXISTS records_modseq ON records(modseq);
-- the few messages still in new/ (a partial index: cur/ holds nearly all, and a scan of it
-- costs what an index walk would)
CREATE INDEX IF NOT EXISTS records_new ON records(uid) WHERE subdir = 'new';
CREATE TABLE IF NOT EXISTS expunged (uid INTEGER PRIMARY KEY, modseq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS expunged_modseq ON expunged(modseq);
CREATE TABLE IF NOT EXISTS parsed (uid INTEGER PRIMARY KEY, envelope TEXT, body TEXT,
    bodystructure TEXT, header BLOB, lines INTEGER);
CREATE TRIGGER IF NOT EXISTS records_ins AFTER INSERT ON records BEGIN
    UPDATE counts SET messages = messages + 1, unseen = unseen + (NEW.seen = 0),
        bytes = bytes + NEW.size WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS records_del AFTER DELETE ON records BEGIN
    UPDATE counts SET messages = messages - 1, unseen = unseen - (OLD.seen = 0),
        bytes = bytes - OLD.size WHERE id = 1;
    DELETE FROM parsed WHERE uid = OLD.uid; END;
CREATE TRIGGER IF NOT EXISTS records_upd AFTER UPDATE OF seen, size ON records BEGIN
    UPDATE counts SET unseen = unseen - (OLD.seen = 0) + (NEW.seen = 0),
        bytes = bytes - OLD.size + NEW.size WHERE id = 1; END;
""" + _SNAPSHOT_TABLE + "\n"


# Schema versions whose rows stay valid, and the statements that bring them up to date;
# any other old version is dropped and rebuilt from the maildir (UIDs kept: dovecot-uidlist).
_MIGRATIONS = {
    5: ("DROP INDEX IF EXISTS records_subdir",
        "CREATE INDEX IF NOT EXISTS records_new ON records(uid) WHERE subdir = 'new'",
        _SNAPSHOT_TABLE),
    6: (_SNAPSHOT_TABLE,),
}

_BULK_DEFERRED = (("TRIGGER", "records_ins"), ("INDEX", "records_base"),
                  ("INDEX", "records_modseq"), ("INDEX", "records_new"))
# Made after a big first build has committed, by a thread of its own (``_finish_later``): the
# answer to a first SELECT does not wait for them.  Until then the file's user_version is
# PENDING_VERSION; an opener that finds it and is not the process making them makes them
# (``_create``: a build whose process died before).  Queries are the same without them, only
# lookups by base name or modseq scan the table.
_LATER_INDEXES = ("records_base", "records_modseq")
PENDING_VERSION = SCHEMA_VERSION + 1000
DEFER_INDEXES_FROM = 2000   # rows: below this the two indexes take under half a millisecond
WRITE_BEHIND_FROM = 2000   # rows: below this a first build's insert takes under 2 ms
BULK_CACHE_KIB = -65536   # page cache of a bulk load (negative: KiB, as PRAGMA cache_size)
WRITE_WAIT = 60.0   # seconds, as the connection's busy timeout
AUTOCHECKPOINT_PAGES = 16384   # 64 MiB of WAL before a commit checkpoints by itself


class _WriterLock:
    """A lock that can be weakly referenced (threading.Lock cannot)."""

    __slots__ = ("_lock", "__weakref__")

    def __init__(self):
        self._lock = threading.Lock()

    def acquire(self, timeout: float) -> bool:
        return self._lock.acquire(timeout=timeout)

    def release(self) -> None:
        self._lock.release()


_writer_locks: "weakref.WeakValueDictionary[str, _WriterLock]" = weakref.WeakValueDictionary()
_writer_locks_guard = threading.Lock()


def _writer_lock_for(path: str) -> _WriterLock:
    """One lock per index file per process, alive while an Index of that file exists."""
    with _writer_locks_guard:
        lock = _writer_locks.get(path)
        if lock is None:
            lock = _writer_locks[path] = _WriterLock()
        return lock


class Index:
    """One mailbox's index file and (while in use) one connection to it.

    The connection is opened when the object is made and again on first use after
    ``release()``: an idle IMAP session gives it back (a connection costs ~140 KiB of page
    cache and schema once it has read a small index, ~55 KiB even after
    ``PRAGMA shrink_memory``), and the next command reopens it (~0.1 ms)."""

    def __init__(self, path: str, create: bool = True):
        """``create=False``: only an index file that exists (``sqlite3.OperationalError``
        otherwise), for work that must not give a deleted mailbox a new file."""
        self.path = path
        self._create_missing = create
        self._writer_lock = _writer_lock_for(path)
        self._behind: threading.Thread | None = None    # finishing a write (write-behind)
        self._behind_meta: dict = {}        # the meta that write will have committed
        self._rows_lost = False             # ...had it not failed; not built again yet (``db``)
        self._behind_ok = True              # False after a failure: builds insert in line
        self.rebuild = None                 # called to build again after rows were lost
        self._tx_meta: dict | None = None   # the meta set by a write that began with reset()
        self._hand_over = None              # what that write leaves to the thread
        if create:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        self._db: sqlite3.Connection | None = self._open()

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, after this object's write-behind is done.  If that failed, the
        table holds nothing of the build: the first use builds it again (``rebuild``, which
        the owning mailbox sets), so no reader ever takes the empty table for an empty
        mailbox; a build that fails again raises, and the next use tries once more."""
        if self._behind is not None:
            self._wait_behind()
        if self._rows_lost and self.rebuild is not None:
            self._rows_lost = False
            try:
                self.rebuild()
            except BaseException:
                self._rows_lost = True
                raise
        db = self._db
        if db is None:
            db = self._db = self._open()
        return db

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def release(self) -> bool:
        """Close the connection unless a transaction is open; the next use of ``db`` reopens
        it.  True if a connection was closed."""
        if self.writing_behind():
            return False
        db = self._db
        if db is None or db.in_transaction:
            return False
        self._db = None
        db.close()
        return True

    _opens = 0
    _writes = 0

    def _open(self) -> sqlite3.Connection:
        self._opens += 1
        for attempt in range(2):
            if not self._create_missing:    # a URI for mode=rw, quoted: a path may hold "?#%"
                target, uri = f"file:{urllib.parse.quote(self.path)}?mode=rw", True
            else:
                if not os.path.exists(self.path):
                    _lay_down_empty(self.path)
                target, uri = self.path, False
            db = sqlite3.connect(target, uri=uri, timeout=60, isolation_level=None,
                                 check_same_thread=False)
            try:
                db.execute("PRAGMA synchronous=NORMAL")
                # a backstop: the kept connection's thread checkpoints long before (walkeeper)
                db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version != SCHEMA_VERSION and not (version == PENDING_VERSION
                                                      and self.path in _finishing):
                    self._create(db)
                return db
            except sqlite3.OperationalError:
                db.close()
                raise
            except sqlite3.DatabaseError:
                db.close()
                if attempt:
                    raise
                # A damaged cache is thrown away: everything in it can be rebuilt.
                remove_files(self.path)
        raise AssertionError("unreachable")

    @staticmethod
    def _create(db: sqlite3.Connection) -> None:
        """Make (or remake, after a schema change) the tables.  Only a new or outdated file
        takes the write lock here: opening a current index never waits for a writer."""
        # persistent in the file.  Processes making one new index at once (an IMAP login and
        # a delivery to a new folder): the switch needs the file to itself, and SQLite answers
        # "locked" at once rather than through its busy handler — 7 % of six racing openers.
        _retry_while_busy(db, "PRAGMA journal_mode=WAL")
        with _immediate(db):
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:
                return
            if version == PENDING_VERSION:
                _make_later_indexes(db)
                return
            if version in _MIGRATIONS:      # a change that keeps the cached rows
                for statement in _MIGRATIONS[version]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                return
            if version != 0:
                for (name,) in db.execute(
                        "SELECT name FROM sqlite_master WHERE type='table'").fetchall():
                    db.execute(f"DROP TABLE IF EXISTS {name}")
            for statement in _statements(_SCHEMA):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self._wait_behind()
        db, self._db = self._db, None
        if db is not None:
            db.close()

    @contextlib.contextmanager
    def write(self):
        """A write transaction.  Writers of one process queue on a lock per index file first:
        SQLite's own wait for a busy database sleeps in steps of up to 100 ms, which under
        50 concurrent sessions added tenths of a second to a STORE; a lock hands over at
        once.  Other processes still meet SQLite's wait (``timeout``)."""
        db = self.db       # after this object's own write-behind, which holds the lock
        lock = self._writer_lock
        if not lock.acquire(timeout=WRITE_WAIT):
            raise sqlite3.OperationalError("database is locked (writer queue)")
        handed = False
        try:
            with _immediate(db, commit=False):
                yield db
                if self._hand_over is not None:
                    self._start_behind(db, lock)
                    handed = True
                else:
                    db.execute("COMMIT")
        finally:
            self._tx_meta = self._hand_over = None
            self._writes += 1
            if not handed:
                lock.release()

    # -- write-behind: a first build's rows are inserted and committed by a thread ----------

    def write_behind(self, db, work, rows: int) -> None:
        """Inside ``write()``: leave ``work(db)`` — the insert of ``rows`` rows, from
        ``WRITE_BEHIND_FROM`` on — and the COMMIT to a thread of its own, which
        starts when the ``write()`` block ends and holds the writer lock until it is done —
        but only for a write that began with ``reset()`` (its whole meta is then known, see
        ``get``); otherwise run ``work(db)`` now.  Until the thread is done, ``get()`` answers
        from that meta and every other use of this object's ``db`` waits for it; other
        ``Index`` objects and processes meet the writer lock and SQLite's write lock, as they
        do for any write.  A first build hands its insert over (``sync._insert_bulk``): the
        rows are a cache, the UIDs are already in ``dovecot-uidlist``, so the SELECT can be
        answered meanwhile.  If the thread fails, the transaction is rolled back and logged;
        this object's next use of ``db`` builds the index again, in line (``rebuild``), and
        so does the next other opener, which finds it empty."""
        if self._tx_meta is None or rows < WRITE_BEHIND_FROM or not self._behind_ok:
            work(db)
        else:
            self._hand_over = work

    def writing_behind(self) -> bool:
        thread = self._behind
        return thread is not None and thread.is_alive()

    def _start_behind(self, db, lock) -> None:
        work, self._hand_over = self._hand_over, None
        self._behind_meta = self._tx_meta
        thread = threading.Thread(target=self._finish_behind, args=(db, work, lock),
                                  name="pymail-index-behind", daemon=True)
        with _threads_lock:
            _behind_threads.add(thread)
        try:
            thread.start()
        except BaseException:
            with _threads_lock:
                _behind_threads.discard(thread)
            raise
        self._behind = thread

    def _finish_behind(self, db, work, lock) -> None:
        try:
            work(db)
            db.execute("COMMIT")
        except Exception as exc:    # the next look builds the index again
            log.warning("%s: index rows not written: %s", self.path, exc)
            self._behind_ok = False
            self._rows_lost = True
            self._db = None         # closing rolls the transaction back; the next use reopens
            db.close()
        finally:
            self._writes += 1
            lock.release()
            with _threads_lock:
                _behind_threads.discard(threading.current_thread())

    def _wait_behind(self) -> None:
        thread = self._behind
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            self._behind = None

    def version(self) -> tuple:
        """A token that changes whenever anything may have been committed to the index since
        it was taken: ``PRAGMA data_version`` sees other connections' commits, the counters
        this object's own writes and reconnections."""
        db = self.db
        return (self._opens, self._writes, db.execute("PRAGMA data_version").fetchone()[0])

    @contextlib.contextmanager
    def read(self):
        """A consistent snapshot for several SELECTs."""
        self.db.execute("BEGIN")
        try:
            yield self.db
        finally:
            self.db.execute("COMMIT")

    def get(self, key: str, default=None, db=None):
        behind = self._behind
        if db is None and behind is not None and (behind.is_alive() or self._rows_lost):
            # what the write-behind commits — or, if it failed, what the answers given so far
            # were based on, until the next use of ``db`` (a refresh, which builds again)
            return self._behind_meta.get(key, default)
        row = (db or self.db).execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else row[0]

    def set(self, key: str, value, db=None) -> None:
        (db or self.db).execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
        if self._tx_meta is not None:
            self._tx_meta[key] = value

    def get_json(self, key: str, db=None):
        raw = self.get(key, None, db)
        return None if raw is None else json.loads(raw)

    def set_json(self, key: str, value, db=None) -> None:
        self.set(key, json.dumps(value), db)

    def bulk_insert(self, db, loads) -> None:
        """Insert each (insert, rows) of ``loads`` into an empty ``records`` table (inside
        ``write()``; ``insert`` ends in one row's ``(?, ...)``, see ``insert_rows``):
        the counting trigger and the secondary indexes are dropped for the load and made
        again after it — SQLite builds an index from the finished table in one sorted pass,
        much faster than row by row — and the counts are set from one scan.  From
        ``DEFER_INDEXES_FROM`` rows on, the indexes by base name and modseq are made after the
        commit, by a thread of their own (``_LATER_INDEXES``).  DDL is part of the
        transaction: a failure leaves the schema as it was."""
        later = sum(len(rows) for _, rows in loads) >= DEFER_INDEXES_FROM
        cache = db.execute("PRAGMA cache_size").fetchone()[0]
        # Room for the whole load and for sorting the index keys without spilling to temp
        # files: a third off a 100,000-row build.  Given back afterwards.
        db.execute(f"PRAGMA cache_size={BULK_CACHE_KIB}")
        try:
            for kind, name in _BULK_DEFERRED:
                db.execute(f"DROP {kind} IF EXISTS {name}")
            for insert, rows in loads:
                insert_rows(db, insert, rows)
            for statement in _statements_making(
                    name for _, name in _BULK_DEFERRED if not (later and name in _LATER_INDEXES)):
                db.execute(statement)
            if later:
                db.execute(f"PRAGMA user_version={PENDING_VERSION}")
                _finish_later(self.path)    # waits for this transaction (the writer lock)
            db.execute("UPDATE counts SET (messages, unseen, bytes) = (SELECT count(*), "
                       "coalesce(sum(seen = 0), 0), coalesce(sum(size), 0) FROM records) "
                       "WHERE id = 1")
        finally:
            db.execute(f"PRAGMA cache_size={cache}")

    def counts(self) -> tuple[int, int, int]:
        return self.db.execute("SELECT messages, unseen, bytes FROM counts").fetchone()

    def reset(self, db) -> None:
        """Forget every cached message (the UIDVALIDITY changed or a rebuild was asked)."""
        db.execute("DELETE FROM records")
        db.execute("DELETE FROM expunged")
        db.execute("DELETE FROM parsed")
        db.execute("DELETE FROM snapshot")
        db.execute("DELETE FROM meta")
        db.execute("UPDATE counts SET messages = 0, unseen = 0, bytes = 0")
        self._tx_meta = {}          # from here on, the meta is all set in this transaction


IN_CHUNK = 500          # values per "IN (...)" list, well under SQLite's parameter limit
SCAN_THRESHOLD = 2000   # above this many keys, one table scan beats IN (...) lookups


def select_in(db: sqlite3.Connection, sql: str, values) -> list:
    """Every row of ``sql`` — whose ``{marks}`` stands for an IN list — over ``values``,
    ``IN_CHUNK`` at a time, in the order of ``values``."""
    values = list(values)
    rows = []
    for i in range(0, len(values), IN_CHUNK):
        chunk = values[i:i + IN_CHUNK]
        rows += db.execute(sql.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
    return rows


def execute_in(db: sqlite3.Connection, sql: str, params: tuple, values) -> None:
    """Run ``sql`` — whose ``{marks}`` stands for an IN list after ``params`` — over
    ``values``, ``IN_CHUNK`` at a time."""
    values = list(values)
    for i in range(0, len(values), IN_CHUNK):
        chunk = values[i:i + IN_CHUNK]
        db.execute(sql.format(marks=",".join("?" * len(chunk))), (*params, *chunk))


ROWS_PER_INSERT = 200   # rows per multi-row INSERT: a quarter off executemany's time per row


def insert_rows(db: sqlite3.Connection, insert: str, rows: list) -> None:
    """``executemany(insert, rows)`` as ``INSERT ... VALUES (...), (...), ...`` statements of
    ``ROWS_PER_INSERT`` rows: SQLite runs one statement per row in ``executemany``, and that
    per-statement step was a quarter of a first build's insert.  ``insert`` must end in its
    one row's ``(...)``."""
    head, _, one = insert.rpartition(" VALUES ")
    width = ROWS_PER_INSERT
    full = f"{head} VALUES {','.join([one] * width)}"
    flat = itertools.chain.from_iterable
    whole = len(rows) - len(rows) % width
    for start in range(0, whole, width):
        db.execute(full, list(flat(rows[start:start + width])))
    if whole < len(rows):
        rest = rows[whole:]
        db.execute(f"{head} VALUES {','.join([one] * len(rest))}", list(flat(rest)))


def flag_columns(flags) -> tuple[str, int]:
    """The ``records`` columns of a flag set: (flags text, seen)."""
    return " ".join(sorted(flags)), int("\\Seen" in flags)


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (triggers contain ';' of their own)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return out


def _statements_making(names) -> list[str]:
    """The statements of ``_SCHEMA`` that make the triggers or indexes called ``names``."""
    names = tuple(names)
    return [s for s in _statements(_SCHEMA) if any(f" {name} " in s for name in names)]


def _retry_while_busy(db: sqlite3.Connection, statement: str, wait: float = WRITE_WAIT) -> None:
    """Run ``statement``, again every 0.5–5 ms while SQLite answers "locked"/"busy", for at
    most ``wait`` seconds."""
    deadline = time.monotonic() + wait
    delay = 0.0005
    while True:
        try:
            db.execute(statement)
            return
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" not in text and "busy" not in text or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


def _begin_immediate(db: sqlite3.Connection, wait: float = WRITE_WAIT) -> None:
    """BEGIN IMMEDIATE, waiting for another process's writer in steps of 0.5–5 ms.  SQLite's
    own busy handler (the connection's ``timeout``) sleeps 25, 50, then 100 ms at a time, so
    a write that waited for a 2 ms transaction of another worker often lost a tenth of a
    second."""
    db.execute("PRAGMA busy_timeout=0")
    try:
        _retry_while_busy(db, "BEGIN IMMEDIATE", wait)
    finally:
        db.execute(f"PRAGMA busy_timeout={int(WRITE_WAIT * 1000)}")   # as connect(timeout=60)


@contextlib.contextmanager
def _immediate(db: sqlite3.Connection, commit: bool = True):
    """A BEGIN IMMEDIATE transaction, rolled back on an exception; committed at the end unless
    ``commit`` is False (then the block ends it)."""
    _begin_immediate(db)
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    if commit:
        db.execute("COMMIT")


# This process's threads finishing index writes (waited for at exit), under one lock:
_behind_threads: set = set()      # write-behind threads (Index.write_behind)
_finishing: dict[str, threading.Thread] = {}   # index path → thread making its later indexes
_threads_lock = threading.Lock()


def _forget_threads() -> None:      # threads do not cross fork()
    _behind_threads.clear()
    _finishing.clear()


os.register_at_fork(after_in_child=_forget_threads)


def _make_later_indexes(db: sqlite3.Connection) -> None:
    """Inside a write transaction on a PENDING_VERSION file: make ``_LATER_INDEXES`` and mark
    the file current.  Rows written meanwhile by a process that had no unique index on base
    names cannot have two UIDs for one name (``dovecot-uidlist`` gives each name one UID); if
    some did, the lowest UID is kept, as ``INSERT OR IGNORE`` would have."""
    cache = db.execute("PRAGMA cache_size").fetchone()[0]
    db.execute(f"PRAGMA cache_size={BULK_CACHE_KIB}")
    try:
        statements = _statements_making(_LATER_INDEXES)
        try:
            for statement in statements:
                db.execute(statement)
        except sqlite3.IntegrityError:
            db.execute("DELETE FROM records WHERE uid NOT IN "
                       "(SELECT MIN(uid) FROM records GROUP BY base)")
            for statement in statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    finally:
        db.execute(f"PRAGMA cache_size={cache}")


def _finish_later(path: str) -> None:
    """Make ``path``'s later indexes on a thread of their own; it starts writing once the
    caller's write transaction has ended (it queues on the same writer lock).  SQLite builds
    an index without holding the GIL, so on a second core this overlaps the caller's answer."""
    with _threads_lock:
        if path in _finishing:
            return
        thread = _finishing[path] = threading.Thread(
            target=_finish, args=(path,), name="pymail-index-finish", daemon=True)
    thread.start()


def _finish(path: str) -> None:
    try:
        with existing_index(path) as index:
            if index is not None:
                with index.write() as db:
                    if db.execute("PRAGMA user_version").fetchone()[0] == PENDING_VERSION:
                        _make_later_indexes(db)
    except (sqlite3.Error, OSError) as exc:     # the next opener of the file makes them
        log.warning("%s: indexes not made after the first build: %s", path, exc)
    finally:
        with _threads_lock:
            _finishing.pop(path, None)


def wait_for_later_indexes(timeout: float = 10.0) -> bool:
    """Wait until this process's threads finishing index writes — first builds left to a
    thread (``Index.write_behind``) and later indexes — are done (a process exiting normally
    does, for at most 30 s: ``pymail index rebuild`` leaves whole files).  True if none is
    left."""
    deadline = time.monotonic() + timeout
    while True:
        with _threads_lock:
            threads = [*_behind_threads, *_finishing.values()]
        if not threads:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        threads[0].join(left)


atexit.register(wait_for_later_indexes, 30.0)


@contextlib.contextmanager
def existing_index(path: str):
    """``Index(path, create=False)`` if the file exists, else None; closed afterwards."""
    try:
        index = Index(path, create=False)
    except sqlite3.OperationalError:
        yield None
        return
    try:
        yield index
    finally:
        index.close()


_empty_file: bytes | None = None
_empty_file_lock = threading.Lock()


def empty_index_bytes() -> bytes:
    """A new index file as ``Index._create`` makes it (tables, WAL mode, schema version), made
    once per process in a scratch directory."""
    global _empty_file
    with _empty_file_lock:
        if _empty_file is None:
            with tempfile.TemporaryDirectory(prefix="pymail-index-") as scratch:
                path = os.path.join(scratch, FILE_NAME)
                db = sqlite3.connect(path, isolation_level=None)
                try:
                    Index._create(db)
                finally:
                    db.close()      # the last connection: the WAL is checkpointed and removed
                with open(path, "rb") as f:
                    _empty_file = f.read()
        return _empty_file


def _lay_down_empty(path: str) -> None:
    """Put a copy of ``empty_index_bytes()`` at ``path`` if nothing is there: making the
    schema statement by statement, with the switch to WAL and its journal and fsyncs, was
    ~2.3 ms of every new index (a first SELECT, a new folder), the copy ~0.5 ms.  Written
    under a private name and linked into place, so a process that made the file first keeps
    it; on any error the caller's ``_create`` makes the file as before."""
    scratch = f"{path}.{os.getpid()}.{threading.get_ident()}.new"
    try:
        with open(scratch, "wb") as f:
            f.write(empty_index_bytes())
        os.link(scratch, path)
    except OSError:     # FileExistsError: made meanwhile; anything else: _create's way
        pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(scratch)


def remove_files(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
