"""The first build of an index from a maildir (sync.py ``_insert_bulk``): the same records as
the message-by-message path, counts right, the schema whole again afterwards, and the internal
date read on first use."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from pymail.store import filename as fn
from pymail.store import index as index_mod
from pymail.store.index import ROWS_PER_INSERT, insert_rows, remove_files
from pymail.store.sync import _order_key, delivery_order
from tests.store.conftest import msg

FLAG_LETTERS = ["", "S", "FS", "RS", "T", "D", "a", "Sb"]


def _fill(box_path: str, count: int, first: int = 0) -> None:
    """Files written as another program would: Dovecot-style names, every few one without
    S=/W= (then the file itself must be looked at), dates one minute apart."""
    for n in range(first, first + count):
        data = msg(f"m{n}", body="x" * (n % 50) + "\n")
        when = 1_600_000_000 + n * 60
        vsize = len(data) + data.count(b"\n")
        sizes = "" if n % 7 == 0 else f",S={len(data)},W={vsize}"
        name = f"{when}.M{n}P1.other{sizes}:2,{FLAG_LETTERS[n % len(FLAG_LETTERS)]}"
        path = os.path.join(box_path, "cur", name)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (when, when))


def _filled(account, count: int) -> str:
    """``account``'s INBOX, its index made while empty, then ``count`` files put in as by
    another program (``_fill``); → the folder's path."""
    inbox = account.mailbox("INBOX")
    path = inbox.folder.path
    inbox.close()
    _fill(path, count)
    return path


def _rows(box) -> list:
    return box.index.db.execute("SELECT uid, base, subdir, info, flags, seen, size, vsize, guid, "
                                "pop3 FROM records ORDER BY uid").fetchall()


def test_bulk_build_matches_the_incremental_path(account):
    account.deliver(msg("first"))
    inbox = account.mailbox("INBOX")            # index with one record: later files one by one
    path = inbox.folder.path
    _fill(path, 450)    # more than two multi-row INSERTs (index.ROWS_PER_INSERT), and a rest
    inbox.sync()
    incremental = _rows(inbox)
    dates = dict(inbox.index.db.execute("SELECT uid, mtime FROM records"))
    # the first message came with the first (bulk) build, the others one by one with a stat
    assert len(incremental) == 451 and [u for u, t in dates.items() if t is None] == [1]
    dates.update(inbox.internal_dates([1]))
    inbox.close()

    remove_files(os.path.join(path, "pymail-index.sqlite"))
    rebuilt = account.mailbox("INBOX")          # empty index: filled in bulk
    assert _rows(rebuilt) == incremental
    stored = dict(rebuilt.index.db.execute("SELECT uid, mtime FROM records"))
    unread = [u for u, t in stored.items() if t is None]
    # only names without S=/W= were looked at, so only they have their date already
    assert len(unread) == sum(1 for r in incremental if ",S=" in r[1])
    assert rebuilt.internal_dates(list(stored)) == dates
    assert rebuilt.count() == 451
    assert rebuilt.unseen_count() == sum(1 for r in incremental if not r[5])
    assert rebuilt.size() == sum(r[6] for r in incremental)


@given(st.integers(min_value=0, max_value=3 * ROWS_PER_INSERT + 1))
@settings(max_examples=25, deadline=None)
def test_multi_row_insert_equals_executemany(count):
    rows = [(i, f"n{i}", None if i % 3 else i * 0.5, b"\x00" * (i % 4)) for i in range(count)]
    got, want = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    for db in (got, want):
        db.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c REAL, d BLOB, e)")
    insert = "INSERT INTO t (a, b, c, d, e) VALUES (?,?,?,?,7)"
    insert_rows(got, insert, rows)
    want.executemany(insert, rows)
    select = "SELECT * FROM t ORDER BY a"
    assert got.execute(select).fetchall() == want.execute(select).fetchall()
    assert len(got.execute(select).fetchall()) == count


def test_schema_is_whole_after_a_bulk_build(account):
    _filled(account, 30)
    box = account.mailbox("INBOX")
    names = {r[0] for r in box.index.db.execute("SELECT name FROM sqlite_master")}
    assert {"records_ins", "records_base", "records_modseq", "records_new"} <= names
    # the counting trigger works again: a delivery and an expunge move the counts
    before = box.count(), box.size()
    result = account.deliver(msg("late"))
    box.sync()
    size = box.index.db.execute("SELECT size FROM records WHERE uid=?", (result.uid,)).fetchone()[0]
    assert box.count() == before[0] + 1 and box.size() == before[1] + size
    box.store_flags([result.uid], ["\\Deleted"], "add")
    box.expunge([result.uid])
    assert (box.count(), box.size()) == before
    # and base names stay unique
    row = box.index.db.execute("SELECT uid, base FROM records LIMIT 1").fetchone()
    try:
        box.index.db.execute("INSERT INTO records (uid, base, subdir, flags, seen, modseq, "
                             "created, size) VALUES (?, ?, 'cur', '', 0, 1, 1, 1)",
                             (row[0] + 10_000, row[1]))
    except Exception as exc:   # sqlite3.IntegrityError
        assert "UNIQUE" in str(exc)
    else:
        raise AssertionError("a second row with the same base name was accepted")


