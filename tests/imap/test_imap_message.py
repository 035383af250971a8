"""EXPUNGE, UID EXPUNGE, COPY (COPYUID, TRYCREATE), MOVE (RFC 6851)."""

import re

from tests.imap.conftest import deliver, message


def setup(connect, store, n=4):
    for i in range(n):
        deliver(store, message(f"m{i}"))
    c = connect()
    c.select("INBOX")
    return c


def test_expunge_sends_sequence_numbers(connect, store):
    c = setup(connect, store)
    c.store("2,3", "+FLAGS.SILENT", "(\\Deleted)")
    typ, data = c.expunge()
    assert typ == "OK" and data == [b"3", b"2"]  # highest first: no renumbering surprises
    assert c.fetch("1:*", "(UID)")[1] == [b"1 (UID 1)", b"2 (UID 4)"]


def test_uid_expunge_only_named(connect, store):
    c = setup(connect, store)
    c.store("1:4", "+FLAGS.SILENT", "(\\Deleted)")
    typ, data = c.uid("EXPUNGE", "2:3")
    assert typ == "OK"
    assert c.untagged_responses.pop("EXPUNGE") == [b"3", b"2"]
    assert c.fetch("1:*", "(UID)")[1] == [b"1 (UID 1)", b"2 (UID 4)"]


def test_copy_with_copyuid(connect, store):
    c = setup(connect, store)
    c.create("Archive2")
    typ, data = c.copy("2:3", "Archive2")
    assert typ == "OK"
    m = re.match(rb"\[COPYUID (\d+) 2:3 1:2\]", data[0])
    assert m
    typ, data = c.copy("1", "Nope")
    assert typ == "NO" and b"TRYCREATE" in data[0]
    c.select("Archive2")
    assert c.untagged_responses["EXISTS"] == [b"2"]


def test_move(connect, store):
    c = setup(connect, store)
    typ, data = c._simple_command("MOVE", "1:2", "Trash")
    assert typ == "OK"
    ok = c.untagged_responses.pop("OK")
    assert any(re.match(rb"\[COPYUID \d+ 1:2 1:2\]", x) for x in ok)
    assert c.untagged_responses.pop("EXPUNGE") == [b"2", b"1"]
    typ, data = c.uid("MOVE", "4", "Trash")
    assert typ == "OK"
    assert c.fetch("1:*", "(UID)")[1] == [b"1 (UID 3)"]
    c.select("Trash")
    assert c.untagged_responses["EXISTS"] == [b"3"]
