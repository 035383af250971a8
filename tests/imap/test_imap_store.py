"""STORE / UID STORE: +FLAGS, -FLAGS, FLAGS, .SILENT, keywords, UNCHANGEDSINCE (CONDSTORE)."""

import re

from tests.imap.conftest import deliver, message


def setup(connect, store, n=3):
    for i in range(n):
        deliver(store, message(f"m{i}"))
    c = connect()
    c.select("INBOX")
    return c


def test_store_add_remove_replace(connect, store):
    c = setup(connect, store)
    typ, data = c.store("1:2", "+FLAGS", "(\\Flagged $Work)")
    assert typ == "OK" and len(data) == 2
    assert all(b"\\Flagged" in d and b"$Work" in d for d in data)
    typ, data = c.store("1", "-FLAGS", "(\\Flagged)")
    assert b"\\Flagged" not in data[0] and b"$Work" in data[0]
    typ, data = c.store("2", "FLAGS", "(\\Answered)")
    assert re.search(rb"FLAGS \(([^)]*)\)", data[0]).group(1).split() == [b"\\Answered", b"\\Recent"]
    typ, data = c.store("3", "+FLAGS.SILENT", "(\\Seen)")
    assert typ == "OK" and data == [None]
    assert b"\\Seen" in c.fetch("3", "(FLAGS)")[1][0]


def test_uid_store_returns_uid(connect, store):
    c = setup(connect, store)
    typ, data = c.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
    assert data[0].startswith(b"2 (UID 2 FLAGS (") and b"\\Deleted" in data[0]


def test_store_bad_flags(connect, store):
    c = setup(connect, store)
    for bad in ["(\\Bogus)", "(foo]bar)", "(a{b)"]:
        try:
            typ, _ = c.store("1", "+FLAGS", bad)
        except Exception as e:  # imaplib raises on BAD
            assert "BAD" in str(e)
        else:
            assert typ != "OK"


def test_store_unchangedsince(connect, store):
    c = setup(connect, store, 2)
    data = c.fetch("1:2", "(MODSEQ)")[1]
    modseqs = [int(re.search(rb"MODSEQ \((\d+)\)", d).group(1)) for d in data]
    c.store("1", "+FLAGS", "(\\Seen)")
    typ, data = c._simple_command("STORE", "1:2", f"(UNCHANGEDSINCE {modseqs[0]})", "+FLAGS", "(\\Flagged)")
    assert typ == "OK" and b"[MODIFIED 1]" in data[0]
    flags2 = c.fetch("2", "(FLAGS)")[1][0]
    assert b"\\Flagged" in flags2
    assert b"\\Flagged" not in c.fetch("1", "(FLAGS)")[1][0]


def test_keywords_appear_in_flags_response(connect, store):
    c = setup(connect, store, 1)
    c.store("1", "+FLAGS", "(NewKeyword)")
    c.noop()
    flags = c.untagged_responses.get("FLAGS")
    assert flags and b"NewKeyword" in flags[-1]
