"""SELECT of a folder that has no index yet answers from the first build while the index rows
are still being written (``Index.write_behind``); the commands after it see the whole index."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from pymail.store import index as index_mod
from tests.imap.conftest import USER
from tests.store.test_store_bulk_build import FLAG_LETTERS
from tests.store.test_store_write_behind import (COUNT, _committed_rows, held,  # noqa: F401
                                                 unindexed_inbox)


def test_select_answers_while_the_first_build_is_written(store, connect, held):
    acct = store.account(USER)
    acct.ensure()
    index_path = unindexed_inbox(acct)

    c = connect()
    typ, data = c.select("INBOX")
    assert (typ, data) == ("OK", [str(COUNT).encode()])
    assert c.response("UIDNEXT")[1] == [str(COUNT + 1).encode()]
    assert _committed_rows(index_path) == 0        # answered before the rows were committed
    held.set()
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
    assert typ == "OK" and len(data) == COUNT
    typ, data = c.fetch("1:3", "(RFC822.SIZE INTERNALDATE)")
    assert typ == "OK" and len(data) == 3
    typ, data = c.store("1:5", "+FLAGS.SILENT", "(\\Flagged)")
    assert typ == "OK"
    assert _committed_rows(index_path) == COUNT
    other = connect()
    typ, data = other.status("INBOX", "(MESSAGES UIDNEXT)")
    assert typ == "OK" and f"MESSAGES {COUNT} UIDNEXT {COUNT + 1}".encode() in data[0]
    typ, data = other.select("INBOX")
    typ, data = other.uid("SEARCH", "FLAGGED")
    flagged = {1, 2, 3, 4, 5} | {n + 1 for n in range(COUNT)
                                 if "F" in FLAG_LETTERS[n % len(FLAG_LETTERS)]}
    assert data == [" ".join(map(str, sorted(flagged))).encode()]


@pytest.mark.parametrize("when", ["after the answer", "at once"])
def test_a_failed_first_build_costs_a_rebuild_not_the_messages(store, connect, monkeypatch,
                                                               when):
    """The insert behind the SELECT fails (a disk error), after the SELECT answered or while
    it is still composing its answer: the SELECT and the commands after it see every message
    with its UID, and no EXPUNGE; the index is built again."""
    acct = store.account(USER)
    acct.ensure()
    index_path = unindexed_inbox(acct)
    gate, real, calls = threading.Event(), index_mod.Index.bulk_insert, []
    if when == "at once":
        gate.set()

    def bulk_insert(self, db, loads):
        calls.append(1)
        if len(calls) == 1:
            assert gate.wait(10)
            raise sqlite3.OperationalError("disk I/O error")
        real(self, db, loads)

    monkeypatch.setattr(index_mod.Index, "bulk_insert", bulk_insert)
    monkeypatch.setattr(index_mod, "WRITE_BEHIND_FROM", 20)
    c = connect()
    try:
        assert c.select("INBOX") == ("OK", [str(COUNT).encode()])
    finally:
        gate.set()
    assert index_mod.wait_for_later_indexes(10)
    if when == "after the answer":
        assert _committed_rows(index_path) == 0        # failed; nothing looked since
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
    assert typ == "OK" and len(data) == COUNT
    assert [int(line.split(b"UID ")[1].split()[0]) for line in data] == list(range(1, COUNT + 1))
    typ, data = c.noop()
    assert c.response("EXPUNGE") == ("EXPUNGE", [None])
    # nothing came or went (an EXISTS repeating the count is allowed, RFC 3501 7.3.1)
    assert c.response("EXISTS")[1] in ([None], [str(COUNT).encode()])
    assert len(calls) == 2 and _committed_rows(index_path) == COUNT
