"""MX role over real sockets: local delivery, unknown users, relay control in every address form."""

from __future__ import annotations

import smtplib
import socket

import pytest

MSG = b"From: a@remote.test\r\nTo: alice@example.org\r\nSubject: hello\r\n\r\nHello Alice.\r\n"


def test_local_mail_is_queued_and_delivered(mailsys):
    port = mailsys.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.test")
        code, msg = c.mail("a@remote.test")
        assert code == 250
        assert c.rcpt("alice@example.org")[0] == 250
        assert c.rcpt("sales@example.org")[0] == 250  # alias to alice
        code, msg = c.data(MSG)
        assert code == 250 and b"queued as" in msg
        queue_id = msg.split()[-1].decode()
    got = mailsys.wait_for(lambda: mailsys.inbox("alice@example.org"), what="delivery to alice")
    mailsys.wait_for(lambda: not mailsys.queued(), what="empty queue")
    assert len(mailsys.inbox("alice@example.org")) == 1  # alice and an alias of alice: one copy
    raw = got[0]
    assert raw.startswith(b"Return-Path: <a@remote.test>\r\nDelivered-To: alice@example.org\r\n")
    assert f"with ESMTP id {queue_id}".encode() in raw
    assert b"Hello Alice." in raw
    mailsys.wait_for(lambda: not mailsys.queued(), what="empty queue")


def test_unknown_local_recipient_is_refused_at_rcpt(mailsys):
    port = mailsys.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("a@remote.test")
        code, msg = c.rcpt("nobody@example.org")
        assert code == 550 and msg.startswith(b"5.1.1")


RELAY_FORMS = [
    "user@ext.test",
    '"user@ext.test"@example.org',
    "user%ext.test@example.org",
    "ext.test!user@example.org",
    "@example.org:user@ext.test",
    "@example.org,@mx.test:user@ext.test",
    "user@[192.0.2.1]",
    "user@[127.0.0.1]",
    "alice@[IPv6:::1]",
    "user@EXT.TEST",
]


def talk(port: int, lines: list[bytes], timeout: float = 10.0) -> list[bytes]:
    """Send raw command lines, one at a time; return every reply line."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        out = [f.readline()]
        for line in lines:
            s.sendall(line + b"\r\n")
            while True:
                reply = f.readline()
                out.append(reply)
                if reply[3:4] != b"-":
                    break
        return out


@pytest.mark.parametrize("address", RELAY_FORMS)
def test_open_relay_refused_in_every_address_form(mailsys, address):
    mailsys.smtp.trusted_networks = []  # 127.0.0.1 is an outside client here
    port = mailsys.listen("mx")
    replies = talk(port, [b"EHLO client.test", b"MAIL FROM:<spammer@ext.test>",
                          b"RCPT TO:<" + address.encode() + b">", b"DATA"])
    rcpt, data = replies[-2], replies[-1]
    assert rcpt[:1] == b"5", rcpt
    assert data[:3] in (b"554", b"503"), data
    assert not mailsys.queued()


@pytest.mark.parametrize("address", ["user@ext.test", "@example.org:user@ext.test"])
def test_trusted_network_may_relay(mailsys, address):
    mailsys.stop_runner()  # nothing leaves: the test looks at acceptance only
    port = mailsys.listen("mx")  # 127.0.0.1 is in the default trusted_networks
    replies = talk(port, [b"EHLO client.test", b"MAIL FROM:<a@example.org>",
                          b"RCPT TO:<" + address.encode() + b">"])
    assert replies[-1].startswith(b"250")


def test_vrfy_and_expn(mailsys):
    port = mailsys.listen("mx")
    replies = talk(port, [b"EHLO c", b"VRFY alice", b"EXPN staff", b"HELP", b"NOOP"])
    assert [r[:3] for r in replies[-4:]] == [b"252", b"502", b"214", b"250"]


def test_bare_postmaster_is_accepted(mailsys):
    mailsys.directory.add_domain("mx.test")
    mailsys.directory.add_alias("postmaster@mx.test", ["bob@example.org"])
    port = mailsys.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("c")
        c.mail("a@ext.test")
        assert c.rcpt("Postmaster")[0] == 250
        assert c.data(b"Subject: pm\r\n\r\nhi\r\n")[0] == 250
    mailsys.wait_for(lambda: mailsys.inbox("bob@example.org"), what="delivery to the postmaster alias")


def test_authenticated_client_may_relay_through_mx(mailsys, client_ssl_context):
    mailsys.smtp.trusted_networks = []
    mailsys.stop_runner()
    port = mailsys.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.starttls(context=client_ssl_context)
        c.ehlo("c")
        c.mail("alice@example.org")
        assert c.rcpt("someone@ext.test")[0] == 554
        c.rset()
        c.login("alice@example.org", "secret")
        c.mail("alice@example.org")
        assert c.rcpt("someone@ext.test")[0] == 250


def test_mail_log_lines_carry_the_queue_id(mailsys, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="pymail.maillog")
    mailsys.smtp.trusted_networks = []
    port = mailsys.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.test")
        c.mail("a@remote.test")
        assert c.rcpt("x@ext.test")[0] == 554
        c.rcpt("alice@example.org")
        code, msg = c.data(MSG)
        queue_id = msg.split()[-1].decode()
    mailsys.wait_for(lambda: not mailsys.queued(), what="delivery")
    lines = [r.getMessage() for r in caplog.records if r.name == "pymail.maillog"]
    assert any(line.startswith("connect from [127.0.0.1]:") and "role=mx" in line for line in lines)
    assert any(line.startswith(f"{queue_id}: reject: RCPT from [127.0.0.1]: 554 5.7.1") for line in lines)
    assert f"{queue_id}: client=[127.0.0.1], helo=client.test" in lines
    assert any(line.startswith(f"{queue_id}: from=<a@remote.test>, size=") for line in lines)
    assert any(line.startswith(f"{queue_id}: to=<alice@example.org>, relay=local") and "status=sent" in line
               for line in lines)
    assert f"{queue_id}: removed" in lines
