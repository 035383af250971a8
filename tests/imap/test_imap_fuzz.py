"""Robustness: random commands and random messages never give a traceback ([SERVERBUG]),
a hang, or a dropped connection (BRIEF: bad input gets a clear protocol error)."""

import socket

from hypothesis import HealthCheck, given, settings, strategies as st

from pymail.imap import mime, serialize
from pymail.imap.fetchspec import Section
from pymail.imap.parser import Atom
from pymail.store import parse
from tests.imap.conftest import PASSWORD, USER, deliver, message

COMMANDS = ["CAPABILITY", "NOOP", "CHECK", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME",
            "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "APPEND", "EXPUNGE", "SEARCH",
            "FETCH", "STORE", "COPY", "MOVE", "UID FETCH", "UID SEARCH", "UID STORE", "UID COPY",
            "UID MOVE", "UID EXPUNGE", "SORT", "THREAD", "NAMESPACE", "ID", "ENABLE", "GETQUOTAROOT",
            "GETQUOTA", "SETQUOTA", "CANCELUPDATE", "UNSELECT", "ESEARCH", "UID SORT"]
WORDS = ["1", "1:*", "*", "$", "2,4:5", "INBOX", "FLAGS", "+FLAGS", "-FLAGS.SILENT", "\\Seen",
         "\\Deleted", "BODY[]", "BODY.PEEK[1.2.MIME]", "BODY[HEADER.FIELDS (FROM)]<0.5>", "BINARY[1]",
         "BINARY.SIZE[2]", "ENVELOPE", "BODYSTRUCTURE", "RFC822", "UID", "ALL", "OR", "NOT", "SUBJECT",
         "HEADER", "BEFORE", "1-Jan-2020", "LARGER", "RETURN", "MIN", "PARTIAL", "UPDATE", "CHARSET",
         "UTF-8", "CONDSTORE", "QRESYNC", "CHANGEDSINCE", "UNCHANGEDSINCE", "MODSEQ", "REFERENCES",
         "ORDEREDSUBJECT", "ARRIVAL", "REVERSE", "SUBJECT", "SPECIAL-USE", "SUBSCRIBED", "STATUS",
         "MESSAGES", "Trash", "Sent", "%", "CATENATE", "URL", "TEXT", "UTF8", "0", "4294967296"]
atoms = st.sampled_from(WORDS).map(Atom)
strings = st.sampled_from([b"", b"INBOX", b"x", b"/INBOX/;UID=1", b"a\"b", "caf\u00e9".encode()])
values = st.recursive(atoms | strings, lambda inner: st.lists(inner, max_size=4), max_leaves=8)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.line()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "server closed the connection"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def run(self, tag: bytes, data: bytes) -> bytes:
        self.sock.sendall(data)
        while True:
            ln = self.line()
            if ln.startswith(b"+ "):
                continue  # a literal continuation; the literal bytes are already sent
            if ln.startswith(tag + b" "):
                return ln


def test_random_commands_never_crash(server, store):
    deliver(store, message("fuzz"))
    conn = Conn(server.port)
    assert conn.run(b"L", f"L LOGIN {USER} {PASSWORD}\r\n".encode()).startswith(b"L OK")
    counter = iter(range(10**6))

    @settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(COMMANDS), st.lists(values, max_size=5), st.booleans())
    def check(name, args, select_first):
        n = next(counter)
        if select_first:
            conn.run(b"s%d" % n, b"s%d SELECT INBOX\r\n" % n)
        tag = b"t%d" % n
        wire = tag + b" " + name.encode() + b"".join(b" " + serialize.value(a) for a in args) + b"\r\n"
        reply = conn.run(tag, wire)
        assert reply.split(b" ")[1] in (b"OK", b"NO", b"BAD"), reply
        assert b"SERVERBUG" not in reply, (wire, reply)

    check()


raw_parts = st.lists(st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=X\r\n", b"Content-Type: message/rfc822\r\n",
    b"Content-Type: text/plain; charset=\"\r\n", b"Content-Type: multipart/alternative; boundary=\"\"\r\n",
    b"\r\n", b"--X\r\n", b"--X--\r\n", b"From: <@@>, \"unterminated\r\n", b"To: group:;\r\n",
    b"Subject: =?bad?x?y?=\r\n", b"body\r\n", b" folded\r\n", b"\n", b"\x00\xff", b"(((", b"<<>>"]),
    max_size=25).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(raw_parts, st.lists(st.integers(1, 4), max_size=4),
       st.sampled_from(["", "HEADER", "TEXT", "MIME", "HEADER.FIELDS"]))
def test_mime_never_crashes(raw, path, spec):
    msg = mime.parse_message(raw)
    serialize.value(parse.bodystructure(raw))       # what FETCH BODYSTRUCTURE serves
    serialize.value(mime.envelope(msg))
    if spec == "MIME" and not path:
        spec = ""
    section = Section(tuple(path), spec, ("FROM",) if spec == "HEADER.FIELDS" else ())
    assert isinstance(mime.section_bytes(msg, section), bytes)