def test_first_open_does_not_stat_named_sizes(account, monkeypatch):
    path = _filled(account, 40)
    looked_at = []
    real_stat = os.stat

    def counting_stat(p, *args, **kwargs):
        if "/cur/" in str(p) or "/new/" in str(p):
            looked_at.append(str(p))
        return real_stat(p, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    box = account.mailbox("INBOX")
    assert box.count() == 40
    # files whose names carry S= and W= are not looked at; the others are
    assert sorted(os.path.basename(p) for p in looked_at) == sorted(
        n for n in os.listdir(os.path.join(path, "cur")) if ",S=" not in n)


_ORDER_NAME = st.one_of(
    st.builds(lambda s, u, rest: f"{s}.M{u}P{rest}", st.integers(0, 20), st.integers(0, 30),
              st.sampled_from(["1.h", "2.h", "1Q2.h"])),
    st.builds(lambda s, tail: f"{s}.{tail}", st.integers(0, 20), st.text("MPQ0123456789.hx", max_size=6)),
    st.text("0123456789.MPx", max_size=8),
    st.builds(lambda s: f"{s}.M{2 ** 70}P1.h", st.integers(0, 3)),
)


@given(st.lists(_ORDER_NAME, max_size=40, unique=True))
@settings(max_examples=300, deadline=None)
def test_delivery_order_is_the_tuple_order(names):
    assert delivery_order(names) == sorted(names, key=_order_key)


@given(st.lists(st.sampled_from([",S=", ",W=", "12", "7", "x", ",", "²", ".M1P2"]), max_size=10))
@settings(max_examples=500, deadline=None)
def test_size_fields_fast_path_agrees(parts):
    base = "1600000000.M1P1.host" + "".join(parts)
    assert fn.size_fields(base) == fn.scan_size_fields(base)


@pytest.mark.parametrize("version", [5, 6])
def test_an_older_index_is_migrated_not_rebuilt(account, version):
    """Schema 5 → 6 swapped the subdir index for a partial one over new/, 6 → 7 added the
    records-view snapshot: the cached rows, their modseqs and the parse cache stay (a rebuild
    would restart every modseq)."""
    for n in range(3):
        account.deliver(msg(f"m{n}"))
    box = account.mailbox("INBOX")
    box.store_flags([1], ["\\Seen"], "add")
    path, before = box.index.path, _rows(box)
    modseqs = box.index.db.execute("SELECT uid, modseq FROM records ORDER BY uid").fetchall()
    with box.index.write() as db:          # make it look as that schema left it
        db.execute("DROP TABLE snapshot")
        if version == 5:
            db.execute("DROP INDEX records_new")
            db.execute("CREATE INDEX records_subdir ON records(subdir)")
        db.execute(f"PRAGMA user_version={version}")
    box.close()
    again = account.mailbox("INBOX")
    assert again.index.path == path
    names = {r[0] for r in again.index.db.execute("SELECT name FROM sqlite_master")}
    assert {"records_new", "snapshot"} <= names and "records_subdir" not in names
    assert again.index.db.execute("PRAGMA user_version").fetchone()[0] == index_mod.SCHEMA_VERSION
    assert _rows(again) == before
    assert again.index.db.execute("SELECT uid, modseq FROM records ORDER BY uid").fetchall() == modseqs


def test_a_scan_of_new_uses_the_partial_index(account):
    box = account.mailbox("INBOX")
    plan = " ".join(str(r) for r in box.index.db.execute(
        "EXPLAIN QUERY PLAN SELECT uid FROM records WHERE subdir='new'"))
    assert "records_new" in plan
    low = box.index.db.execute(
        "EXPLAIN QUERY PLAN SELECT MIN(uid) FROM records WHERE subdir='new'").fetchall()
    assert "records_new" in " ".join(str(r) for r in low)


def test_a_new_index_file_is_what_create_makes(tmp_path, monkeypatch):
    made = sqlite3.connect(str(tmp_path / "made.sqlite"), isolation_level=None)
    index_mod.Index._create(made)
    index_mod.empty_index_bytes()           # the process's copy exists: no _create below

    def no_create(db):
        raise AssertionError("a new index should be laid down, not made statement by statement")

    monkeypatch.setattr(index_mod.Index, "_create", staticmethod(no_create))
    laid = index_mod.Index(str(tmp_path / "box" / index_mod.FILE_NAME))
    for query in ("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name",
                  "PRAGMA user_version", "PRAGMA journal_mode", "SELECT * FROM counts"):
        assert laid.db.execute(query).fetchall() == made.execute(query).fetchall(), query
    with laid.write() as db:                # a usable index: rows, triggers, counts
        db.execute("INSERT INTO records (uid, base, subdir, flags, seen, modseq, created, size) "
                   "VALUES (1, 'b', 'new', '', 0, 5, 5, 10)")
    assert laid.counts() == (1, 1, 10)
    laid.close()


def _index_names(db) -> set:
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}


