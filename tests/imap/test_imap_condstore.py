"""CONDSTORE (RFC 7162 §3.1): SELECT (CONDSTORE), HIGHESTMODSEQ, FETCH MODSEQ / CHANGEDSINCE,
STORE UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ, ENABLE."""

import re

from tests.imap.conftest import deliver, message


def modseq_of(line: bytes) -> int:
    return int(re.search(rb"MODSEQ \((\d+)\)", line).group(1))


def test_select_condstore_and_changedsince(connect, store):
    for i in range(3):
        deliver(store, message(f"c{i}"))
    c = connect()
    typ, _ = c._simple_command("SELECT", "INBOX", "(CONDSTORE)")
    assert typ == "OK"
    c.state = "SELECTED"  # imaplib only tracks state for its own select()
    highest = int(c.untagged_responses["HIGHESTMODSEQ"][0])
    before = [modseq_of(x) for x in c.fetch("1:*", "(MODSEQ)")[1]]
    assert max(before) <= highest
    c.store("2", "+FLAGS.SILENT", "(\\Answered)")
    typ, data = c._simple_command("FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {highest})")
    fetched = c.untagged_responses.pop("FETCH")
    assert typ == "OK" and len(fetched) == 1
    assert fetched[0].startswith(b"2 (FLAGS (") and modseq_of(fetched[0]) > highest
    typ, data = c._simple_command("UID", "FETCH", "1:*", "(FLAGS)", f"(CHANGEDSINCE {highest})")
    fetched = c.untagged_responses.pop("FETCH")
    assert fetched[0].startswith(b"2 (UID 2 FLAGS")


def test_search_modseq_and_status(connect, store):
    for i in range(2):
        deliver(store, message(f"s{i}"))
    c = connect()
    c.enable("CONDSTORE")
    c.select("INBOX")
    highest = int(c.untagged_responses["HIGHESTMODSEQ"][0])
    c.store("1", "+FLAGS.SILENT", "(\\Flagged)")
    typ, data = c.search(None, "MODSEQ", str(highest + 1))
    m = re.match(rb"1 \(MODSEQ (\d+)\)", data[0])
    assert m and int(m.group(1)) > highest
    typ, data = c.status("INBOX", "(HIGHESTMODSEQ)")
    assert int(re.search(rb"HIGHESTMODSEQ (\d+)", data[0]).group(1)) >= int(m.group(1))


def test_store_reports_modseq_after_enable(connect, store):
    deliver(store, message("e"))
    c = connect()
    c.enable("CONDSTORE")
    c.select("INBOX")
    typ, data = c.store("1", "+FLAGS", "(\\Seen)")
    assert b"MODSEQ (" in data[0]


def test_esearch_modseq_of_min_and_max(connect, store):
    for i in range(3):
        deliver(store, message(f"e{i}"))
    c = connect()
    c.enable("CONDSTORE")
    c.select("INBOX")
    mods = {}
    for seq in ("1", "3", "2"):
        mods[seq] = modseq_of(c.store(seq, "+FLAGS", "(\\Seen)")[1][0])
    c._simple_command("SEARCH", "RETURN", "(MIN)", "MODSEQ", "1")
    assert c.untagged_responses.pop("ESEARCH")[0].endswith(f"MIN 1 MODSEQ {mods['1']}".encode())
    c._simple_command("SEARCH", "RETURN", "(MAX)", "MODSEQ", "1")
    assert c.untagged_responses.pop("ESEARCH")[0].endswith(f"MAX 3 MODSEQ {mods['3']}".encode())
    c._simple_command("SEARCH", "RETURN", "(ALL)", "MODSEQ", "1")
    assert c.untagged_responses.pop("ESEARCH")[0].endswith(f"ALL 1:3 MODSEQ {mods['2']}".encode())
