"""Sans-IO tests of the SMTP core: parsing, order, PIPELINING, DATA unstuffing, BDAT, smuggling."""

from __future__ import annotations

import pytest

from pymail.smtp import core as ev
from pymail.smtp import wire
from pymail.smtp.commands import decode_xtext, encode_xtext, parse_path_arg, split_address
from pymail.smtp.errors import Reply, SmtpError

OK = Reply(250, "2.0.0", "OK")


class Driver:
    """A minimal session: accepts everything, collects message bytes."""

    def __init__(self, **kw):
        self.core = ev.ServerCore(hostname="mx.test", **kw)
        self.events = []
        self.message = bytearray()
        self.messages = []

    def feed(self, data: bytes) -> bytes:
        self.core.receive(data)
        while (e := self.core.next_event()) is not None:
            self.events.append(e)
            c = self.core
            if isinstance(e, ev.MessageChunk):
                self.message += e.data
            elif isinstance(e, ev.Helo):
                c.accept_helo(Reply(250, "", "mx.test", ("PIPELINING",)) if e.extended else Reply(250, "", "mx.test"))
            elif isinstance(e, ev.Mail):
                c.accept_mail(Reply(250, "2.1.0", "Sender OK"))
            elif isinstance(e, ev.Rcpt):
                if "bad" in e.path.address:
                    c.reply(Reply(550, "5.1.1", "User unknown"))
                else:
                    c.accept_rcpt(Reply(250, "2.1.5", "Recipient OK"))
            elif isinstance(e, ev.Data):
                c.start_data()
            elif isinstance(e, ev.Bdat):
                c.accept_bdat()
            elif isinstance(e, ev.MessageEnd):
                if e.bdat and not e.last:
                    c.accept_chunk(Reply(250, "2.0.0", "chunk"))
                else:
                    self.messages.append(bytes(self.message))
                    self.message.clear()
                    n = c.txn.rcpts
                    c.finish_message([Reply(250, "2.0.0", "queued")] * (n if c.lmtp else 1))
            elif isinstance(e, ev.Rset):
                c.accept_rset()
            elif isinstance(e, ev.StartTls):
                c.start_tls()
            elif isinstance(e, ev.Closed):
                break
        return self.core.data_to_send()


def codes(out: bytes) -> list[str]:
    return [line[:3].decode() for line in out.split(b"\r\n") if line and line[3:4] == b" "]


