"""FETCH ENVELOPE made straight to wire bytes (fetch.envelope_wire) says exactly what the
generic serialiser says of ``mime.envelope`` (RFC 3501 §7.4.2), with and without UTF8=ACCEPT."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from pymail.imap import mime, serialize
from pymail.imap.commands.fetch import envelope_wire

HEADERS = [
    b"From: a@b.c (Name)\r\n",
    b"From: Name <a@b.c> (comment)\r\nSender: s@x\r\nReply-To: r@x\r\n",
    b"To: undisclosed-recipients:;\r\n",
    b'To: "A, B" <a@b>, c@d\r\nCc: <boss@nil.test>, "Giant; \\"Big\\" Box" <sys@example.net>\r\n',
    b"From: =?utf-8?q?J=C3=B6rg?= <j@x.de>\r\nSubject: caf\xc3\xa9\r\n",
    b"From: <@route:a@b>\r\nBcc: b@x\r\n",
    b"From: a\r\nTo:\r\n",
    b"To: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;\r\n",
    b"From: Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>\r\n",
    b"Subject: x\r\nDate: Thu, 13 Feb 1969 23:32:54 -0330\r\nMessage-ID: <a@b>\r\n"
    b"In-Reply-To: <x@y>\r\n",
    b"Subject: " + b"long " * 300 + b"\r\n",          # past the quoted-string limit: a literal
    b"Subject: with \"quotes\" and \\ backslash\r\n",
    b"X-Other: 1\r\n",
]


def _same(header: bytes) -> None:
    msg = mime.parse_header(header + b"\r\n")
    for utf8 in (False, True):
        assert envelope_wire(msg, utf8) == serialize.value(mime.envelope(msg), utf8)


def test_known_headers():
    for header in HEADERS:
        _same(header)


def test_the_bytes_go_out_as_they_are():
    msg = mime.parse_header(b"From: a@b.c\r\n\r\n")
    wire = envelope_wire(msg, False)
    assert serialize.untagged(1, "FETCH", [serialize.Atom("ENVELOPE"), wire]) == \
        b"* 1 FETCH (ENVELOPE " + bytes(wire) + b")\r\n"


_TEXT = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_ADDRESSY = st.lists(st.sampled_from([b"a@b.c", b"Name", b"<x@y.z>", b'"Q, R"', b"(c)", b",",
                                      b":", b";", b" ", b"\\", b"\xc3\xa9", b"@", b"<", b">"]),
                     max_size=12).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from([b"From", b"Sender", b"Reply-To", b"To", b"Cc", b"Bcc",
                                        b"Subject", b"Date", b"Message-ID", b"In-Reply-To"]),
                       st.one_of(_ADDRESSY, _TEXT), max_size=10))
def test_any_header(fields):
    _same(b"".join(k + b": " + v + b"\r\n" for k, v in fields.items()))
