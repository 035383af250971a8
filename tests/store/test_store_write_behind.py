"""A first build's rows inserted and committed by a thread (``Index.write_behind``): the
mailbox answers from the build meanwhile, every other reader of the file waits for the commit,
a failure or a dead process costs only a rebuild with the same UIDs, and a process exiting
normally waits for the thread."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

from pymail.store import index as index_mod
from pymail.store import uidlist as ul_mod
from tests.store.test_store_bulk_build import _fill

COUNT = 30
REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.fixture
def fresh(account, monkeypatch):
    """``account``'s INBOX with COUNT files and no index yet (the next open builds it in
    bulk, and with WRITE_BEHIND_FROM lowered, behind)."""
    monkeypatch.setattr(index_mod, "WRITE_BEHIND_FROM", 20)
    return unindexed_inbox(account)


def unindexed_inbox(account) -> str:
    """Fill ``account``'s INBOX with COUNT files and remove its index; → the index's path.
    Also used by the IMAP tests."""
    inbox = account.mailbox("INBOX")
    path, index_path = inbox.folder.path, inbox.index.path
    inbox.close()
    _fill(path, COUNT)
    index_mod.remove_files(index_path)
    return index_path


@pytest.fixture
def held(monkeypatch):
    """The write-behind insert (from 20 rows on) waits for this event (set at the end of the
    test at the latest, so no thread is left waiting).  Also used by the IMAP tests."""
    gate = threading.Event()
    real = index_mod.Index.bulk_insert

    def bulk_insert(self, db, loads):
        assert gate.wait(10)
        real(self, db, loads)

    monkeypatch.setattr(index_mod.Index, "bulk_insert", bulk_insert)
    monkeypatch.setattr(index_mod, "WRITE_BEHIND_FROM", 20)
    yield gate
    gate.set()
    assert index_mod.wait_for_later_indexes(10)


def _committed_rows(index_path: str) -> int:
    db = sqlite3.connect(index_path)
    try:
        return db.execute("SELECT count(*) FROM records").fetchone()[0]
    finally:
        db.close()


def test_the_mailbox_answers_from_the_build_before_its_rows_are_committed(account, fresh, held):
    box = account.mailbox("INBOX")
    assert box.index.writing_behind()
    assert _committed_rows(fresh) == 0          # nothing committed yet...
    assert [r.uid for r in box.records()] == list(range(1, COUNT + 1))     # ...but all known
    assert box.uidnext == COUNT + 1 and box.uidvalidity > 0 and box.highest_modseq > 0
    assert box.claim_recent() == []             # every file is in cur/
    result = box.sync()
    assert (result.added, result.expunged, result.flag_changes) == ([], [], [])
    assert box.index.writing_behind()           # none of that waited for the rows
    held.set()
    assert box.count() == COUNT                 # the first use of the table waits for them
    assert not box.index.writing_behind()
    assert _committed_rows(fresh) == COUNT
    box.close()


def test_other_openers_of_the_file_wait_for_the_commit(account, fresh, held):
    box = account.mailbox("INBOX")
    counted = []

    def other_session():
        with account.mailbox("INBOX") as other:
            counted.append((other.count(), other.uidnext))

    thread = threading.Thread(target=other_session)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive() and counted == []  # queued on the writer lock
    held.set()
    thread.join(10)
    assert counted == [(COUNT, COUNT + 1)]
    box.close()


def test_the_same_object_used_from_another_thread_waits_too(account, fresh, held):
    box = account.mailbox("INBOX")
    counted = []
    thread = threading.Thread(target=lambda: counted.append(box.count()))
    thread.start()
    thread.join(0.3)
    assert thread.is_alive() and counted == []
    held.set()
    thread.join(10)
    assert counted == [COUNT]
    box.close()


def test_close_waits_for_the_thread(account, fresh, held):
    box = account.mailbox("INBOX")
    threading.Timer(0.2, held.set).start()
    box.close()
    assert _committed_rows(fresh) == COUNT


@pytest.fixture
def failing(monkeypatch, caplog):
    """The insert fails (``disk I/O error``) the first ``failing["times"]`` times (after
    ``failing["gate"]`` is set), then inserts; ``failing["calls"]`` counts the attempts."""
    real = index_mod.Index.bulk_insert
    state = {"times": 1, "calls": 0, "gate": threading.Event()}
    state["gate"].set()

    def bulk_insert(self, db, loads):
        state["calls"] += 1
        assert state["gate"].wait(10)
        if state["calls"] <= state["times"]:
            raise sqlite3.OperationalError("disk I/O error")
        real(self, db, loads)

    monkeypatch.setattr(index_mod.Index, "bulk_insert", bulk_insert)
    caplog.set_level(logging.WARNING, logger="pymail.store.index")
    yield state
    state["gate"].set()
    assert index_mod.wait_for_later_indexes(10)


def _uidlist_uidvalidity(box) -> int:
    return ul_mod.read_summary(box.folder.uidlist_path).uidvalidity


def test_a_select_answering_when_the_insert_fails_keeps_its_values(account, fresh, failing,
                                                                   caplog):
    failing["gate"].clear()                     # the insert fails once the answer is made
    box = account.mailbox("INBOX")
    uids = [r.uid for r in box.records()]
    uidvalidity = box.uidvalidity
    failing["gate"].set()
    assert index_mod.wait_for_later_indexes(10)
    assert "index rows not written" in caplog.text
    assert _committed_rows(fresh) == 0          # rolled back
    # a SELECT still composing its answer gets the values its view came from
    assert (box.uidvalidity, box.uidnext) == (uidvalidity, COUNT + 1)
    result = box.sync()                         # the first use of the table builds again
    assert (result.added, result.expunged) == ([], [])
    assert failing["calls"] == 2 and _committed_rows(fresh) == COUNT
    assert box.count() == COUNT
    assert [r.uid for r in box.records()] == uids
    assert box.uidvalidity == uidvalidity == _uidlist_uidvalidity(box)
    box.close()


@pytest.mark.parametrize("first_look", ["records", "uidvalidity", "count", "sync"])
def test_after_a_failed_insert_the_first_look_builds_again(account, fresh, failing, first_look):
    failing["gate"].clear()
    box = account.mailbox("INBOX")
    failing["gate"].set()                           # fails once the mailbox is open...
    assert index_mod.wait_for_later_indexes(10)     # ...and before anything looks again
    assert _committed_rows(fresh) == 0
    # whatever looks first gets the whole mailbox, never the empty table
    answer = {"records": lambda: [r.uid for r in box.records()],
              "uidvalidity": lambda: box.uidvalidity,
              "count": box.count,
              "sync": lambda: box.sync().expunged}[first_look]()
    assert answer == {"records": list(range(1, COUNT + 1)),
                      "uidvalidity": _uidlist_uidvalidity(box),
                      "count": COUNT, "sync": []}[first_look]
    assert [r.uid for r in box.records()] == list(range(1, COUNT + 1))
    assert failing["calls"] == 2                # built again once, in line
    assert not box.index.writing_behind() and _committed_rows(fresh) == COUNT
    box.close()


def test_an_insert_that_keeps_failing_raises_and_is_tried_again(account, fresh, failing):
    failing["times"] = 3
    failing["gate"].clear()
    box = account.mailbox("INBOX")
    failing["gate"].set()
    assert index_mod.wait_for_later_indexes(10)
    for _ in range(2):                          # an error, never an empty mailbox
        with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
            box.records()
    assert failing["calls"] == 3
    assert [r.uid for r in box.records()] == list(range(1, COUNT + 1))
    assert _committed_rows(fresh) == COUNT
    box.close()


def _run(account, code: str) -> subprocess.CompletedProcess:
    prelude = ("import os, sys, time\n"
               "from pymail.store import Store, index\n"
               "index.WRITE_BEHIND_FROM = 20\n"
               "real = index.Index.bulk_insert\n")
    out = subprocess.run([sys.executable, "-c", prelude + code, str(account.store.mail_root),
                          account.address], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out


def test_a_process_exiting_normally_waits_for_the_rows(account, fresh):
    out = _run(account,
               # the insert starts at exit, after this later-registered handler (LIFO)
               "import atexit, threading\n"
               "gate = threading.Event()\n"
               "atexit.register(gate.set)\n"
               "index.Index.bulk_insert = lambda self, db, loads: (gate.wait(10), "
               "real(self, db, loads))\n"
               "box = Store(sys.argv[1], fsync=False).account(sys.argv[2]).mailbox('INBOX')\n"
               "print(box.index.writing_behind(), len(box.records()))\n")
    assert out.stdout.split() == ["True", str(COUNT)]  # exited while the rows were due
    assert _committed_rows(fresh) == COUNT


def test_a_process_dying_before_the_commit_costs_a_rebuild_with_the_same_uids(account, fresh):
    out = _run(account,
               "index.Index.bulk_insert = lambda self, db, loads: time.sleep(30)\n"
               "box = Store(sys.argv[1], fsync=False).account(sys.argv[2]).mailbox('INBOX')\n"
               "print(' '.join(str(r.uid) for r in box.records()), flush=True)\n"
               "os._exit(0)\n")
    uids = [int(u) for u in out.stdout.split()]
    assert len(uids) == COUNT
    assert _committed_rows(fresh) == 0
    box = account.mailbox("INBOX")
    assert [r.uid for r in box.records()] == uids
    assert box.count() == COUNT
    box.close()
