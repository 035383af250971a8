"""Regressions found with imaptest, pinned as unit and session tests."""

from pymail.imap import mime, serialize
from pymail.imap.fetchspec import Section
from pymail.imap.parser import Atom, parse_command

from tests.imap.conftest import deliver, message

NESTED = (b"From: a@example.com\r\nContent-Type: message/rfc822\r\n\r\n"
          b"From: sub@domain.org\r\nSubject: submsg\r\n\r\nHello world\r\n")


def test_bracket_in_plain_atom():
    cmd = parse_command(b"a SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}\r\n")
    assert cmd.args == [Atom("!#$&'+,-.0123456789:;<=>?@^_`|[}")]


def test_section_numbers_inside_message_rfc822():
    msg = mime.parse_message(NESTED)
    assert mime.section_bytes(msg, Section((1, 1))) == b"Hello world\r\n"
    assert mime.section_bytes(msg, Section((1,))).startswith(b"From: sub@domain.org")
    assert mime.section_bytes(msg, Section((1,), "HEADER")) == b"From: sub@domain.org\r\nSubject: submsg\r\n\r\n"
    assert mime.section_bytes(msg, Section((1,), "TEXT")) == b"Hello world\r\n"


def test_envelope_comment_is_name_and_groups():
    env = mime.envelope_from_header(b"From: user@domain (Real Name)\r\n"
                                    b"To: group: g1@d1.org, g2@d2.org;, group2: g3@d3.org;\r\n"
                                    b"Cc: group:;, group2: (foo) ;\r\n\r\n")
    assert serialize.value(env[2]) == b'(("Real Name" NIL "user" "domain"))'
    assert serialize.value(env[5]) == (b'((NIL NIL "group" NIL) (NIL NIL "g1" "d1.org") (NIL NIL "g2" "d2.org") '
                                       b'(NIL NIL NIL NIL) (NIL NIL "group2" NIL) (NIL NIL "g3" "d3.org") '
                                       b'(NIL NIL NIL NIL))')
    assert serialize.value(env[6]) == (b'((NIL NIL "group" NIL) (NIL NIL NIL NIL) (NIL NIL "group2" NIL) '
                                       b'(NIL NIL NIL NIL))')
    env = mime.envelope_from_header(b"From: <user-from (comment)@ (comment) domain.org>\r\n\r\n")
    assert serialize.value(env[2]) == b'((NIL NIL "user-from" "domain.org"))'


def test_envelope_takes_the_last_of_a_repeated_field(connect, store):
    # Dovecot answers the last Subject/From (test_parse_cache_matches_dovecot checks the store's
    # ENVELOPE, the one inside BODYSTRUCTURE, against it); the top-level one must agree
    raw = (b"Subject: first\r\nFrom: one@a.test\r\nSubject: second\r\nFrom: two@b.test\r\n\r\nb\r\n")
    deliver(store, raw)
    c = connect()
    c.select("INBOX")
    typ, data = c.fetch("1", "(ENVELOPE)")
    assert typ == "OK"
    assert b'"second" ((NIL NIL "two" "b.test"))' in data[0]
    c.logout()


def test_body_sections_follow_the_bodystructure_of_a_repeated_content_type(connect, store):
    # two Content-Type fields: the last one counts, for BODYSTRUCTURE (the store's parser) and
    # for the parts BODY[n] names alike
    raw = (b"Subject: two types\r\nContent-Type: text/plain\r\n"
           b"Content-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\nContent-Type: text/plain\r\n\r\n"
           b"first\r\n--X\r\nContent-Type: text/html\r\n\r\n<b>second</b>\r\n--X--\r\n")
    deliver(store, raw)
    c = connect()
    c.select("INBOX")
    typ, data = c.fetch("1", "(BODYSTRUCTURE BODY.PEEK[1] BODY.PEEK[2])")
    assert typ == "OK"
    text = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    assert b'"mixed" ("boundary" "X")' in text
    assert b"BODY[1] {5}first" in text and b"BODY[2] {13}<b>second</b>" in text   # imaplib's join
    c.logout()


def test_create_with_trailing_separator_and_lsub_parents(connect):
    c = connect()
    assert c.create("Top/")[0] == "OK"
    assert c.list('""', "Top")[1][0].endswith(b'"Top"')
    c.create("Top/Sub")
    c.unsubscribe("Top")
    c.subscribe("Top/Sub")
    data = c.lsub('""', "%")[1]
    assert b'(\\Noselect) "/" "Top"' in data


def test_list_subscribed_shows_deleted_and_childinfo(connect):
    c = connect()
    c.create("Gone")
    c.subscribe("Gone")
    c.delete("Gone")
    typ, _ = c._simple_command("LIST", "(SUBSCRIBED)", '""', '"*"')
    lines = c.untagged_responses.pop("LIST")
    assert any(b"\\NonExistent" in ln and ln.endswith(b'"Gone"') for ln in lines)
    c.create("P/C")
    c.subscribe("P/C")
    c.unsubscribe("P")
    typ, _ = c._simple_command("LIST", "(SUBSCRIBED RECURSIVEMATCH)", '""', '"%"')
    lines = c.untagged_responses.pop("LIST")
    assert any(ln.endswith(b'"P" (CHILDINFO ("SUBSCRIBED"))') for ln in lines)


def test_condstore_enabled_by_fetch_modseq(raw, store):
    deliver(store, message("m"))
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    r.send(b"f FETCH 1 (MODSEQ)\r\n")
    lines = r.until(b"f")
    assert any(ln.startswith(b"* OK [HIGHESTMODSEQ ") for ln in lines)
    r.send(b"t STORE 1 +FLAGS (\\Seen)\r\n")
    assert b"MODSEQ (" in r.until(b"t")[0]


def test_examine_and_status_show_unclaimed_recent(connect, store):
    deliver(store, message("r1"))
    deliver(store, message("r2"))
    c = connect()
    assert b"RECENT 2" in c.status("INBOX", "(RECENT)")[1][0]
    c.select("INBOX", readonly=True)
    assert c.untagged_responses["RECENT"] == [b"2"]
    c2 = connect()
    c2.select("INBOX")
    assert c2.untagged_responses["RECENT"] == [b"2"]
    assert b"RECENT 0" in connect().status("INBOX", "(RECENT)")[1][0]
