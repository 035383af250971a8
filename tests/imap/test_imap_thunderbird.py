"""The command sequence Thunderbird 153 sends (shared/notes/thunderbird.md), replayed byte by
byte over STARTTLS: first contact, sync, IDLE push, flag change, move to Trash, save to Sent,
quit in the middle of IDLE."""

import re
import time

from tests.imap.conftest import PASSWORD, USER, deliver, message


class TlsClient:
    def __init__(self, port, ssl_ctx):
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        assert self.line().startswith(b"* OK")
        self.sock.sendall(b"1 STARTTLS\r\n")
        assert self.line().startswith(b"1 OK")
        self.sock = ssl_ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "closed"
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln + b"\r\n"

    def read(self, n):
        while len(self.buf) < n:
            self.buf += self.sock.recv(65536)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def cmd(self, tag, text):
        """Send one command; returns all response bytes up to the tagged line (literals read)."""
        self.sock.sendall(tag + b" " + text + b"\r\n")
        out = []
        while True:
            ln = self.line()
            out.append(ln)
            m = re.search(rb"\{(\d+)\}\r\n$", ln)
            if m:
                out.append(self.read(int(m.group(1))))
                continue
            if ln.startswith(tag + b" "):
                return b"".join(out)


def test_thunderbird_session(make_server, store, client_ssl_context):
    import base64

    srv = make_server(tls="starttls", allow_plaintext_auth=False)
    deliver(store, message("first", body="hello thunderbird\r\n"))
    tb = TlsClient(srv.port, client_ssl_context)
    caps = tb.cmd(b"2", b"capability")
    assert b"AUTH=PLAIN" in caps and b"STARTTLS" not in caps
    tb.sock.sendall(b"3 authenticate PLAIN\r\n")
    assert tb.line() == b"+ \r\n"
    tb.sock.sendall(base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()) + b"\r\n")
    ok = tb.line()
    assert ok.startswith(b"3 OK [CAPABILITY ") and b"IDLE" in ok and b"MOVE" in ok and b"UIDPLUS" in ok
    assert b'* NAMESPACE (("" "/")) NIL NIL' in tb.cmd(b"4", b"namespace")
    assert b"* ID (" in tb.cmd(b"5", b'ID ("name" "Thunderbird" "version" "153.0")')
    listing = tb.cmd(b"6", b'list (subscribed) "" "*"')
    assert b'\\Subscribed) "/" "INBOX"' in listing and b'"Trash"' in listing
    assert b'"/" "INBOX"' in tb.cmd(b"7", b'list "" "INBOX"')
    assert b'"/" "Trash"' in tb.cmd(b"8", b'list "" "Trash"')
    sel = tb.cmd(b"9", b'select "INBOX"')
    assert b"* 1 EXISTS" in sel and b"[READ-WRITE]" in sel
    assert b"* 1 FETCH (UID 1 FLAGS (\\Recent))" in tb.cmd(b"10", b"UID fetch 1:* (FLAGS)")
    headers = tb.cmd(b"11", b"UID fetch 1 (UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS (From To Cc Bcc "
                            b"Subject Date Message-ID Priority X-Priority References Newsgroups In-Reply-To "
                            b"Content-Type Reply-To)])")
    assert b"Subject: first" in headers and b"11 OK" in headers
    assert b"hello thunderbird" in tb.cmd(b"12", b"UID fetch 1 (UID RFC822.SIZE BODY.PEEK[])")
    # IDLE; a new message arrives and is announced within a second
    tb.sock.sendall(b"13 IDLE\r\n")
    assert tb.line() == b"+ idling\r\n"
    start = time.monotonic()
    deliver(store, message("second"))
    assert tb.line() == b"* 2 EXISTS\r\n"
    assert time.monotonic() - start < 1.5
    tb.sock.sendall(b"DONE\r\n")
    while not tb.line().startswith(b"13 OK"):
        pass
    assert b"\\Flagged" in tb.cmd(b"14", b"uid store 2 +Flags (\\Flagged)")
    moved = tb.cmd(b"15", b'uid move 1 "Trash"')
    assert re.search(rb"\* OK \[COPYUID \d+ 1 1\]", moved) and b"* 1 EXPUNGE" in moved
    sent = message("sent by me")
    tb.sock.sendall(b'16 append "Sent" (\\Seen) {%d+}\r\n' % len(sent) + sent + b"\r\n")
    assert tb.line().startswith(b"16 OK [APPENDUID ")
    tb.sock.sendall(b"17 IDLE\r\n")
    assert tb.line() == b"+ idling\r\n"
    tb.sock.close()  # Thunderbird quits without DONE or LOGOUT
    deadline = time.monotonic() + 3
    while srv.factory.live and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not srv.factory.live and not srv.factory.per_user
    with store.account(USER).mailbox("Sent") as mb:
        assert mb.count() == 1 and "\\Seen" in mb.records()[0].flags
    with store.account(USER).mailbox("Trash") as mb:
        assert mb.count() == 1