def test_pipelined_transaction_answers_in_order():
    d = Driver()
    d.feed(b"EHLO c\r\n")
    out = d.feed(b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<bad@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n"
                 b"Subject: hi\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
    assert codes(out) == ["250", "250", "550", "250", "354", "250", "250", "221"]
    assert d.messages == [b"Subject: hi\r\n\r\nbody\r\n"]
    assert d.core.closed


def test_order_errors_and_syntax():
    d = Driver()
    out = d.feed(b"MAIL FROM:<a@x>\r\n")
    assert out.startswith(b"503 ")  # before EHLO: no enhanced codes yet
    out = d.feed(b"EHLO c\r\nRCPT TO:<b@y>\r\nDATA\r\nMAIL FROM:a@x\r\nMAIL FROM:<a@x>\r\nMAIL FROM:<a@x>\r\n"
                 b"DATA\r\nFOO\r\nRSET x\r\n")
    assert codes(out) == ["250", "503", "503", "501", "250", "503", "554", "500", "501"]
    assert b"503 5.5.1 Nested MAIL" in out


def test_too_many_bad_commands_closes():
    d = Driver(max_bad_commands=3)
    out = d.feed(b"EHLO c\r\n" + b"XYZZY\r\n" * 10)
    assert codes(out) == ["250", "500", "500", "500", "500", "421"]  # the limit is 3 errors
    assert d.core.closed


def test_line_too_long_is_refused_and_skipped():
    d = Driver(max_line=100)
    out = d.feed(b"EHLO c\r\nNOOP " + b"x" * 300)
    out += d.feed(b"yyy\r\nNOOP\r\n")
    assert codes(out) == ["250", "500", "250"]
    assert b"5.5.6" in out


@pytest.mark.parametrize("body,expected", [
    (b"a\r\n..b\r\n.\r\n", b"a\r\n.b\r\n"),
    (b".\r\n", b""),
    (b"..\r\n.\r\n", b".\r\n"),
    (b"x\r\n.y\r\n.\r\n", b"x\r\ny\r\n"),
])
def test_dot_unstuffing(body, expected):
    d = Driver()
    d.feed(b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    d.feed(body)
    assert d.messages == [expected]


# SMTP smuggling (CVE-2023-51764 and friends): only CRLF.CRLF ends DATA.
SMUGGLING = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r\n.\r", b"\r.\r\n", b"\n.\r"]


@pytest.mark.parametrize("marker", SMUGGLING, ids=[repr(m) for m in SMUGGLING])
def test_smuggled_end_of_data_does_not_end_data(marker):
    d = Driver()
    d.feed(b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    payload = b"Subject: one\r\n\r\nfirst" + marker + b"MAIL FROM:<evil@x>\r\nRCPT TO:<victim@y>\r\nDATA\r\nforged\r\n"
    out = d.feed(payload)
    assert codes(out) == []  # nothing answered: still inside the first message
    assert not [e for e in d.events if isinstance(e, ev.Mail) and "evil" in e.path.address]
    out = d.feed(b".\r\n")
    assert codes(out) == ["250"]
    assert len(d.messages) == 1 and b"MAIL FROM:<evil@x>" in d.messages[0]


def test_data_split_across_every_byte_boundary():
    body = b"l1\r\n..dot\r\n.\r\n"
    for cut in range(1, len(body)):
        d = Driver()
        d.feed(b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
        d.feed(body[:cut])
        d.feed(body[cut:])
        assert d.messages == [b"l1\r\n.dot\r\n"], cut


def test_bdat_chunks_and_pipelining():
    d = Driver()
    out = d.feed(b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 5\r\nhel\r\nBDAT 3 LAST\r\n.\r\nNOOP\r\n")
    assert codes(out) == ["250", "250", "250", "250", "250", "250"]
    assert d.messages == [b"hel\r\n.\r\n"]  # BDAT is raw: no unstuffing, no end marker


def test_bdat_without_recipients_still_reads_the_chunk():
    d = Driver()
    out = d.feed(b"EHLO c\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n")
    assert codes(out) == ["250", "503", "250"]  # "QUIT\r\n" was chunk data, not a command


def test_data_after_bdat_refused():
    d = Driver()
    out = d.feed(b"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 2\r\nabDATA\r\n")
    assert codes(out)[-1] == "503"


def test_starttls_discards_pipelined_plaintext():
    d = Driver()
    out = d.feed(b"EHLO c\r\nSTARTTLS\r\nNOOP\r\nMAIL FROM:<a@x>\r\n")
    assert codes(out) == ["250", "220"]
    assert not [e for e in d.events if isinstance(e, ev.Mail)]
    assert d.core.tls and not d.core.greeted
    out = d.feed(b"MAIL FROM:<a@x>\r\n")
    assert codes(out) == ["503"]  # RFC 3207 §4.2: must EHLO again


def test_lmtp_uses_lhlo_and_replies_per_recipient():
    d = Driver(lmtp=True)
    out = d.feed(b"EHLO c\r\nLHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<bad@y>\r\n"
                 b"RCPT TO:<c@y>\r\nDATA\r\nhi\r\n.\r\n")
    assert codes(out) == ["500", "250", "250", "250", "550", "250", "354", "250", "250"]


def test_auth_line_mode():
    d = ev.ServerCore(hostname="h")
    d.receive(b"EHLO c\r\nAUTH PLAIN\r\nAGEAYg==\r\nNOOP\r\n")
    e = d.next_event()
    d.accept_helo(Reply(250, "", "h"))
    e = d.next_event()
    assert e == ev.Auth("PLAIN", None)
    d.auth_challenge("")
    e = d.next_event()
    assert e == ev.AuthLine("AGEAYg==")
    d.accept_auth("a", Reply(235, "2.7.0", "ok"))
    assert d.next_event() is None
    assert codes(d.data_to_send()) == ["250", "334", "235", "250"]


@pytest.mark.parametrize("arg,address,route,params", [
    ("FROM:<a@b.example>", "a@b.example", (), {}),
    ("FROM: <a@b.example> SIZE=10 BODY=8BITMIME", "a@b.example", (), {"SIZE": "10", "BODY": "8BITMIME"}),
    ("FROM:<>", "", (), {}),
    ("FROM:<@r1,@r2:a@b>", "a@b", ("r1", "r2"), {}),
    ('FROM:<"a b>c"@d> SMTPUTF8', '"a b>c"@d', (), {"SMTPUTF8": None}),
])
def test_parse_path(arg, address, route, params):
    p = parse_path_arg(arg, "FROM")
    assert (p.address, p.route, p.params) == (address, route, params)


@pytest.mark.parametrize("arg", ["FROM:a@b", "FROM:<a@b", "TO:<a@b>", "FROM:<a@b> X=", "FROM:<nodomain>",
                                 "FROM:<a@b> SIZE=1 SIZE=2"])
def test_parse_path_errors(arg):
    with pytest.raises(SmtpError) as exc:
        parse_path_arg(arg, "FROM")
    assert exc.value.reply.code == 501


def test_split_address_and_xtext():
    assert split_address('"user@ext"@local') == ('"user@ext"', "local")
    assert decode_xtext("rfc822+3Ba+2Bb@c") == "rfc822;a+b@c"
    assert decode_xtext(encode_xtext("a=b+c d")) == "a=b+c d"


def test_wire_reader_bare_lf_commands():
    r = wire.Reader(100)
    r.feed(b"NOOP\nRSET\r\n")
    assert r.next_item() == wire.Line(b"NOOP")
    assert r.next_item() == wire.Line(b"RSET")
    assert r.next_item() is None


from hypothesis import given, settings, strategies as st

PIECES = [b"EHLO x\r\n", b"HELO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<c@d>\r\n", b"RCPT TO:<bad@d>\r\n",
          b"DATA\r\n", b"BDAT 3\r\n", b"BDAT 0 LAST\r\n", b"BDAT x\r\n", b".\r\n", b"\r\n.\r\n", b"\n.\n",
          b"RSET\r\n", b"NOOP\r\n", b"STARTTLS\r\n", b"AUTH PLAIN\r\n", b"QUIT\r\n", b"\r", b"\n", b"."]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=40),
                          st.tuples(st.sampled_from(["MAIL FROM:", "RCPT TO:", "BDAT ", "EHLO ", "AUTH ", ""]),
                                    st.text(max_size=20)).map(lambda t: (t[0] + t[1] + "\r\n").encode())),
                max_size=40),
       st.integers(min_value=1, max_value=50), st.booleans())
def test_random_input_never_crashes_and_replies_are_well_formed(pieces, cut, lmtp):
    d = Driver(lmtp=lmtp, max_line=200)
    data = b"".join(pieces)
    out = b""
    for i in range(0, len(data), cut):
        if d.core.closed:
            break
        out += d.feed(data[i:i + cut])
    for line in out.split(b"\r\n")[:-1]:
        assert line[:3].isdigit() and line[3:4] in (b" ", b"-"), line


def reference_data(stream: bytes) -> bytes | None:
    """RFC 5321 §4.5.2 read literally: the message ends at the first CRLF.CRLF (the CRLF after
    DATA counts as the first CRLF); each line's leading dot is removed."""
    import re

    x = b"\r\n" + stream
    k = x.find(b"\r\n.\r\n")
    if k < 0:
        return None
    content = x[2:k + 2] if k > 0 else b""
    return re.sub(rb"(?:^|(?<=\r\n))\.", b"", content)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\r", b"\n", b".", b"..", b"a", b"\r\n.", b".\r\n", b"x\r\n"]),
                max_size=30),
       st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=10))
