"""LMTP (RFC 2033): LHLO, local recipients only, one reply per accepted recipient after DATA."""

from __future__ import annotations

import socket


def read_reply(f) -> bytes:
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            return line


def test_lmtp_replies_once_per_recipient(mailsys):
    mailsys.add_user("full@example.org", quota_bytes=10)
    port = mailsys.listen("lmtp", tls="none")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        assert b"LMTP" in f.readline()
        s.sendall(b"LHLO mta.test\r\nMAIL FROM:<a@ext.test>\r\nRCPT TO:<alice@example.org>\r\n"
                  b"RCPT TO:<nobody@example.org>\r\nRCPT TO:<full@example.org>\r\nRCPT TO:<someone@ext.test>\r\n"
                  b"RCPT TO:<bob@example.org>\r\nDATA\r\n")
        replies = [read_reply(f) for _ in range(8)]
        assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"550", b"250", b"550", b"250", b"354"]
        s.sendall(b"Subject: lmtp\r\n\r\nhello\r\n.\r\n")
        per_rcpt = [read_reply(f) for _ in range(3)]  # alice, full, bob: in RCPT order
        assert per_rcpt[0].startswith(b"250 2.1.5 <alice@example.org>")
        assert per_rcpt[1].startswith(b"452 4.2.2 <full@example.org>")
        assert per_rcpt[2].startswith(b"250 2.1.5 <bob@example.org>")
        s.sendall(b"QUIT\r\n")
        assert f.readline().startswith(b"221")
    assert len(mailsys.inbox("alice@example.org")) == 1
    assert len(mailsys.inbox("bob@example.org")) == 1
    assert mailsys.inbox("full@example.org") == []
    assert not mailsys.queued()  # LMTP stores at once; nothing is left in the queue
    assert not mailsys.queue.dir.files()


def test_lmtp_refuses_helo_and_auth(mailsys):
    port = mailsys.listen("lmtp", tls="none")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO x\r\nLHLO x\r\nAUTH PLAIN\r\nSTARTTLS\r\n")
        assert [read_reply(f)[:3] for _ in range(4)] == [b"500", b"250", b"502", b"502"]


def test_lmtp_bdat(mailsys):
    port = mailsys.listen("lmtp", tls="none")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"LHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<sales@example.org>\r\n"
                  b"BDAT 10 LAST\r\nSubject: b\r\n")
        replies = [read_reply(f) for _ in range(6)]
        assert [r[:3] for r in replies] == [b"250"] * 6
    assert len(mailsys.inbox("alice@example.org")) == 1  # direct and through the alias: one copy


def test_lmtp_over_a_unix_socket(mailsys, tmp_path):
    from twisted.internet import reactor as twisted_reactor

    from pymail.config import ListenerConfig
    from pymail.smtp import make_factory
    from pymail.testing import reactor_thread

    path = str(tmp_path / "lmtp.sock")
    factory = make_factory(mailsys.ctx, ListenerConfig(role="lmtp", port=0, unix_socket=path))
    port = reactor_thread.call(twisted_reactor.listenUNIX, path, factory)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(path)
            f = s.makefile("rb")
            assert f.readline().startswith(b"220")
            s.sendall(b"LHLO postfix.test\r\nMAIL FROM:<a@ext.test>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
            assert [read_reply(f)[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
            s.sendall(b"Subject: unix\r\n\r\nhi\r\n.\r\n")
            assert read_reply(f).startswith(b"250 2.1.5 <bob@example.org>")
    finally:
        reactor_thread.call(port.stopListening)
    raw = mailsys.inbox("bob@example.org")[0]
    assert b"with LMTP id" in raw
