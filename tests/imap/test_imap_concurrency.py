"""Two sessions on one mailbox, pipelining, and the EXPUNGE rules of RFC 3501 §7.4.1."""

import re

from tests.imap.conftest import deliver, message


def test_two_sessions_see_each_other(connect, store):
    deliver(store, message("one"))
    a, b = connect(), connect()
    a.select("INBOX")
    b.select("INBOX")
    a.untagged_responses.clear()
    # append in B → A sees EXISTS at its next command
    b.append("INBOX", None, None, message("two"))
    a.noop()
    assert a.untagged_responses.pop("EXISTS") == [b"2"]
    # flag change in A → B sees FETCH FLAGS at its next command
    a.store("1", "+FLAGS.SILENT", "(\\Flagged)")
    typ, data = b.noop()
    fetches = b.untagged_responses.pop("FETCH")
    assert any(re.match(rb"1 \(FLAGS \(.*\\Flagged", f) for f in fetches)
    # expunge in B → A sees EXPUNGE
    b.store("1", "+FLAGS.SILENT", "(\\Deleted)")
    b.expunge()
    a.noop()
    assert a.untagged_responses.pop("EXPUNGE") == [b"1"]
    assert a.fetch("1:*", "(UID)")[1] == [b"1 (UID 2)"]


def test_delivery_by_store_is_seen(connect, store):
    a = connect()
    a.select("INBOX")
    a.untagged_responses.clear()
    deliver(store, message("late"))
    a.noop()
    assert a.untagged_responses.pop("EXISTS") == [b"1"]
    assert a.untagged_responses.pop("RECENT") == [b"1"]


def test_no_expunge_during_fetch_store_search(raw, connect, store):
    for i in range(3):
        deliver(store, message(f"m{i}"))
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    other = connect()
    other.select("INBOX")
    other.store("2", "+FLAGS.SILENT", "(\\Deleted)")
    other.expunge()
    for tag, cmd in [(b"f", b"FETCH 1 (FLAGS)"), (b"t", b"STORE 1 +FLAGS (\\Seen)"),
                     (b"x", b"SEARCH ALL")]:
        r.send(tag + b" " + cmd + b"\r\n")
        lines = r.until(tag)
        assert not any(b"EXPUNGE" in ln for ln in lines), lines
    # sequence numbers did not move: message 3 is still number 3
    r.send(b"g FETCH 3 (UID)\r\n")
    assert r.until(b"g")[0] == b"* 3 FETCH (UID 3)\r\n"
    # fetching the expunged message itself: the others are served, then NO
    r.send(b"h FETCH 2 (BODY.PEEK[])\r\n")
    assert r.until(b"h")[-1].startswith(b"h NO [EXPUNGEISSUED]")
    r.send(b"n NOOP\r\n")
    lines = r.until(b"n")
    assert b"* 2 EXPUNGE\r\n" in lines
    r.send(b"u UID FETCH 1:* (UID)\r\n")
    assert r.until(b"u")[:2] == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 3)\r\n"]


def test_pipelined_commands_answered_in_order(raw, store):
    for i in range(3):
        deliver(store, message(f"m{i}"))
    r = raw(login=True)
    r.send(b"p1 SELECT INBOX\r\np2 FETCH 1:3 (UID)\r\np3 STORE 2 +FLAGS (\\Seen)\r\n"
           b"p4 SEARCH SEEN\r\np5 NOOP\r\n")
    tagged = []
    while len(tagged) < 5:
        ln = r.line()
        if ln.startswith(b"p"):
            tagged.append(ln.split(b" ")[0])
    assert tagged == [b"p1", b"p2", b"p3", b"p4", b"p5"]


def test_recent_is_claimed_once(connect, store):
    deliver(store, message("r"))
    a = connect()
    a.select("INBOX")
    assert a.untagged_responses["RECENT"] == [b"1"]
    b = connect()
    b.select("INBOX")
    assert b.untagged_responses["RECENT"] == [b"0"]
    assert a.search(None, "RECENT")[1] == [b"1"]
    assert b.search(None, "RECENT")[1] == [b""]


def test_expunge_and_new_mail_in_one_update(raw, connect, store):
    """Found by imaptest's stress mode: EXISTS must follow even when EXPUNGEs came first."""
    deliver(store, message("a"))
    deliver(store, message("b"))
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    other = connect()
    other.select("INBOX")
    other.store("1", "+FLAGS.SILENT", "(\\Deleted)")
    other.expunge()
    deliver(store, message("c"))
    deliver(store, message("d"))
    r.send(b"n NOOP\r\n")
    lines = r.until(b"n")
    assert lines.index(b"* 1 EXPUNGE\r\n") < lines.index(b"* 3 EXISTS\r\n")
    r.send(b"f FETCH 3 (UID)\r\n")
    assert r.until(b"f")[0] == b"* 3 FETCH (UID 4)\r\n"


def test_new_keyword_flags_before_fetch(raw):
    r = raw(login=True)
    m = message("k")
    r.send(b"a APPEND INBOX {%d+}\r\n%s\r\ns SELECT INBOX\r\n" % (len(m), m))
    r.until(b"s")
    r.send(b"t STORE 1 +FLAGS ($Fresh)\r\n")
    lines = r.until(b"t")
    assert lines[0].startswith(b"* FLAGS (") and b"$Fresh" in lines[0]
    assert b"$Fresh" in lines[1] and lines[1].startswith(b"* 1 FETCH")
