"""COMPRESS=DEFLATE (RFC 4978): raw deflate both ways after the tagged OK."""

import zlib

from tests.imap.conftest import deliver, message


class Deflated:
    def __init__(self, raw):
        self.raw = raw
        self.out = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.inp = zlib.decompressobj(-15)
        self.buf = b""

    def send(self, data: bytes):
        self.raw.send(self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH))

    def _fill(self):
        chunk = self.raw.sock.recv(65536)
        assert chunk, "connection closed"
        self.buf += self.inp.decompress(chunk)

    def until(self, tag: bytes) -> tuple[bytes, bytes]:
        """(untagged data before, the tagged line) for ``tag``."""
        while True:
            pos = 0 if self.buf.startswith(tag + b" ") else self.buf.find(b"\r\n" + tag + b" ")
            if pos >= 0:
                start = pos if pos == 0 else pos + 2
                end = self.buf.find(b"\r\n", start)
                if end >= 0:
                    before, line = self.buf[:start], self.buf[start:end]
                    self.buf = self.buf[end + 2:]
                    return before, line
            self._fill()


def test_compress_round_trip(raw, store):
    body = "line of text that compresses well\r\n" * 2000
    deliver(store, message("big", body=body))
    r = raw(login=True)
    r.send(b"c COMPRESS DEFLATE\r\n")
    assert r.line() == b"c OK DEFLATE active\r\n"
    z = Deflated(r)
    z.send(b"s SELECT INBOX\r\n")
    assert b"* 1 EXISTS" in z.until(b"s")[0]
    z.send(b"f FETCH 1 (BODY.PEEK[TEXT])\r\n")
    data, line = z.until(b"f")
    assert body.encode() in data and line == b"f OK FETCH completed"
    z.send(b"c2 COMPRESS DEFLATE\r\n")
    assert z.until(b"c2")[1].startswith(b"c2 NO [COMPRESSIONACTIVE]")
    # literals from the client inside the compressed stream
    m = message("up")
    z.send(b"a APPEND INBOX {%d+}\r\n%s\r\n" % (len(m), m))
    assert z.until(b"a")[1].startswith(b"a OK [APPENDUID")


def test_compress_bad_mechanism(raw):
    r = raw(login=True)
    r.send(b"c COMPRESS LZMA\r\n")
    assert r.until(b"c")[-1].startswith(b"c BAD")
    r.send(b"d COMPRESS\r\n")
    assert r.until(b"d")[-1].startswith(b"d BAD")


def test_compress_synchronising_literal_and_idle(raw, store):
    r = raw(login=True)
    r.send(b"c COMPRESS DEFLATE\r\n")
    assert r.line() == b"c OK DEFLATE active\r\n"
    z = Deflated(r)
    m = message("sync")
    z.send(b"a APPEND INBOX {%d}\r\n" % len(m))
    while b"+ Ready\r\n" not in z.buf:
        z._fill()
    z.buf = z.buf.replace(b"+ Ready\r\n", b"")
    z.send(m + b"\r\n")
    assert z.until(b"a")[1].startswith(b"a OK")
    z.send(b"s SELECT INBOX\r\ni IDLE\r\n")
    z.until(b"s")
    while b"+ idling\r\n" not in z.buf:
        z._fill()
    deliver(store, message("pushed"))
    while b"* 2 EXISTS" not in z.buf:
        z._fill()
    z.send(b"DONE\r\n")
    assert z.until(b"i")[1] == b"i OK IDLE terminated"
