"""CONTEXT=SEARCH / CONTEXT=SORT (RFC 5267): PARTIAL, UPDATE (ADDTO/REMOVEFROM), CANCELUPDATE."""

from tests.imap.conftest import deliver, message


def cmd(r, tag, text):
    r.send(tag + b" " + text + b"\r\n")
    return r.until(tag)


def test_partial(raw, store):
    for i in range(5):
        deliver(store, message(f"p{i}"))
    r = raw(login=True)
    cmd(r, b"s", b"SELECT INBOX")
    assert cmd(r, b"a", b"SEARCH RETURN (PARTIAL 4:2) ALL")[0] == b'* ESEARCH (TAG "a") PARTIAL (2:4 2:4)\r\n'
    assert cmd(r, b"b", b"SEARCH RETURN (PARTIAL 6:9) ALL")[0] == b'* ESEARCH (TAG "b") PARTIAL (6:9 NIL)\r\n'
    assert cmd(r, b"c", b"SORT RETURN (PARTIAL 1:2) (REVERSE ARRIVAL) UTF-8 ALL")[0] == \
        b'* ESEARCH (TAG "c") PARTIAL (1:2 5,4)\r\n'
    assert cmd(r, b"d", b"SEARCH RETURN (PARTIAL 1:*) ALL")[-1].startswith(b"d BAD")


def test_update_addto_removefrom_cancel(raw, connect, store):
    for i in range(4):
        deliver(store, message(f"u{i}"))
    r = raw(login=True)
    cmd(r, b"s", b"SELECT INBOX")
    assert cmd(r, b"q", b"SEARCH RETURN (UPDATE ALL) SEEN")[0] == b'* ESEARCH (TAG "q")\r\n'
    lines = cmd(r, b"t", b"STORE 1,3 +FLAGS.SILENT (\\Seen)")
    assert b'* ESEARCH (TAG "q") ADDTO (1 1,3)\r\n' in lines
    other = connect()
    other.select("INBOX")
    other.store("4", "+FLAGS.SILENT", "(\\Seen)")
    lines = cmd(r, b"n", b"NOOP")
    assert b'* ESEARCH (TAG "q") ADDTO (3 4)\r\n' in lines
    lines = cmd(r, b"x", b"STORE 3 +FLAGS.SILENT (\\Deleted)")
    lines = cmd(r, b"e", b"EXPUNGE")
    assert lines[:2] == [b'* ESEARCH (TAG "q") REMOVEFROM (2 3)\r\n', b"* 3 EXPUNGE\r\n"]
    assert cmd(r, b"c", b'CANCELUPDATE "q"')[-1].startswith(b"c OK")
    lines = cmd(r, b"t2", b"STORE 2 +FLAGS.SILENT (\\Seen)")
    assert not any(b"ESEARCH" in ln for ln in lines)
    assert cmd(r, b"c2", b'CANCELUPDATE "q"')[-1].startswith(b"c2 NO")


def test_uid_sort_update(raw, store):
    for i in range(2):
        deliver(store, message(f"s{i}"))
    r = raw(login=True)
    cmd(r, b"s", b"SELECT INBOX")
    assert cmd(r, b"q", b"UID SORT RETURN (UPDATE ALL) (REVERSE ARRIVAL) UTF-8 ALL")[0] == \
        b'* ESEARCH (TAG "q") UID ALL 2,1\r\n'
    deliver(store, message("s2"))
    lines = cmd(r, b"n", b"NOOP")
    assert b'* ESEARCH (TAG "q") UID ADDTO (1 3)\r\n' in lines
