"""A records view saved in the index (snapshot.py) for another process's first look: the same
view as reading every row, changes after it applied, damaged or foreign snapshots ignored."""

from __future__ import annotations

import time

import pytest

from pymail.store import mailbox as mailbox_mod
from pymail.store import snapshot
from pymail.store.types import MessageRecord
from tests.store.conftest import msg


def _flagset(text):
    return frozenset(text.split(" ")) if text else frozenset()


def _records():
    flags = [frozenset(), frozenset({"\\Seen"}), frozenset({"\\Seen", "$Label1", "\\Flagged"})]
    return [tuple.__new__(MessageRecord, (uid, flags[uid % 3], 1_000 + uid, 2_000 + uid,
                                          None if uid % 4 else 1.6e9 + uid, f"g{uid}"))
            for uid in range(1, 301, 2)]


def test_pack_and_unpack_give_the_view_back():
    ordered = _records()
    back = snapshot.unpack(snapshot.pack(ordered), _flagset)
    assert back == ordered and all(type(r) is MessageRecord for r in back)
    assert len({id(r.flags) for r in back}) == 3          # one set per distinct flag text
    assert snapshot.unpack(snapshot.pack([]), _flagset) == []


@pytest.mark.parametrize("damage", ["short column", "count", "flag index", "flag texts", "guids"])
def test_a_damaged_snapshot_is_not_used(damage):
    count, uids, modseqs, sizes, dates, texts, index, guids = snapshot.pack(_records())
    if damage == "short column":
        sizes = sizes[:-3]
    elif damage == "count":
        count += 1
    elif damage == "flag index":
        index = index[:-4] + (99).to_bytes(4, "little")
    elif damage == "flag texts":
        texts = "[not json"
    else:
        guids += "\0extra"
    row = (count, uids, modseqs, sizes, dates, texts, index, guids)
    assert snapshot.unpack(row, _flagset) is None


@pytest.fixture
def small_snapshots(monkeypatch):
    """Snapshots for views of any size; this process's shared views forgotten before and after."""
    monkeypatch.setattr(snapshot, "MIN_MESSAGES", 3)
    monkeypatch.setattr(mailbox_mod, "_snapshot_looked", {})
    mailbox_mod._shared.clear()
    yield
    mailbox_mod._shared.clear()


def _rows_view(box):
    rows = box.index.db.execute(mailbox_mod._RECORD_SELECT + " ORDER BY uid").fetchall()
    return box._make_records(rows)


def test_another_process_starts_from_the_snapshot_and_reads_the_changes(account, small_snapshots,
                                                                        monkeypatch):
    for n in range(8):
        account.deliver(msg(f"m{n}"), flags=["\\Seen"] if n % 2 else [])
    first = account.mailbox("INBOX")
    first.internal_dates([1, 2])                           # dates known for some
    assert mailbox_mod.save_view_snapshots() == [first.index.path]
    assert mailbox_mod.save_view_snapshots() == []         # nothing new to save
    first.store_flags([3, 4], ["\\Flagged"], "add")       # changes after the snapshot
    first.store_flags([5], ["\\Deleted"], "add")
    first.expunge()
    account.deliver(msg("late"))
    first.close()

    loaded = []
    real_load = snapshot.load

    def watching(*args):
        got = real_load(*args)
        loaded.append(got is not None)
        return got

    monkeypatch.setattr(snapshot, "load", watching)
    mailbox_mod._shared.clear()                            # as in another process
    second = account.mailbox("INBOX")
    assert loaded == [True]
    assert [r.uid for r in second.records()] == [1, 2, 3, 4, 6, 7, 8, 9]
    assert second.records() == _rows_view(second)          # dates: the ones in the rows
    assert second.record(3).flags == frozenset({"\\Flagged"})
    second.close()


def test_a_rebuilt_index_does_not_use_the_old_snapshot(account, small_snapshots, monkeypatch):
    for n in range(5):
        account.deliver(msg(f"m{n}"))
    box = account.mailbox("INBOX")
    box.records()
    assert mailbox_mod.save_view_snapshots() == [box.index.path]
    box.rebuild_index()
    assert box.index.db.execute("SELECT count(*) FROM snapshot").fetchone()[0] == 0
    box.close()
    mailbox_mod._shared.clear()
    again = account.mailbox("INBOX")
    assert again.records() == _rows_view(again)
    again.close()


def test_a_snapshot_is_saved_again_only_when_much_changed(account, small_snapshots, monkeypatch):
    monkeypatch.setattr(snapshot, "STALE_SHARE", 4)        # again once a quarter changed
    for n in range(8):
        account.deliver(msg(f"m{n}"))
    box = account.mailbox("INBOX")
    assert mailbox_mod.save_view_snapshots() == [box.index.path]
    box.store_flags([1], ["\\Seen"], "add")
    box.records()
    assert mailbox_mod.save_view_snapshots() == []         # 1 of 8 changed
    box.store_flags([2, 3, 4], ["\\Seen"], "add")
    box.records()
    assert mailbox_mod.save_view_snapshots() == [box.index.path]
    saved = box.index.db.execute("SELECT modseq FROM snapshot").fetchone()[0]
    assert saved == box.highest_modseq
    box.close()


def test_the_wal_keepers_thread_saves_snapshots(account, small_snapshots):
    for n in range(4):
        account.deliver(msg(f"m{n}"))
    box = account.mailbox("INBOX")
    box.records()
    deadline = time.monotonic() + 10                       # it looks once a second
    while time.monotonic() < deadline:
        if box.index.db.execute("SELECT count(*) FROM snapshot").fetchone()[0]:
            break
        time.sleep(0.05)
    assert box.index.db.execute("SELECT count(*) FROM snapshot").fetchone()[0] == 1
    box.close()


@pytest.mark.parametrize("odd", ["q?x=1", "h#sh", "pct%41", "sp ace"])
def test_an_existing_index_is_found_whatever_its_path_holds(tmp_path, odd):
    from pymail.store.index import Index, existing_index

    path = str(tmp_path / odd / "pymail-index.sqlite")
    Index(path).close()
    with existing_index(path) as index:
        assert index is not None and index.db.execute("PRAGMA user_version").fetchone()[0] > 0
    with existing_index(str(tmp_path / odd / "missing.sqlite")) as db:
        assert db is None
    assert sorted(p.name for p in (tmp_path / odd).iterdir()) == ["pymail-index.sqlite"]
