"""FETCH: FLAGS, UID, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY[section]<partial>,
HEADER.FIELDS(.NOT), MIME, TEXT, RFC822*, \\Seen setting, UID FETCH, bad sets."""

import imaplib
import re

import pytest

from tests.imap.conftest import deliver, message

MULTIPART = (
    b"From: \"Bob Smith\" <bob@example.net>\r\n"
    b"To: alice@example.org, Group: carol@example.com, dave@example.com;\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\n"
    b"Date: Mon, 30 Nov 2026 01:00:00 +0000\r\n"
    b"Message-ID: <mp@example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--XX\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"hello\r\nworld\r\n"
    b"--XX\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: inner@example.com\r\n"
    b"Subject: inner\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--XX\r\n"
    b"Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=\"a.bin\"\r\n"
    b"\r\n"
    b"AAEC\r\n"
    b"--XX--\r\n"
)


def test_fetch_basic_items(connect, store):
    msg = message("basic")
    deliver(store, msg)
    c = connect()
    c.select("INBOX")
    typ, data = c.fetch("1", "(UID FLAGS RFC822.SIZE INTERNALDATE)")
    line = data[0]
    assert re.match(rb'1 \(UID 1 FLAGS \(\\Recent\) RFC822.SIZE %d INTERNALDATE "[ \d]\d-\w{3}-\d{4} \d\d:\d\d:\d\d \+0000"\)'
                    % len(msg), line), line
    typ, data = c.fetch("1", "FAST")
    assert b"RFC822.SIZE" in data[0] and b"INTERNALDATE" in data[0]


def test_fetch_body_sections(connect, store):
    deliver(store, MULTIPART)
    c = connect()
    c.select("INBOX")

    def section(spec):
        d = c.fetch("1", f"(BODY.PEEK[{spec})")[1]
        return d[0][1]

    assert section("1]") == b"hello\r\nworld"
    assert section("2.HEADER]") == b"From: inner@example.com\r\nSubject: inner\r\n\r\n"
    assert section("2.1]") == b"inner body"
    assert section("3.MIME]").startswith(b"Content-Type: application/octet-stream")
    assert section("HEADER.FIELDS (Subject MESSAGE-ID)]") == (b"Subject: =?utf-8?q?caf=C3=A9?=\r\n"
                                                             b"Message-ID: <mp@example.net>\r\n\r\n")
    assert section("TEXT]<0.8>") == b"preamble"
    assert section("]<5.4>") == b' "Bo'
    d = c.fetch("1", "(BODY.PEEK[1] BODY.PEEK[2.1])")[1]
    assert d[0][1] == b"hello\r\nworld" and d[1][1] == b"inner body"
    # PEEK did not set \Seen
    assert b"\\Seen" not in c.fetch("1", "(FLAGS)")[1][0]


def test_fetch_header_fields_not_and_rfc822(connect, store):
    deliver(store, message("x"))
    c = connect()
    c.select("INBOX")
    d = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS.NOT (From To Date Message-ID)])")[1]
    assert d[0][1] == b"Subject: x\r\n\r\n"
    d = c.fetch("1", "(RFC822.HEADER)")[1]
    assert d[0][1].endswith(b"\r\n\r\n") and d[0][1].startswith(b"From:")
    d = c.fetch("1", "(RFC822.TEXT)")[1]
    assert d[0][1] == b"body text\r\n"
    assert b"\\Seen" in c.fetch("1", "(FLAGS)")[1][0]


def test_fetch_sets_seen_and_reports_flags(connect, store):
    deliver(store, message("s"))
    c = connect()
    c.select("INBOX")
    d = c.fetch("1", "(BODY[])")[1]
    assert b"FLAGS (\\Recent \\Seen)" in d[0][0] or b"FLAGS (\\Seen \\Recent)" in d[0][0] \
        or b"\\Seen" in d[1]


