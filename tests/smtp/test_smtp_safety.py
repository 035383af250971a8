"""Regression tests for the dangerous corners: STARTTLS injection, smuggling, size, limits, order."""

from __future__ import annotations

import smtplib
import socket
import time
from dataclasses import asdict

import pytest


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220")
    return s, f


def queued_message(mailsys, qid) -> bytes:
    """The message part of a queue file (without the envelope trailer)."""
    with mailsys.queue.dir.message(qid) as path:
        return path.read_bytes()


def read_reply(f) -> list[bytes]:
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise ConnectionError("closed")
        lines.append(line)
        if line[3:4] != b"-":
            return lines


def test_starttls_injection_is_discarded(mailsys, client_ssl_context):
    port = mailsys.listen("mx")
    s, f = connect(port)
    s.sendall(b"EHLO c\r\n")
    read_reply(f)
    s.sendall(b"STARTTLS\r\nNOOP\r\nMAIL FROM:<evil@ext.test>\r\n")  # one segment
    assert f.readline().startswith(b"220")
    tls = client_ssl_context.wrap_socket(s)
    tf = tls.makefile("rb")
    tls.sendall(b"EHLO c\r\n")
    first = read_reply(tf)
    assert first[0].startswith(b"250-mx.test"), first  # not the injected NOOP's "250 2.0.0 OK"
    tls.sendall(b"RCPT TO:<alice@example.org>\r\n")
    assert read_reply(tf)[0].startswith(b"503")  # the injected MAIL was never seen
    tls.close()


