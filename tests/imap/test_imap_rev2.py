"""IMAP4rev2 (RFC 9051) once enabled: no \\Recent or RECENT, SELECT names the mailbox with LIST,
SEARCH answers with ESEARCH, [CLOSED] when switching mailboxes. IMAP4rev1 stays the default."""

from tests.imap.conftest import deliver, message


def cmd(r, tag, text):
    r.send(tag + b" " + text + b"\r\n")
    return r.until(tag)


def test_rev2_mode(raw, connect, store):
    deliver(store, message("a"))
    r = raw(login=True)
    assert cmd(r, b"e", b"ENABLE IMAP4rev2")[0] == b"* ENABLED IMAP4REV2\r\n"
    lines = cmd(r, b"s", b"SELECT INBOX")
    text = b"".join(lines)
    assert b"* 1 EXISTS" in text and b'* LIST () "/" "INBOX"' in text
    assert b"RECENT" not in text and b"[UNSEEN" not in text
    assert cmd(r, b"f", b"FETCH 1 (FLAGS)")[0] == b"* 1 FETCH (FLAGS ())\r\n"
    assert cmd(r, b"q", b"SEARCH ALL")[0] == b'* ESEARCH (TAG "q") ALL 1\r\n'
    assert cmd(r, b"u", b"UID SEARCH UNSEEN")[0] == b'* ESEARCH (TAG "u") UID ALL 1\r\n'
    deliver(store, message("b"))
    lines = cmd(r, b"n", b"NOOP")
    assert b"* 2 EXISTS\r\n" in lines and not any(b"RECENT" in ln for ln in lines)
    lines = cmd(r, b"x", b"EXAMINE Trash")
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed\r\n"


def test_rev1_is_default(connect, store):
    deliver(store, message("a"))
    c = connect()
    assert "IMAP4rev2" in c.capability()[1][0].decode()
    c.select("INBOX")
    assert c.untagged_responses["RECENT"] == [b"1"]
    assert c.search(None, "ALL")[1] == [b"1"]


def test_rev2_utf8_mailbox_names(raw):
    r = raw(login=True)
    cmd(r, b"e", b"ENABLE IMAP4rev2")
    assert cmd(r, b"c", "CREATE \"Entwürfe\"".encode())[-1].startswith(b"c OK")
    listing = b"".join(cmd(r, b"l", b'LIST "" "Entw*"'))
    assert "\"Entwürfe\"".encode() in listing