def test_envelope_and_bodystructure(connect, store):
    deliver(store, MULTIPART)
    c = connect()
    c.select("INBOX")
    env = c.fetch("1", "(ENVELOPE)")[1][0]
    assert (b'ENVELOPE ("Mon, 30 Nov 2026 01:00:00 +0000" "=?utf-8?q?caf=C3=A9?=" '
            b'(("Bob Smith" NIL "bob" "example.net")) (("Bob Smith" NIL "bob" "example.net")) '
            b'(("Bob Smith" NIL "bob" "example.net")) ((NIL NIL "alice" "example.org")'
            b'(NIL NIL "Group" NIL)(NIL NIL "carol" "example.com")(NIL NIL "dave" "example.com")'
            b'(NIL NIL NIL NIL)) NIL NIL NIL "<mp@example.net>")').replace(b")(", b") (") in env
    bs = c.fetch("1", "(BODYSTRUCTURE)")[1][0]
    assert b'("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)' in bs
    assert b'("message" "rfc822" NIL NIL NIL "7bit" 53 (NIL "inner" ((NIL NIL "inner" "example.com"))' in bs
    assert b'("application" "octet-stream" ("name" "a.bin") NIL NIL "base64" 4 NIL ("attachment" ("filename" "a.bin")) NIL NIL)' in bs
    assert bs.rstrip(b")").endswith(b'"mixed" ("boundary" "XX") NIL NIL NIL')
    body = c.fetch("1", "(BODY)")[1][0]
    assert b'"mixed")' in body and b"attachment" not in body


def test_uid_fetch_and_sets(connect, store):
    for i in range(5):
        deliver(store, message(f"m{i}"))
    c = connect()
    c.select("INBOX")
    typ, data = c.uid("FETCH", "2:4", "(FLAGS)")
    assert [re.match(rb"(\d+) \(UID (\d+)", d).groups() for d in data] == [(b"2", b"2"), (b"3", b"3"), (b"4", b"4")]
    typ, data = c.uid("FETCH", "10:*", "(FLAGS)")  # "*" is the largest UID: 5
    assert typ == "OK" and data[0].startswith(b"5 (UID 5")
    with pytest.raises(imaplib.IMAP4.error, match="Invalid sequence"):
        c.fetch("9", "(FLAGS)")
    typ, data = c.fetch("1,3,5", "(UID)")
    assert len(data) == 3


def test_fetch_bad_syntax(raw, store):
    deliver(store, message("x"))
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    for cmd in [b"a FETCH 1 (BOGUS)\r\n", b"a FETCH x FLAGS\r\n", b"a FETCH 1 BODY[9.MIME\r\n",
                b"a FETCH 1\r\n"]:
        r.send(cmd)
        assert r.until(b"a")[-1].startswith(b"a BAD"), cmd
    r.send(b"b FETCH 1 (BODY.PEEK[5])\r\n")  # a part that does not exist: empty
    lines = r.until(b"b")
    assert lines[0] == b'* 1 FETCH (BODY[5] "")\r\n'


def test_bulk_fetch_waits_for_a_slow_reader(raw, server, store):
    """A whole-mailbox BODY[] download is sent as the client reads it, not buffered at once."""
    import time

    body = ("x" * 1000 + "\r\n") * 500  # ~500 KB each
    for i in range(30):
        deliver(store, message(f"big{i}", body=body))
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    r.send(b"f FETCH 1:* (BODY.PEEK[])\r\n")
    time.sleep(1.5)  # do not read: the server must stop producing
    [proto] = [p for p in server.factory.live if p._gate is not None]
    assert proto._gate.paused
    buffered = len(proto.transport.dataBuffer) + sum(map(len, proto.transport._tempDataBuffer))
    assert buffered < 4 << 20  # a batch or two (about 1 MB each), not the 15 MB mailbox
    total = 0
    r.sock.settimeout(20)
    while True:
        ln = r.line()
        if ln.startswith(b"f "):
            assert ln.startswith(b"f OK")
            break
        m = re.search(rb"\{(\d+)\}\r\n$", ln)
        if m:
            r.read_exact(int(m.group(1)))
            total += 1
    assert total == 30
    assert proto._gate is None
