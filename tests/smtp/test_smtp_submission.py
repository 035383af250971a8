"""Submission (587 STARTTLS, 465 implicit TLS): AUTH only over TLS, AUTH required, sender ownership."""

from __future__ import annotations

import base64
import smtplib
import socket

import pytest

MSG = b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: s\r\n\r\nbody\r\n"


def test_auth_not_offered_or_accepted_before_tls(mailsys, client_ssl_context):
    port = mailsys.listen("submission")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.test")
        assert c.has_extn("starttls") and not c.has_extn("auth")
        code, msg = c.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice@example.org\0secret").decode())
        assert code == 538
        assert c.mail("alice@example.org")[0] == 530
        c.starttls(context=client_ssl_context)
        c.ehlo("client.test")
        assert "PLAIN" in c.esmtp_features["auth"] and "LOGIN" in c.esmtp_features["auth"]
        assert c.mail("alice@example.org")[0] == 530  # still needs AUTH
        c.rset()
        c.login("alice@example.org", "secret")
        assert c.mail("alice@example.org")[0] == 250
        assert c.rcpt("outside@ext.test")[0] == 250  # authenticated: may relay
        assert c.rcpt("bob@example.org")[0] == 250
        c.rset()


def test_submitted_mail_is_delivered_with_tls_and_auth_in_received(mailsys, client_ssl_context):
    port = mailsys.listen("submission")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.starttls(context=client_ssl_context)
        c.login("alice@example.org", "secret")
        c.sendmail("alice@example.org", ["bob@example.org"], MSG)
    raw = mailsys.wait_for(lambda: mailsys.inbox("bob@example.org"), what="delivery")[0]
    received = raw.split(b"\r\n\r\n")[0]
    assert b"with ESMTPSA id" in received
    assert b"version=TLSv1." in received
    assert b"(Authenticated sender: alice@example.org)" in received
    assert b"[127.0.0.1]" in received


def test_hide_submitter_ip(mailsys, client_ssl_context):
    mailsys.smtp.hide_submitter_ip = True
    port = mailsys.listen("submission")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.starttls(context=client_ssl_context)
        c.login("alice@example.org", "secret")
        c.sendmail("alice@example.org", ["bob@example.org"], MSG)
    raw = mailsys.wait_for(lambda: mailsys.inbox("bob@example.org"), what="delivery")[0]
    assert b"127.0.0.1" not in raw.split(b"\r\n\r\n")[0]


@pytest.mark.parametrize("sender,ok", [
    ("alice@example.org", True),
    ("sales@example.org", True),  # an alias pointing to alice
    ("alice+lists@example.org", True),
    ("bob@example.org", False),
    ("alice@ext.test", False),
    ("", False),
])
def test_sender_must_belong_to_the_authenticated_user(mailsys, client_ssl_context, sender, ok):
    port = mailsys.listen("submission")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.starttls(context=client_ssl_context)
        c.login("alice@example.org", "secret")
        code, msg = c.mail(sender)
        if ok:
            assert code == 250
        else:
            assert (code, msg[:5]) == (553, b"5.7.1")


def test_smtps_implicit_tls_with_auth_login(mailsys, tls_context, client_ssl_context):
    port = mailsys.listen("submission", implicit_ctx=tls_context)
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=client_ssl_context) as c:
        c.ehlo("client.test")
        assert not c.has_extn("starttls")
        c.user, c.password = "alice@example.org", "secret"
        code, _ = c.auth("LOGIN", c.auth_login, initial_response_ok=False)
        assert code == 235
        c.sendmail("alice@example.org", ["bob@example.org"], MSG)
    mailsys.wait_for(lambda: mailsys.inbox("bob@example.org"), what="delivery")


def test_bad_password_and_auth_attempt_limit(mailsys, tls_context, client_ssl_context):
    mailsys.smtp.max_auth_attempts = 2
    port = mailsys.listen("submission", implicit_ctx=tls_context)
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=client_ssl_context) as c:
        c.ehlo("client.test")
        bad = base64.b64encode(b"\0alice@example.org\0wrong").decode()
        assert c.docmd("AUTH", "PLAIN " + bad)[0] == 535
        assert c.docmd("AUTH", "PLAIN *")[0] == 501
        assert c.docmd("AUTH", "PLAIN " + bad)[0] == 421


