"""End to end through pymail's SMTP server, queue and store, with real clamd and spamd:
what a sender and a user see (issue 6's "tests with the real services")."""

from __future__ import annotations

import base64
import smtplib

import pytest

from pymail.filters import usersettings
from pymail.filters.delivery import FilteringDelivery
from pymail.filters.sieve.storage import ScriptStore
from pymail.smtp.testing import MailSystem
from pymail.testing import services


def build(tmp_path, tls_context, clamd_address, spamd_address, **filters):
    system = MailSystem(tmp_path, tls=tls_context)
    settings = system.config.filters
    settings.checks = ["clamd", "spamd"]
    settings.clamd, settings.spamd = clamd_address, spamd_address
    settings.spam_reject_score = 0.0
    settings.connect_timeout = 2.0
    for key, value in filters.items():
        setattr(settings, key, value)
    system.queue.local = FilteringDelivery.from_context(system.ctx)
    for user in ("alice", "bob", "carol", "dave"):
        system.add_user(f"{user}@example.org")
    return system


@pytest.fixture
def mail(reactor, tmp_path, tls_context, clamd, spamd):
    system = build(tmp_path, tls_context, clamd.address, spamd.address)
    yield system
    system.close()


def send(port, rcpts, body: bytes, sender="news@ext.example", headers=b""):
    message = (b"From: <" + sender.encode() + b">\r\nTo: " + rcpts[0].encode() + b"\r\nSubject: test\r\n"
               b"Date: Mon, 30 Nov 2026 01:00:00 +0000\r\nMessage-ID: <e2e@ext.example>\r\n" + headers
               + b"\r\n" + body)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.ext.example")
        c.mail(sender)
        for r in rcpts:
            c.rcpt(r)
        return c.data(message)


def head(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_clean_mail_delivered_with_filter_headers(mail):
    port = mail.listen("mx")
    code, _ = send(port, ["alice@example.org"], b"Hello Alice, lunch tomorrow?\r\n",
                   headers=b"X-Spam-Score: -99\r\nX-Spam-Flag: NO\r\n")
    assert code == 250
    raw = mail.wait_for(lambda: mail.inbox("alice@example.org"), what="delivery")[0]
    h = head(raw)
    assert b"X-Virus-Scanned: clean (clamd)" in h and b"X-Spam-Flag: NO" in h
    assert b"-99" not in h  # the forged score was removed


def test_eicar_attachment_refused_during_data_nothing_queued(mail):
    port = mail.listen("mx")
    attachment = base64.encodebytes(services.eicar()).replace(b"\n", b"\r\n")
    body = (b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a.com\r\n\r\n"
            + attachment + b"--b--\r\n")
    code, text = send(port, ["alice@example.org"], body,
                      headers=b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n')
    assert (code, text) == (554, b"5.7.1 Message refused: virus found: Test.EICAR.UNOFFICIAL")
    assert mail.queued() == [] and mail.inbox("alice@example.org") == []


def test_gtube_junk_for_one_user_tagged_inbox_for_another(mail):
    usersettings.set_action(mail.directory, "bob@example.org", "tag")
    port = mail.listen("mx")
    code, _ = send(port, ["alice@example.org", "bob@example.org"], services.gtube() + b"\r\n")
    assert code == 250
    junk = mail.wait_for(lambda: mail.inbox("alice@example.org", "Junk"), what="alice's Junk")
    assert b"X-Spam-Flag: YES" in head(junk[0]) and mail.inbox("alice@example.org") == []
    tagged = mail.wait_for(lambda: mail.inbox("bob@example.org"), what="bob's INBOX")
    assert b"X-Spam-Flag: YES" in head(tagged[0])


def test_reject_above_score_and_allow_list(mail):
    usersettings.set_action(mail.directory, "carol@example.org", "reject", reject_score=20)
    port = mail.listen("mx")
    code, text = send(port, ["carol@example.org"], services.gtube() + b"\r\n")
    assert code == 550 and text.startswith(b"5.7.1 Message refused as spam")
    usersettings.add_entry(mail.directory, "carol@example.org", "allow", "ext.example")
    assert send(port, ["carol@example.org"], services.gtube() + b"\r\n")[0] == 250
    mail.wait_for(lambda: mail.inbox("carol@example.org"), what="allowed delivery")


def test_sieve_fileinto_and_vacation_over_real_delivery(mail):
    scripts = ScriptStore.for_maildir(mail.store.account("bob@example.org").root)
    scripts.put("main", 'require ["fileinto", "vacation", "mailbox"];\r\n'
                        'if exists "List-Id" { fileinto :create "Lists"; stop; }\r\n'
                        'vacation :days 1 :subject "Away" "Bob is away.";\r\n')
    scripts.set_active("main")
    port = mail.listen("mx")
    assert send(port, ["bob@example.org"], b"list post\r\n", headers=b"List-Id: <l.ext.example>\r\n")[0] == 250
    mail.wait_for(lambda: mail.inbox("bob@example.org", "Lists"), what="fileinto Lists")
    # dave writes to bob: bob's copy in INBOX, and dave gets one auto-reply (from <>).
    assert send(port, ["bob@example.org"], b"are you there?\r\n", sender="dave@example.org")[0] == 250
    reply = mail.wait_for(lambda: mail.inbox("dave@example.org"), what="vacation reply")
    assert b"Subject: Away" in head(reply[0]) and b"Return-Path: <>" in head(reply[0])
    assert send(port, ["bob@example.org"], b"hello again\r\n", sender="dave@example.org")[0] == 250
    mail.wait_for(lambda: len(mail.inbox("bob@example.org")) == 2, what="second delivery")
    assert len(mail.inbox("dave@example.org")) == 1  # once per :days per sender


def test_spamd_down_tempfails_by_default_or_accepts_and_tags(reactor, tmp_path, tls_context, clamd):
    with services.spamd_service() as private:
        dead = private.address
    system = build(tmp_path / "a", tls_context, clamd.address, dead)
    try:
        port = system.listen("mx")
        code, text = send(port, ["alice@example.org"], b"hello\r\n")
        assert code == 451 and text.startswith(b"4.7.1 spamd is unavailable")
    finally:
        system.close()
    system = build(tmp_path / "b", tls_context, clamd.address, dead, fail_policy={"spamd": "accept"})
    try:
        port = system.listen("mx")
        assert send(port, ["alice@example.org"], b"hello\r\n")[0] == 250
        raw = system.wait_for(lambda: system.inbox("alice@example.org"), what="delivery")[0]
        assert b"X-Pymail-Unchecked: spamd (cannot connect to" in head(raw)
    finally:
        system.close()