def test_a_big_first_build_makes_two_indexes_after_its_commit(account, monkeypatch):
    """From DEFER_INDEXES_FROM rows, the indexes by base name and modseq are made by a thread
    after the build commits; the file is marked PENDING_VERSION until then."""
    monkeypatch.setattr(index_mod, "DEFER_INDEXES_FROM", 20)
    _filled(account, 30)
    started = []
    real = index_mod._finish_later
    monkeypatch.setattr(index_mod, "_finish_later", lambda p: (started.append(p), real(p)))
    box = account.mailbox("INBOX")
    assert started == [box.index.path] and box.count() == 30
    assert index_mod.wait_for_later_indexes(10)
    assert {"records_base", "records_modseq", "records_new"} <= _index_names(box.index.db)
    assert box.index.db.execute("PRAGMA user_version").fetchone()[0] == index_mod.SCHEMA_VERSION
    # the unique index holds: a second row for a base name is refused
    row = box.index.db.execute("SELECT uid, base FROM records LIMIT 1").fetchone()
    with pytest.raises(sqlite3.IntegrityError):
        with box.index.write() as db:
            db.execute("INSERT INTO records (uid, base, subdir, flags, seen, modseq, created, "
                       "size) VALUES (?, ?, 'cur', '', 0, 1, 1, 1)", (row[0] + 10_000, row[1]))
    # and the counting trigger is back: a delivery moves the count
    account.deliver(msg("late"))
    box.sync()
    assert box.count() == 31


def _left_pending(box, duplicate: bool = False) -> str:
    """Make ``box``'s index look as a build whose process died before the later indexes."""
    with box.index.write() as db:
        for name in index_mod._LATER_INDEXES:
            db.execute(f"DROP INDEX {name}")
        if duplicate:
            uid, base = db.execute("SELECT uid, base FROM records ORDER BY uid LIMIT 1").fetchone()
            db.execute("INSERT INTO records (uid, base, subdir, flags, seen, modseq, created, "
                       "size) VALUES (?, ?, 'cur', '', 0, 1, 1, 1)", (uid + 10_000, base))
        db.execute(f"PRAGMA user_version={index_mod.PENDING_VERSION}")
    path = box.index.path
    box.close()
    return path


@pytest.mark.parametrize("duplicate", [False, True])
def test_the_next_opener_makes_indexes_a_dead_process_left_out(account, duplicate):
    for n in range(3):
        account.deliver(msg(f"m{n}"))
    box = account.mailbox("INBOX")
    uids = [r[0] for r in box.index.db.execute("SELECT uid FROM records ORDER BY uid")]
    path = _left_pending(box, duplicate)
    again = index_mod.Index(path)
    assert {"records_base", "records_modseq"} <= _index_names(again.db)
    assert again.db.execute("PRAGMA user_version").fetchone()[0] == index_mod.SCHEMA_VERSION
    # a second UID for one base name cannot come from dovecot-uidlist; the lowest is kept
    assert [r[0] for r in again.db.execute("SELECT uid FROM records ORDER BY uid")] == uids
    again.close()


def test_an_opener_leaves_indexes_to_the_thread_making_them(account, monkeypatch):
    for n in range(3):
        account.deliver(msg(f"m{n}"))
    path = _left_pending(account.mailbox("INBOX"))
    monkeypatch.setitem(index_mod._finishing, path, None)
    other = index_mod.Index(path)
    assert other.db.execute("PRAGMA user_version").fetchone()[0] == index_mod.PENDING_VERSION
    assert not {"records_base", "records_modseq"} & _index_names(other.db)
    other.close()
    monkeypatch.delitem(index_mod._finishing, path)
    index_mod._finish_later(path)
    assert index_mod.wait_for_later_indexes(10)
    done = index_mod.Index(path)
    assert done.db.execute("PRAGMA user_version").fetchone()[0] == index_mod.SCHEMA_VERSION
    assert {"records_base", "records_modseq"} <= _index_names(done.db)
    done.close()


