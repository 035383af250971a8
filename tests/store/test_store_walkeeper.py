"""The kept-open index connections and their background WAL checkpoint (store/walkeeper.py)."""

from __future__ import annotations

import os
import sqlite3
import threading

from pymail.store import walkeeper
from pymail.store.index import Index


def _index(tmp_path, name):
    path = str(tmp_path / name / "pymail-index.sqlite")
    Index(path).close()
    return path


def test_kept_connections_are_an_lru_and_evicted_ones_closed(tmp_path, monkeypatch):
    monkeypatch.setattr(walkeeper, "_kept", walkeeper.OrderedDict())
    monkeypatch.setattr(walkeeper, "KEPT_OPEN", 2)
    a, b, c = (_index(tmp_path, n) for n in "abc")
    walkeeper.keep_open(a)
    first = walkeeper._kept[a]
    walkeeper.keep_open(b)
    walkeeper.keep_open(a)                     # used again: most recent
    walkeeper.keep_open(c)                     # b goes
    assert walkeeper.kept_paths() == [a, c]
    assert walkeeper._kept[a] is first
    assert walkeeper._thread is not None and walkeeper._thread.is_alive()


def test_a_large_wal_is_checkpointed_and_the_wal_stays(tmp_path, monkeypatch):
    monkeypatch.setattr(walkeeper, "_kept", walkeeper.OrderedDict())
    path = _index(tmp_path, "box")
    walkeeper.keep_open(path)
    idx = Index(path)
    with idx.write() as db:
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                       [(f"k{i}", "x" * 500) for i in range(2000)])
    idx.close()                                # not the last connection: no checkpoint here
    assert os.path.exists(path + "-wal")
    assert walkeeper.checkpoint_large_wals(min_bytes=10 ** 9) == []   # small enough: left
    assert walkeeper.checkpoint_large_wals(min_bytes=0) == [path]
    # everything is in the database file now: a reader without the WAL sees it
    probe = sqlite3.connect(path)
    busy, log_pages, done = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    assert busy == 0 and log_pages == done
    assert probe.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'k%'").fetchone()[0] == 2000
    probe.close()
    assert os.path.exists(path + "-wal")       # kept, not deleted and made again


def test_a_forked_child_does_not_use_its_parents_connections(tmp_path, monkeypatch):
    monkeypatch.setattr(walkeeper, "_kept", walkeeper.OrderedDict())
    path = _index(tmp_path, "box")
    walkeeper.keep_open(path)
    parent_conn = walkeeper._kept[path]
    pid = os.fork()
    if pid == 0:                                   # the child: a fresh set, the parent's untouched
        ok = walkeeper.kept_paths() == [] and walkeeper._owner == os.getpid()
        ok = ok and walkeeper.checkpoint_large_wals(min_bytes=0) == []
        walkeeper.keep_open(path)
        ok = ok and walkeeper._kept[path] is not parent_conn
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert walkeeper._kept[path] is parent_conn    # the parent's own connection is still there


def _closed(conn) -> bool:
    try:
        conn.execute("SELECT 1")
    except sqlite3.ProgrammingError:           # "Cannot operate on a closed database"
        return True
    return False


def test_an_eviction_during_a_checkpoint_does_not_wait_for_it(tmp_path, monkeypatch):
    """A session never queues behind a checkpoint: connections evicted while one runs are left
    to the checkpointer and closed when it is done."""
    monkeypatch.setattr(walkeeper, "_kept", walkeeper.OrderedDict())
    monkeypatch.setattr(walkeeper, "_to_close", [])
    monkeypatch.setattr(walkeeper, "KEPT_OPEN", 1)
    a, b = _index(tmp_path, "a"), _index(tmp_path, "b")
    walkeeper.keep_open(a)
    first = walkeeper._kept[a]
    with walkeeper._in_use:                    # as during a long checkpoint
        worker = threading.Thread(target=walkeeper.keep_open, args=(b,))
        worker.start()
        worker.join(5)
        assert not worker.is_alive()           # returned at once, did not wait
        assert walkeeper.kept_paths() == [b]
        assert not _closed(first) and walkeeper._to_close == [first]
    walkeeper.close_evicted()                  # what the checkpointer does after its round
    assert _closed(first) and walkeeper._to_close == []