def data_session(port, body: bytes) -> list[bytes]:
    s, f = connect(port)
    s.sendall(b"EHLO c\r\nMAIL FROM:<a@ext.test>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
    for _ in range(4):
        read_reply(f)
    s.sendall(body)
    s.settimeout(0.5)
    replies = []
    try:
        while True:
            replies.append(read_reply(f)[-1])
    except (socket.timeout, ConnectionError):
        pass
    s.close()
    return replies


@pytest.mark.parametrize("marker", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n"])
def test_smtp_smuggling_bare_lf_or_cr_dot_does_not_end_data(mailsys, marker):
    mailsys.stop_runner()
    port = mailsys.listen("mx")
    smuggled = (b"Subject: one\r\n\r\nfirst" + marker + b"MAIL FROM:<admin@example.org>\r\n"
                b"RCPT TO:<bob@example.org>\r\nDATA\r\nSubject: forged\r\n\r\nforged\r\n.\r\n")
    replies = data_session(port, smuggled)
    assert len(replies) == 1 and replies[0].startswith(b"250 2.0.0 Ok: queued as"), replies
    ids = mailsys.queued()
    assert len(ids) == 1
    env = asdict(mailsys.queue.dir.load(ids[0]))
    assert [r["address"] for r in env["recipients"]] == ["alice@example.org"]
    data = queued_message(mailsys, ids[0])
    assert b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\nSubject: forged" in data


def test_oversize_message_refused_and_nothing_kept(mailsys):
    mailsys.smtp.max_message_size = 2000
    port = mailsys.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("c")
        assert c.esmtp_features["size"] == "2000"
        code, msg = c.mail("a@ext.test", ["SIZE=5000"])
        assert (code, msg[:5]) == (552, b"5.3.4")
        c.rset()
        c.mail("a@ext.test")
        c.rcpt("alice@example.org")
        code, msg = c.data(b"Subject: big\r\n\r\n" + b"x" * 70 + b"\r\n" * 100 + (b"y" * 998 + b"\r\n") * 5)
        assert (code, msg[:5]) == (552, b"5.3.4")
        # BDAT: the chunk is refused before it is stored
        c.mail("a@ext.test")
        c.rcpt("alice@example.org")
        c.send(b"BDAT 3000 LAST\r\n" + b"z" * 3000)
        assert c.getreply()[0] == 552
        assert c.noop()[0] == 250
    time.sleep(0.3)
    assert not mailsys.queued()
    assert not mailsys.queue.dir.files()


def test_pipelined_commands_answered_in_order(mailsys):
    port = mailsys.listen("mx")
    s, f = connect(port)
    s.sendall(b"EHLO c\r\nMAIL FROM:<a@ext.test>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<nobody@example.org>\r\n"
              b"RCPT TO:<bob@example.org>\r\nNOOP\r\nDATA\r\n")
    codes = [read_reply(f)[-1][:3] for _ in range(7)]
    assert codes == [b"250", b"250", b"250", b"550", b"250", b"250", b"354"]
    s.sendall(b"Subject: p\r\n\r\nhi\r\n.\r\nRSET\r\nMAIL FROM:<a@ext.test>\r\nRCPT TO:<bob@example.org>\r\n"
              b"BDAT 4\r\nab\r\nBDAT 0 LAST\r\nQUIT\r\n")
    codes = [read_reply(f)[-1][:3] for _ in range(7)]
    assert codes == [b"250", b"250", b"250", b"250", b"250", b"250", b"221"]
    s.close()
    mailsys.wait_for(lambda: len(mailsys.inbox("bob@example.org")) == 2, what="two messages for bob")


def test_recipient_limit(mailsys):
    mailsys.smtp.max_recipients = 2
    port = mailsys.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("c")
        c.mail("a@ext.test")
        assert c.rcpt("alice@example.org")[0] == 250
        assert c.rcpt("bob@example.org")[0] == 250
        code, msg = c.rcpt("sales@example.org")
        assert (code, msg[:5]) == (452, b"4.5.3")


def test_line_length_limit(mailsys):
    mailsys.smtp.max_line_length = 512
    port = mailsys.listen("mx")
    s, f = connect(port)
    s.sendall(b"EHLO c\r\nMAIL FROM:<" + b"a" * 2000 + b"@ext.test>\r\nNOOP\r\n")
    assert [read_reply(f)[-1][:9] for _ in range(3)] == [b"250 START", b"500 5.5.6", b"250 2.0.0"]
    s.close()


def test_connections_per_ip_limit(mailsys):
    mailsys.smtp.max_connections_per_ip = 2
    port = mailsys.listen("mx")
    a, fa = connect(port)
    b, fb = connect(port)
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert c.makefile("rb").readline().startswith(b"421 mx.test Too many connections")
    c.close()
    fa.close()
    a.close()
    time.sleep(0.3)
    d, fd = connect(port)  # a slot is free again
    for s in (b, d):
        s.close()


def test_idle_and_slow_clients_are_cut_off(mailsys):
    mailsys.smtp.idle_timeout = 0.5
    port = mailsys.listen("mx")
    s, f = connect(port)
    s.sendall(b"EHLO c\r\n")
    read_reply(f)
    for _ in range(4):  # a byte every 0.2 s is no command at all: still cut off
        s.sendall(b"N")
        time.sleep(0.2)
    assert f.readline().startswith(b"421 4.4.2")
    assert f.readline() == b""
    s.close()


def test_bad_command_limit(mailsys):
    mailsys.smtp.max_bad_commands = 3
    port = mailsys.listen("mx")
    s, f = connect(port)
    s.sendall(b"FOO\r\n" * 6)
    codes = [read_reply(f)[-1][:3] for _ in range(5)]
    assert codes == [b"500"] * 4 + [b"421"]
    assert f.readline() == b""
    s.close()


def test_dsn_and_esmtp_parameters_are_kept_in_the_envelope(mailsys):
    mailsys.stop_runner()
    port = mailsys.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("c")
        for ext in ("pipelining", "8bitmime", "enhancedstatuscodes", "smtputf8", "dsn", "chunking", "starttls"):
            assert c.has_extn(ext), ext
        assert c.mail("a@ext.test", ["RET=HDRS", "ENVID=abc+2Bdef", "BODY=8BITMIME", "SMTPUTF8"])[0] == 250
        assert c.rcpt("alice@example.org", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Alice+40example.org"])[0] == 250
        assert c.rcpt("bob@example.org", ["NOTIFY=NEVER"])[0] == 250
        assert c.rcpt("bob@example.org", ["NOTIFY=NEVER,SUCCESS"])[0] == 501
        assert c.data("Subject: ü\r\n\r\nÄ\r\n".encode())[0] == 250
    env = asdict(mailsys.queue.dir.load(mailsys.queued()[0]))
    assert (env["ret"], env["envid"], env["body"], env["smtputf8"]) == ("HDRS", "abc+def", "8BITMIME", True)
    alice, bob = env["recipients"]
    assert alice["notify"] == ["SUCCESS", "FAILURE"] and alice["orcpt"] == "rfc822;Alice@example.org"
    assert bob["notify"] == ["NEVER"]


def test_non_ascii_address_needs_smtputf8(mailsys):
    port = mailsys.listen("mx")
    s, f = connect(port)
    s.sendall(b"EHLO c\r\nMAIL FROM:<j\xc3\xb6rg@ext.test>\r\n")
    read_reply(f)
    assert read_reply(f)[-1].startswith(b"553 5.6.7")
    s.close()


def test_large_message_streams_through_bdat_and_data(mailsys):
    """A 12 MB message in DATA and in BDAT chunks arrives intact (flow control, no buffering)."""
    mailsys.stop_runner()
    port = mailsys.listen("mx")
    line = b"y" * 998 + b"\r\n"
    body = b"Subject: big\r\n\r\n" + line * 12000
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("c")
        c.mail("a@ext.test")
        c.rcpt("alice@example.org")
        assert c.data(body)[0] == 250
        c.mail("a@ext.test")
        c.rcpt("alice@example.org")
        half = len(body) // 2
        c.send(f"BDAT {half}\r\n".encode() + body[:half] + f"BDAT {len(body) - half} LAST\r\n".encode() + body[half:])
        assert c.getreply()[0] == 250
        assert c.getreply()[0] == 250
    ids = mailsys.queued()
    assert len(ids) == 2
    for qid in ids:
        data = queued_message(mailsys, qid)
        assert data.endswith(body)


def test_mail_loop_refused_by_hop_count(mailsys):
    mailsys.smtp.max_hops = 5
    port = mailsys.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("c")
        c.mail("a@ext.test")
        c.rcpt("alice@example.org")
        hops = b"".join(b"Received: from hop%d by x; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % i for i in range(6))
        code, msg = c.data(hops + b"Subject: loop\r\n\r\nReceived: in the body does not count\r\n")
        assert (code, msg[:5]) == (554, b"5.4.6")
        c.mail("a@ext.test")
        c.rcpt("alice@example.org")
        body_lines = b"Received: x\r\n" * 5 + b"Subject: ok\r\n\r\n" + b"Received: y\r\n" * 10
        assert c.data(body_lines)[0] == 250


def test_bad_parameters_count_towards_the_error_limit(mailsys):
    mailsys.smtp.max_bad_commands = 2
    port = mailsys.listen("mx")
    s, f = connect(port)
    s.sendall(b"EHLO c\r\n" + b"MAIL FROM:<a@ext.test> BODY=WRONG\r\n" * 4)
    codes = [read_reply(f)[-1][:3] for _ in range(5)]
    assert codes == [b"250", b"501", b"501", b"501", b"421"]
    s.close()


def test_size_with_non_ascii_digits(mailsys):
    port = mailsys.listen("mx")
    s, f = connect(port)
    s.sendall("EHLO c\r\nMAIL FROM:<a@ext.test> SIZE=²\r\nBDAT ³\r\nNOOP\r\n".encode())
    assert [read_reply(f)[-1][:9] for _ in range(4)] == [b"250 START", b"501 5.5.4", b"501 5.5.4", b"250 2.0.0"]
    s.close()
