"""The filters seam from the SMTP side: a check refusing at DATA (virus) or at connect, and
verdict headers written into the queued message."""

from __future__ import annotations

import smtplib

from pymail.filters.api import Check, Verdict
from pymail.filters.pipeline import CheckSlot, Pipeline
from pymail.smtp.filtering import Filters


class ContentCheck(Check):
    name = "content"

    async def connect(self, session):
        if session.remote_ip == "127.0.0.1" and getattr(self, "block_connect", False):
            return Verdict.reject(554, "5.7.1", "Your address is listed")
        return Verdict()

    async def data(self, envelope, message_path):
        with open(message_path, "rb") as f:
            raw = f.read()
        if b"VIRUS-SIGNATURE" in raw:
            return Verdict.reject(554, "5.7.1", "Message refused: virus found", virus="Test.Sig")
        return Verdict.accept([("X-Spam-Score", "1.5")], remove_headers=["X-Spam-Score"])


def install(mailsys, check):
    mailsys.config.filters.checks = ["clamd"]  # any non-empty list: the extras entry wins
    mailsys.ctx.extras["smtp_filters"] = Filters(Pipeline([CheckSlot(check)]))


def test_virus_refused_during_data_and_headers_added(mailsys):
    install(mailsys, ContentCheck())
    port = mailsys.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("c")
        c.mail("a@ext.test")
        c.rcpt("alice@example.org")
        code, msg = c.data(b"Subject: v\r\n\r\nVIRUS-SIGNATURE\r\n")
        assert (code, msg) == (554, b"5.7.1 Message refused: virus found")
        c.mail("a@ext.test")
        c.rcpt("alice@example.org")
        code, msg = c.data(b"X-Spam-Score: -100\r\nSubject: clean\r\n\r\nhello\r\n")
        assert code == 250
    raw = mailsys.wait_for(lambda: mailsys.inbox("alice@example.org"), what="delivery")
    assert len(raw) == 1
    head = raw[0].split(b"\r\n\r\n")[0]
    assert b"X-Spam-Score: 1.5" in head and b"-100" not in head  # forged copy removed
    assert b"Subject: clean" in head


def test_connect_phase_refusal(mailsys):
    check = ContentCheck()
    check.block_connect = True
    install(mailsys, check)
    port = mailsys.listen("mx")
    try:
        smtplib.SMTP("127.0.0.1", port, timeout=10)
        raise AssertionError("connection was accepted")
    except smtplib.SMTPConnectError as exc:
        assert exc.smtp_code == 554


class FactsCheck(Check):
    """Learns a fact at connect and refuses one LMTP recipient at DATA."""

    name = "facts"

    async def connect(self, session):
        session.facts["seen_at_connect"] = session.remote_ip
        return Verdict()

    async def data(self, envelope, message_path):
        from pymail.filters.api import RecipientDisposition

        assert envelope.session.facts["seen_at_connect"] == "127.0.0.1"  # same session object
        assert envelope.session.helo == "mta.test"
        return Verdict.accept(recipients={"bob@example.org": RecipientDisposition("Junk", True, "spam")})


def test_lmtp_honours_per_recipient_refusal_and_facts_carry_over(mailsys):
    import socket

    install(mailsys, FactsCheck())
    port = mailsys.listen("lmtp", tls="none")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"LHLO mta.test\r\nMAIL FROM:<a@ext.test>\r\nRCPT TO:<alice@example.org>\r\n"
                  b"RCPT TO:<Bob@example.org>\r\nDATA\r\n")
        for _ in range(5):  # LHLO, MAIL, RCPT, RCPT, DATA
            while f.readline()[3:4] == b"-":
                pass
        s.sendall(b"Subject: x\r\n\r\nhi\r\n.\r\n")
        assert f.readline().startswith(b"250 2.1.5 <alice@example.org>")
        assert f.readline().startswith(b"550 5.7.1 <Bob@example.org>")
    assert mailsys.inbox("alice@example.org") and not mailsys.inbox("bob@example.org")
