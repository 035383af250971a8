"""ENVELOPE / BODYSTRUCTURE / header-field shapes (RFC 3501 §7.4.2) and the parse cache."""

from __future__ import annotations

from pymail.store import parse

RFC5322_HEADER = (
    b'From: "Joe Q. Public" <john.q.public@example.com>\r\n'
    b"To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\r\n"
    b'Cc: <boss@nil.test>, "Giant; \\"Big\\" Box" <sysservices@example.net>\r\n'
    b"Bcc: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;,"
    b" Undisclosed recipients:;\r\n"
    b"Subject: Saying\r\n Hello\r\n"
    b"Date: Fri, 21 Nov 1997 09:55:06 -0600\r\n"
    b"Message-ID: <1234@local.machine.example>\r\n\r\n")

MULTIPART = (
    b'Content-Type: multipart/mixed; boundary="XX"\r\nSubject: m\r\n\r\n'
    b"preamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\nworld\r\n"
    b"--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\n\r\nbody\r\n"
    b'--XX\r\nContent-Type: application/pdf; name="a b.pdf"\r\n'
    b'Content-Disposition: attachment; filename="a b.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--XX--\r\nepilogue\r\n")


def test_envelope_rfc5322_examples():
    env = parse.envelope(RFC5322_HEADER)
    date, subject, frm, sender, reply_to, to, cc, bcc, in_reply_to, message_id = env
    assert date == b"Fri, 21 Nov 1997 09:55:06 -0600"
    assert subject == b"Saying Hello"
    assert frm == [[b"Joe Q. Public", None, b"john.q.public", b"example.com"]]
    assert sender == frm and reply_to == frm        # RFC 3501: default to From
    assert to == [[b"Mary Smith", None, b"mary", b"x.test"],
                  [None, None, b"jdoe", b"example.org"],
                  [b"Who?", None, b"one", b"y.test"]]
    assert cc[1] == [b'Giant; "Big" Box', None, b"sysservices", b"example.net"]
    assert bcc == [[None, None, b"A Group", None],
                   [b"Ed Jones", None, b"c", b"a.test"],
                   [None, None, b"joe", b"where.test"],
                   [b"John", None, b"jdoe", b"one.test"],
                   [None, None, None, None],
                   [None, None, b"Undisclosed recipients", None],
                   [None, None, None, None]]
    assert in_reply_to is None
    assert message_id == b"<1234@local.machine.example>"


def test_envelope_missing_headers_are_nil():
    env = parse.envelope(b"X-Other: 1\n\n")
    assert env == [None] * 10


def test_envelope_keeps_encoded_words():
    env = parse.envelope(b"Subject: =?utf-8?q?caf=C3=A9?=\nFrom: =?utf-8?q?J=C3=B6rg?= <j@x.de>\n\n")
    assert env[1] == b"=?utf-8?q?caf=C3=A9?="
    assert env[2] == [[b"=?utf-8?q?J=C3=B6rg?=", None, b"j", b"x.de"]]


def test_bodystructure_single_part_defaults():
    raw = b"Subject: x\n\nline1\nline2\n"
    bs = parse.bodystructure(raw)
    assert bs == [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", 14, 2,
                  None, None, None, None]
    assert parse.bodystructure_strip(bs) == bs[:8]


def test_bodystructure_multipart():
    bs = parse.bodystructure(MULTIPART)
    text, msg, pdf = bs[0], bs[1], bs[2]
    assert bs[3] == b"mixed" and bs[4] == [b"boundary", b"XX"]
    assert text[:8] == [b"text", b"plain", [b"charset", b"utf-8"], None, None, b"7bit", 12, 1]
    assert msg[:7] == [b"message", b"rfc822", None, None, None, b"7bit", 19]
    assert msg[7][1] == b"in"                       # the inner ENVELOPE
    assert msg[8][:2] == [b"text", b"plain"]        # the inner body
    assert msg[9] == 2                              # lines of the encapsulated message
    assert pdf[:7] == [b"application", b"pdf", [b"name", b"a b.pdf"], None, None, b"base64", 4]
    assert pdf[8] == [b"attachment", [b"filename", b"a b.pdf"]]
    body = parse.bodystructure_strip(bs)
    assert body[-1] == b"mixed" and len(body) == 4
    assert body[2] == [b"application", b"pdf", [b"name", b"a b.pdf"], None, None, b"base64", 4]


def test_multipart_digest_default_type_and_empty_multipart():
    digest = (b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: a\n\nx\n--d--\n")
    bs = parse.bodystructure(digest)
    assert bs[0][:2] == [b"message", b"rfc822"]
    empty = parse.bodystructure(b"Content-Type: multipart/mixed; boundary=z\n\nno parts\n")
    assert empty[0][:2] == [b"text", b"plain"] and empty[1] == b"mixed"


def test_deeply_nested_message_does_not_recurse_forever():
    raw = b"Subject: x\n\nbody\n"
    for _ in range(100):
        raw = b"Content-Type: message/rfc822\n\n" + raw
    bs = parse.bodystructure(raw)
    assert bs[0] == b"message"


def test_select_fields_and_not():
    out = parse.select_fields(RFC5322_HEADER, ["subject", "FROM"])
    assert out == (b'From: "Joe Q. Public" <john.q.public@example.com>\r\n'
                   b"Subject: Saying\r\n Hello\r\n\r\n")
    rest = parse.select_fields(RFC5322_HEADER, ["subject", "from", "to", "cc", "bcc", "date"],
                               negate=True)
    assert rest == b"Message-ID: <1234@local.machine.example>\r\n\r\n"


def test_parse_cache_in_mailbox(account):
    account.deliver(MULTIPART)
    box = account.mailbox("INBOX")
    assert box.index.db.execute("SELECT COUNT(*) FROM parsed").fetchone()[0] == 0
    assert box.bodystructure(1) == parse.bodystructure(MULTIPART)
    assert box.bodystructure(1, extended=False) == parse.bodystructure_strip(
        parse.bodystructure(MULTIPART))
    assert box.envelope(1)[1] == b"m"
    assert box.header_fields(1, ["Subject"]) == b"Subject: m\r\n\r\n"
    assert box.index.db.execute("SELECT COUNT(*) FROM parsed").fetchone()[0] == 1
    # once the index exists, delivery fills the cache itself
    account.deliver(RFC5322_HEADER + b"body\r\n")
    box.sync()
    assert box.index.db.execute("SELECT COUNT(*) FROM parsed").fetchone()[0] == 2
    many = box.header_fields_many([1, 2], ["subject"])
    assert many == {1: b"Subject: m\r\n\r\n", 2: b"Subject: Saying\r\n Hello\r\n\r\n"}


def test_cache_all_reads_each_message_once(account):
    for i in range(5):
        account.deliver(f"Subject: {i}\n\nbody\n".encode())
    box = account.mailbox("INBOX")
    assert box.cache_all() == 5
    assert box.cache_all() == 0
    # expunge drops cached rows with the record
    box.store_flags([1], ["\\Deleted"], "add")
    box.expunge()
    assert box.index.db.execute("SELECT COUNT(*) FROM parsed").fetchone()[0] == 4


def test_header_fields_many_scan_and_lookup_paths_agree(account, monkeypatch):
    from pymail.store import cache as cache_mod
    for i in range(6):
        account.deliver(f"Subject: s{i}\nFrom: a@b.c\nX-N: {i}\n\nbody\n".encode())
    box = account.mailbox("INBOX")
    small = box.header_fields_many([1, 3, 5, 99], ["subject", "x-n"])
    monkeypatch.setattr(cache_mod, "SCAN_THRESHOLD", 1)
    scanned = box.header_fields_many([1, 3, 5, 99], ["subject", "x-n"])
    assert small == scanned == {u: f"Subject: s{u - 1}\r\nX-N: {u - 1}\r\n\r\n".encode()
                                for u in (1, 3, 5)}
    assert box.header_fields_many([2], ["from"], negate=True) == {
        2: b"Subject: s1\r\nX-N: 1\r\n\r\n"}


# -- the shortcut for one simple address equals the tokenizer -------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

_PIECES = [b"a", b"Bo", b"x9", b"\xc3\xa9", b"-", b" ", b"  ", b"\t", b".", b"@", b"<", b">",
           b'"', b"(", b")", b",", b", ", b":", b";", b"\\", b"[", b"]", b"\r\n ", b'""']
_word = st.text("abcXYZ09-_+\u00e9", min_size=1, max_size=5).map(lambda t: t.encode())


@st.composite
def _simple_looking(draw):
    """Mostly the shapes the shortcut takes, now and then one piece out of place."""
    name = b" ".join(draw(st.lists(_word, max_size=3)))
    local = b".".join(draw(st.lists(_word, min_size=1, max_size=3)))
    domain = b".".join(draw(st.lists(_word, min_size=1, max_size=3)))
    shapes = [b"%s <%s@%s>", b"%s<%s@%s>", b'"%s" <%s@%s>', b"<%s@%s>", b"%s@%s"]
    value = b", ".join(
        shape % ((name, local, domain) if shape.count(b"%s") == 3 else (local, domain))
        for shape in draw(st.lists(st.sampled_from(shapes), min_size=1, max_size=3)))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(value)))
        value = value[:at] + draw(st.sampled_from(_PIECES)) + value[at:]
    return value


@settings(max_examples=400, deadline=None)
@given(st.one_of(_simple_looking(), st.lists(st.sampled_from(_PIECES), max_size=14).map(b"".join)))
def test_simple_address_shortcut_equals_the_tokenizer(value):
    assert parse.parse_addresses(value) == parse.parse_addresses_slowly(value)


def test_simple_address_shortcut_takes_the_usual_forms():
    for value in (b"Mary Smith <mary@x.test>", b"<boss@nil.test>", b"jdoe@example.org",
                  b" J\xc3\xb6rg M <j.m@mail.example.de>\r\n", b"a@b, C D <c@d>",
                  b'"Joe Q. Public" <john.q.public@example.com>', b'"Last, First" <l@f.test>'):
        assert parse._simple_addresses(value) is not None, value
    for value in (b"a@b (Name)", b"A Group:c@a.test;", b"a@b,, c@d", b"Two  Spaces <a@b>",
                  b'"a" <a@b>, c@d', b'"Esc\\"aped" <a@b>', b"a@b,"):
        assert parse._simple_addresses(value) is None, value
