"""BINARY (RFC 3516): FETCH BINARY[part], BINARY.SIZE, literal8, APPEND ~{n}, UNKNOWN-CTE."""

import base64

from pymail.imap.commands.fetch import decode_qp
from tests.imap.conftest import deliver

PAYLOAD = b"\x00\x01binary\xff\r\nmore"
MSG = (b"From: a@example.com\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
       b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
       b"--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
       b"caf=C3=A9 =\r\nsoft   \r\nend\r\n"
       b"--B\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
       + base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n") +
       b"--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-weird\r\n\r\nzzz\r\n"
       b"--B--\r\n")


def test_decode_qp():
    assert decode_qp(b"a=3Db =\r\nc  \r\nd") == b"a=b c\r\nd"
    assert decode_qp(b"bad =ZZ") == b"bad =ZZ"


def test_fetch_binary_sections(raw, store):
    deliver(store, MSG)
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    r.send(b"a FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])\r\n")
    lines = r.until(b"a")
    assert lines[0] == b"* 1 FETCH (BINARY.SIZE[1] 15 BINARY[1] {15}\r\n"
    assert lines[1] == b"caf\xc3\xa9 soft\r\n"
    r.send(b"b FETCH 1 (BINARY.PEEK[2])\r\n")
    head = r.line()
    assert head == b"* 1 FETCH (BINARY[2] ~{%d}\r\n" % len(PAYLOAD)
    assert r.read_exact(len(PAYLOAD)) == PAYLOAD
    assert r.until(b"b")[-1].startswith(b"b OK")
    r.send(b"c FETCH 1 (BINARY.PEEK[2]<2.6>)\r\n")
    assert r.line() == b"* 1 FETCH (BINARY[2]<2> ~{6}\r\n"  # the part holds NULs
    assert r.read_exact(6) == b"binary"
    r.until(b"c")
    r.send(b"d FETCH 1 (BINARY.PEEK[3])\r\n")
    assert r.until(b"d")[-1].startswith(b"d NO [UNKNOWN-CTE]")
    r.send(b"e FETCH 1 (BINARY[1])\r\n")  # without PEEK: sets \Seen
    assert b"\\Seen" in b"".join(r.until(b"e"))


def test_append_literal8_with_nul(raw):
    r = raw(login=True)
    msg = b"From: a@example.com\r\nContent-Type: application/octet-stream\r\n\r\n\x00\xffraw"
    r.send(b"a APPEND INBOX ~{%d+}\r\n%s\r\n" % (len(msg), msg))
    assert r.until(b"a")[-1].startswith(b"a OK [APPENDUID")
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    r.send(b"f FETCH 1 (BINARY.SIZE[1] BODY.PEEK[1])\r\n")
    lines = r.until(b"f")
    assert lines[0].startswith(b"* 1 FETCH (BINARY.SIZE[1] 5 BODY[1] {")
    assert b"\x00" not in b"".join(lines)
