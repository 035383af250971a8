"""SELECT/EXAMINE, CREATE/DELETE/RENAME, (UN)SUBSCRIBE, LIST (+ LIST-EXTENDED, LIST-STATUS,
SPECIAL-USE), LSUB, STATUS, APPEND (APPENDUID, LITERAL+), CLOSE/UNSELECT."""

import imaplib
import re

import pytest

from tests.imap.conftest import deliver, message


def name_of(line: bytes) -> bytes:
    return re.search(rb'"/" "?(.*?)"?$', line).group(1)


def test_select_responses(connect, store):
    deliver(store, message("one"))
    deliver(store, message("two"), flags=["\\Seen"])
    c = connect()
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    r = c.untagged_responses
    assert r["RECENT"] == [b"2"]
    assert b"\\Seen" in r["FLAGS"][0]
    assert r["UIDVALIDITY"][0].isdigit() and r["UIDNEXT"] == [b"3"]
    assert r["UNSEEN"] == [b"1"]
    assert "HIGHESTMODSEQ" in r
    assert r["READ-WRITE"] == [b""]
    # a second session sees no \Recent (RFC 3501 §2.3.2)
    c2 = connect()
    c2.select("INBOX")
    assert c2.untagged_responses["RECENT"] == [b"0"]


def test_examine_is_read_only(connect, store):
    deliver(store, message("one"))
    c = connect()
    typ, data = c.select("INBOX", readonly=True)
    assert typ == "OK" and "READ-ONLY" in c.untagged_responses
    typ, data = c.store("1", "+FLAGS", "\\Deleted")
    assert typ == "NO" and b"READ-ONLY" in data[0]
    c.fetch("1", "(BODY[])")  # no \Seen on a read-only mailbox
    assert b"\\Seen" not in c.fetch("1", "(FLAGS)")[1][0]


def test_select_missing_leaves_nothing_selected(connect):
    c = connect()
    c.select("INBOX")
    typ, data = c.select("Nope")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    with pytest.raises(imaplib.IMAP4.error):
        c.fetch("1", "FLAGS")  # not in SELECTED state any more


def test_create_delete_rename_list(connect):
    c = connect()
    assert c.create("Work")[0] == "OK"
    assert c.create("Work/2024")[0] == "OK"
    typ, data = c.create("Work")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0]
    typ, data = c.list('""', "*")
    names = {name_of(d) for d in data}
    assert {b"INBOX", b"Work", b"Work/2024", b"Sent", b"Trash"} <= names
    assert any(d.startswith(b"(\\HasChildren") and name_of(d) == b"Work" for d in data)
    typ, data = c.list('""', "%")
    assert not any(b"2024" in d for d in data)
    typ, data = c.list("Work/", "%")
    assert [name_of(d) for d in data] == [b"Work/2024"]
    assert c.rename("Work/2024", "Old")[0] == "OK"
    assert name_of(c.list('""', "Old")[1][0]) == b"Old"
    assert c.delete("Old")[0] == "OK"
    assert c.list('""', "Old")[1] == [None]
    typ, data = c.delete("INBOX")
    assert typ == "NO"


def test_list_root_and_special_use(connect):
    c = connect()
    assert c.list('""', '""')[1] == [b'(\\Noselect) "/" ""']
    data = c.list('""', "Sent")[1]
    assert b"\\Sent" in data[0]
    typ, data = c._simple_command("LIST", "(SPECIAL-USE)", '""', '"*"')
    lines = c.untagged_responses.pop("LIST")
    assert typ == "OK" and all(re.search(rb"\\(Sent|Drafts|Trash|Junk|Archive)", ln) for ln in lines)
    assert c._simple_command("CREATE", "Outbox", "(USE (\\Sent))")[0] == "OK"


def test_utf7_names(connect):
    c = connect()
    assert c.create("&ZeVnLIqe-")[0] == "OK"  # 日本語
    assert c.list('""', "&ZeVnLIqe-")[1][0].endswith(b'"&ZeVnLIqe-"')
    typ, data = c.create("bad&name")
    assert typ == "NO"


def test_subscribe_lsub_and_list_subscribed(connect):
    c = connect()
    c.create("Lists")
    c.unsubscribe("Lists")
    assert not any(d.endswith(b' "Lists"') for d in c.lsub('""', "*")[1] if d)
    assert c.subscribe("Lists")[0] == "OK"
    assert any(d.endswith(b' "Lists"') for d in c.lsub('""', "*")[1])
    typ, _ = c._simple_command("LIST", "(SUBSCRIBED)", '""', '"*"')
    lines = c.untagged_responses.pop("LIST")
    assert typ == "OK" and any(b"\\Subscribed" in ln and ln.endswith(b' "Lists"') for ln in lines)


def test_status_and_list_status(connect, store):
    deliver(store, message("a"))
    deliver(store, message("b"), flags=["\\Seen"])
    c = connect()
    typ, data = c.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT HIGHESTMODSEQ)")
    assert typ == "OK"
    assert re.search(rb"MESSAGES 2 .*UNSEEN 1 UIDNEXT 3 UIDVALIDITY \d+", data[0])
    typ, data = c.status("Nope", "(MESSAGES)")
    assert typ == "NO"
    typ, _ = c._simple_command("LIST", '""', '"INBOX"', "RETURN", "(STATUS (MESSAGES UNSEEN))")
    assert typ == "OK"
    assert c.untagged_responses.pop("STATUS")[0] == b'"INBOX" (MESSAGES 2 UNSEEN 1)'