def test_data_reader_matches_the_rfc_reading(parts, cuts):
    stream = b"".join(parts) + b"\r\n.\r\n"
    r = wire.Reader()
    r.start_data()
    got, ended, pos, i = bytearray(), False, 0, 0
    while pos < len(stream) and not ended:
        step = cuts[i % len(cuts)]
        i += 1
        r.feed(stream[pos:pos + step])
        pos += step
        while (item := r.next_item()) is not None:
            if isinstance(item, wire.Chunk):
                got += item.data
            elif isinstance(item, wire.DataEnd):
                ended = True
                break
    assert ended
    assert bytes(got) == reference_data(stream)


@pytest.mark.parametrize("args,name", [
    ((False, False, False, False), "SMTP"), ((False, True, False, False), "ESMTP"),
    ((False, True, True, True), "ESMTPSA"), ((True, True, False, False), "LMTP"),
    ((False, True, True, False, True), "UTF8SMTPS"), ((False, True, False, True, True), "UTF8SMTPA"),
])
def test_received_protocol_names(args, name):
    from pymail.smtp.received import protocol_name

    assert protocol_name(*args) == name  # RFC 3848, RFC 6531 §3.7.3


def test_non_ascii_digits_are_not_numbers():
    d = Driver()
    out = d.feed("EHLO c\r\nBDAT ²\r\nMAIL FROM:<a@b> SIZE=²\r\nNOOP\r\n".encode())
    assert codes(out) == ["250", "501", "250", "250"]  # SIZE=² is checked by the session, not here