def test_auth_plain_with_challenge_and_cancel(mailsys, tls_context, client_ssl_context):
    port = mailsys.listen("submission", implicit_ctx=tls_context)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with client_ssl_context.wrap_socket(raw) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO c\r\n")
        while f.readline()[3:4] == b"-":
            pass
        s.sendall(b"AUTH PLAIN\r\n")
        assert f.readline() == b"334 \r\n"
        s.sendall(b"*\r\n")
        assert f.readline().startswith(b"501 5.0.0")
        s.sendall(b"AUTH LOGIN\r\n")
        assert f.readline() == b"334 VXNlcm5hbWU6\r\n"
        s.sendall(base64.b64encode(b"alice@example.org") + b"\r\n")
        assert f.readline() == b"334 UGFzc3dvcmQ6\r\n"
        s.sendall(base64.b64encode(b"secret") + b"\r\n")
        assert f.readline().startswith(b"235 2.7.0")
        s.sendall(b"AUTH PLAIN\r\n")
        assert f.readline().startswith(b"503 5.5.1")


def test_plaintext_auth_when_listener_allows_it(mailsys):
    port = mailsys.listen("submission", plaintext_auth=True)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.login("alice@example.org", "secret")
        c.sendmail("alice@example.org", ["bob@example.org"], MSG)
    mailsys.wait_for(lambda: mailsys.inbox("bob@example.org"), what="delivery")


def test_thunderbird_sequence(mailsys, client_ssl_context):
    """What Thunderbird sends (shared/notes/thunderbird.md): AUTH PLAIN without initial response,
    BODY=8BITMIME SIZE=n, and a close right after the 250 without QUIT."""
    port = mailsys.listen("submission")
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = raw.makefile("rb")
    assert f.readline().startswith(b"220")
    raw.sendall(b"EHLO [127.0.0.1]\r\n")
    while f.readline()[3:4] == b"-":
        pass
    raw.sendall(b"STARTTLS\r\n")
    assert f.readline().startswith(b"220")
    s = client_ssl_context.wrap_socket(raw)
    f = s.makefile("rb")
    s.sendall(b"EHLO [127.0.0.1]\r\n")
    lines = [f.readline()]
    while lines[-1][3:4] == b"-":
        lines.append(f.readline())
    assert lines[-1] == b"250 AUTH PLAIN LOGIN\r\n"
    s.sendall(b"AUTH PLAIN\r\n")
    assert f.readline() == b"334 \r\n"
    s.sendall(base64.b64encode(b"\0alice@example.org\0secret") + b"\r\n")
    assert f.readline().startswith(b"235")
    body = "From: Alice <alice@example.org>\r\nSubject: Grüße\r\nContent-Transfer-Encoding: 8bit\r\n\r\nÄÖÜ\r\n".encode()
    s.sendall(b"MAIL FROM:<alice@example.org> BODY=8BITMIME SIZE=%d\r\n" % len(body))
    assert f.readline().startswith(b"250 2.1.0")
    s.sendall(b"RCPT TO:<bob@example.org>\r\n")
    assert f.readline().startswith(b"250 2.1.5")
    s.sendall(b"DATA\r\n")
    assert f.readline().startswith(b"354")
    s.sendall(body + b".\r\n")
    assert f.readline().startswith(b"250 2.0.0 Ok: queued as")
    s.close()  # no QUIT
    raw_msg = mailsys.wait_for(lambda: mailsys.inbox("bob@example.org"), what="delivery")[0]
    assert "Subject: Grüße".encode() in raw_msg and "ÄÖÜ".encode() in raw_msg


def test_starttls_forgets_a_plaintext_login(mailsys, client_ssl_context):
    port = mailsys.listen("submission", plaintext_auth=True)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.login("alice@example.org", "secret")
        c.starttls(context=client_ssl_context)
        c.ehlo("client.test")
        assert c.has_extn("auth")  # offered again: the old login is gone
        assert c.mail("alice@example.org")[0] == 530