def test_a_process_exiting_right_after_a_first_build_leaves_a_whole_index(account):
    """The thread making the later indexes is waited for at exit (``pymail index rebuild``)."""
    inbox = account.mailbox("INBOX")
    path, index_path = inbox.folder.path, inbox.index.path
    inbox.close()
    _fill(path, 30)
    os.unlink(index_path)
    code = ("import sys; from pymail.store import Store, index\n"
            "index.DEFER_INDEXES_FROM = 20\n"
            "make = index._make_later_indexes\n"
            # made at exit, after this later-registered handler (atexit is LIFO)
            "import atexit, threading; gate = threading.Event(); atexit.register(gate.set)\n"
            "index._make_later_indexes = lambda db: (gate.wait(10), make(db))\n"
            "box = Store(sys.argv[1], fsync=False).account(sys.argv[2]).mailbox('INBOX')\n"
            "print(box.count(), len(index._finishing))")
    out = subprocess.run([sys.executable, "-c", code, str(account.store.mail_root), account.address],
                         capture_output=True, text=True, timeout=60,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["30", "1"]       # exited while the thread was still due
    db = sqlite3.connect(index_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == index_mod.SCHEMA_VERSION
    assert {"records_base", "records_modseq"} <= _index_names(db)
    db.close()


def _fill_sized(account, count: int) -> None:
    """Files every one of which has S= and W= in its name, not listed in delivery order."""
    account.ensure()
    inbox = account.mailbox("INBOX")
    path = inbox.folder.path
    inbox.close()
    for n in range(count):
        data = msg(f"m{n}")
        when = 1_600_000_000 + (n * 7919) % 300
        vsize = len(data) + data.count(b"\n")
        name = (f"{when}.M{n * 37 % 1000}P{n}.other,S={len(data)},W={vsize}"
                f":2,{FLAG_LETTERS[n % len(FLAG_LETTERS)]}")
        with open(os.path.join(path, "new" if n % 11 == 0 else "cur", name), "wb") as f:
            f.write(data)


def test_a_first_build_from_names_alone_by_columns_or_one_by_one(store, monkeypatch):
    """No dovecot-uidlist and every name with S=/W=: the rows and records view are made in
    columns (``_usual_rows``), the same as message by message (``_bulk_rows``) and as the
    rows read back."""
    from pymail.store import mailbox as mailbox_mod
    from pymail.store import sync as sync_mod
    columns, single = store.account("cols@example.org"), store.account("single@example.org")
    _fill_sized(columns, 260)
    _fill_sized(single, 260)
    used = []
    real = sync_mod.IndexSync._usual_rows
    monkeypatch.setattr(sync_mod.IndexSync, "_usual_rows",
                        lambda *a: used.append(real(*a)) or used[-1])
    by_columns = columns.mailbox("INBOX")
    made = by_columns.records()
    assert used and used[0] is not None
    monkeypatch.setattr(fn, "usual_size_fields", lambda bases: None)
    one_by_one = single.mailbox("INBOX")
    assert used[1] is None
    rows = _rows(by_columns)
    assert [r[0] for r in rows] == list(range(1, 261))
    assert [r[1] for r in rows] == delivery_order([r[1] for r in rows])
    assert rows == _rows(one_by_one)
    assert [r._replace(modseq=0) for r in made] == [
        r._replace(modseq=0) for r in one_by_one.records()]
    assert (by_columns.count(), by_columns.unseen_count(), by_columns.size()) == (
        one_by_one.count(), one_by_one.unseen_count(), one_by_one.size())
    by_columns.close()
    mailbox_mod._shared.clear()
    assert columns.mailbox("INBOX").records() == made     # as read back from the rows


@given(st.lists(st.lists(st.sampled_from(["1", "7", ",S=", ",W=", "x", ",", "\n", ":"]),
                         max_size=8).map("".join), max_size=6))
@settings(max_examples=300, deadline=None)
def test_usual_size_fields_agrees_with_size_fields(tails):
    bases = ["1600000000.M1P1.host" + tail for tail in tails]
    got = fn.usual_size_fields(bases)
    usual = all(re.fullmatch(r".*,S=[0-9]+,W=[0-9]+", b) for b in bases)   # "." is not "\n"
    assert (got is not None) == usual
    if got is not None:
        assert list(zip(*got)) == [fn.size_fields(b) for b in bases]