def test_append_and_appenduid(connect):
    c = connect()
    msg = message("appended")
    typ, data = c.append("INBOX", "(\\Seen $Label1)", '"01-Feb-2024 10:00:00 +0100"', msg)
    assert typ == "OK"
    m = re.match(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
    assert m and m.group(2) == b"1"
    c.select("INBOX")
    typ, data = c.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    assert b"$Label1" in data[0][0] and b"\\Seen" in data[0][0]
    assert b'INTERNALDATE " 1-Feb-2024 09:00:00 +0000"' in data[0][0]
    assert data[0][1] == msg
    assert f"RFC822.SIZE {len(msg)}".encode() in data[0][0]
    typ, data = c.append("Nope", None, None, msg)
    assert typ == "NO" and b"TRYCREATE" in data[0]


def test_append_literal_plus_raw(raw):
    r = raw(login=True)
    msg = message("plus")
    r.send(b"a APPEND Sent (\\Seen) {%d+}\r\n" % len(msg) + msg + b"\r\n")
    assert r.until(b"a")[-1].startswith(b"a OK [APPENDUID")
    r.send(b"b STATUS Sent (MESSAGES)\r\n")
    assert r.until(b"b")[0] == b'* STATUS "Sent" (MESSAGES 1)\r\n'


def test_close_expunges_unselect_does_not(connect, store):
    for i in range(3):
        deliver(store, message(f"m{i}"))
    c = connect()
    c.select("INBOX")
    c.store("1", "+FLAGS", "\\Deleted")
    assert c._simple_command("UNSELECT")[0] == "OK"
    c.select("INBOX")
    assert c.untagged_responses["EXISTS"] == [b"3"]
    c.close()
    c.select("INBOX")
    assert c.untagged_responses["EXISTS"] == [b"2"]


def test_multiappend_all_or_nothing(raw):
    r = raw(login=True)
    m1, m2 = message("multi1"), message("multi2")
    r.send(b'a APPEND Drafts (\\Draft) {%d+}\r\n%s "02-Feb-2024 10:00:00 +0000" {%d+}\r\n%s\r\n'
           % (len(m1), m1, len(m2), m2))
    line = r.until(b"a")[-1]
    assert re.match(rb"a OK \[APPENDUID \d+ 1:2\]", line), line
    # the second message is bad (an empty literal): nothing of this command stays
    r.send(b"b APPEND Drafts {%d+}\r\n%s {0+}\r\n\r\n" % (len(m1), m1))
    assert r.until(b"b")[-1].startswith(b"b BAD")
    r.send(b"c STATUS Drafts (MESSAGES)\r\n")
    assert r.until(b"c")[0] == b'* STATUS "Drafts" (MESSAGES 2)\r\n'


def test_append_quoted_string_is_not_a_message(raw):
    r = raw(login=True)
    r.send(b'a APPEND Drafts "From: x"\r\n')
    assert r.until(b"a")[-1].startswith(b"a BAD")


def test_multiappend_rolls_back_on_store_failure(raw, directory):
    big = message("big", body="x" * 3000 + "\r\n")
    small = message("small")
    directory.set_quota("alice@example.org", quota_bytes=len(small) + 2000)
    r = raw(login=True)
    r.send(b"a APPEND Drafts {%d+}\r\n%s {%d+}\r\n%s\r\n" % (len(small), small, len(big), big))
    assert r.until(b"a")[-1].startswith(b"a NO [OVERQUOTA]")
    r.send(b"c STATUS Drafts (MESSAGES)\r\n")
    assert r.until(b"c")[0] == b'* STATUS "Drafts" (MESSAGES 0)\r\n'


def test_catenate(raw, store):
    deliver(store, message("source", body="source body\r\n"))
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\n")
    uidvalidity = re.search(rb"UIDVALIDITY (\d+)", b"".join(r.until(b"s"))).group(1)
    text = b"\r\nextra line\r\n"
    r.send(b'a APPEND Drafts CATENATE (URL "/INBOX;UIDVALIDITY=%s/;UID=1/;SECTION=HEADER" '
           b'URL "/inbox/;uid=1/;section=text/;partial=0.6" TEXT {%d+}\r\n%s)\r\n' % (uidvalidity, len(text), text))
    assert r.until(b"a")[-1].startswith(b"a OK [APPENDUID")
    r.send(b"x EXAMINE Drafts\r\nf FETCH 1 (BODY.PEEK[])\r\n")
    r.until(b"x")
    lines = r.until(b"f")
    assert b"".join(lines[1:-1]).startswith(message("source").split(b"\r\n\r\n")[0] + b"\r\n\r\nsource\r\nextra line")
    r.send(b'b APPEND Drafts CATENATE (URL "/INBOX;UIDVALIDITY=1/;UID=1")\r\n')
    assert r.until(b"b")[-1].startswith(b"b NO [BADURL")
    r.send(b'c APPEND Nope CATENATE (URL "/INBOX/;UID=1")\r\n')
    assert r.until(b"c")[-1].startswith(b"c NO [TRYCREATE]")
    r.send(b'd APPEND Drafts CATENATE (URL "imap://other.example/INBOX/;UID=1")\r\n')
    assert r.until(b"d")[-1].startswith(b"d NO [BADURL")
