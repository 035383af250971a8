"""Sans-IO parser and serializer tests: bytes in, values out, no sockets."""

import datetime

import pytest
from hypothesis import given, settings, strategies as st

from pymail.imap import serialize
from pymail.imap.fetchspec import FetchItem, Section, parse_fetch_items
from pymail.imap.parser import (Atom, Command, CommandFramer, Continue, Fatal, Frame, ParseError,
                                Refused, parse_command)
from pymail.imap.searchspec import parse_search
from pymail.imap.sequence import compress, parse_sequence_set


def frames(framer, data):
    return framer.feed(data)


def test_framer_splits_pipelined_lines():
    f = CommandFramer()
    ev = f.feed(b"a1 NOOP\r\na2 CAPABILITY\r\na3 LOG")
    assert ev == [Frame(b"a1 NOOP\r\n"), Frame(b"a2 CAPABILITY\r\n")]
    assert f.feed(b"OUT\r\n") == [Frame(b"a3 LOGOUT\r\n")]


def test_framer_synchronising_literal_asks_for_continuation():
    f = CommandFramer()
    assert f.feed(b'a APPEND INBOX {5}\r\n') == [Continue()]
    assert f.feed(b"hel") == []
    assert f.feed(b"lo\r\n") == [Frame(b"a APPEND INBOX {5}\r\nhello\r\n")]


def test_framer_literal_plus_needs_no_continuation():
    f = CommandFramer()
    ev = f.feed(b"a LOGIN {3+}\r\nbob {4+}\r\npass\r\n")
    assert ev == [Frame(b"a LOGIN {3+}\r\nbob {4+}\r\npass\r\n")]


def test_framer_refuses_huge_literal_before_buffering():
    f = CommandFramer(max_literal=100)
    ev = f.feed(b"x APPEND INBOX {4000000000}\r\ny NOOP\r\n")
    assert ev == [Refused("x", 4000000000), Frame(b"y NOOP\r\n")]


def test_framer_huge_non_synchronising_literal_is_fatal():
    f = CommandFramer(max_literal=100)
    assert f.feed(b"x APPEND INBOX {101+}\r\n") == [Fatal("[TOOBIG] Literal too big")]
    assert f.feed(b"y NOOP\r\n") == []


def test_framer_line_too_long():
    f = CommandFramer(max_line=50)
    assert isinstance(f.feed(b"a" * 60)[0], Fatal)


def test_framer_literal_with_crlf_inside():
    f = CommandFramer()
    ev = f.feed(b"a APPEND INBOX {7+}\r\n{3}\r\nab\r\n")
    assert ev == [Frame(b"a APPEND INBOX {7+}\r\n{3}\r\nab\r\n")]
    assert parse_command(ev[0].data).args == [Atom("INBOX"), b"{3}\r\nab"]


def test_parse_simple_and_uid():
    c = parse_command(b"A001 uid fetch 1:* (FLAGS UID)\r\n")
    assert c == Command("A001", "FETCH", [Atom("1:*"), [Atom("FLAGS"), Atom("UID")]], uid=True)


def test_parse_quoted_escapes_and_literal():
    c = parse_command(b'a LOGIN "b\\"o\\\\b" {3}\r\nx y\r\n')
    assert c.args == [b'b"o\\b', b"x y"]


def test_parse_section_atom_with_spaces():
    c = parse_command(b"a FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.10> UID)\r\n")
    items = parse_fetch_items(c.args[1])
    assert items[0] == FetchItem("BODY", Section((), "HEADER.FIELDS", ("FROM", "TO")), True, (0, 10))
    assert items[0].response_name() == "BODY[HEADER.FIELDS (FROM TO)]<0>"
    assert items[1] == FetchItem("UID")


def test_parse_fetch_macro_and_parts():
    assert [i.name for i in parse_fetch_items(Atom("FAST"))] == ["FLAGS", "INTERNALDATE", "RFC822.SIZE"]
    [item] = parse_fetch_items(Atom("BODY[1.2.MIME]"))
    assert item.section == Section((1, 2), "MIME") and item.sets_seen
    with pytest.raises(ParseError):
        parse_fetch_items(Atom("BODY[MIME]"))
    with pytest.raises(ParseError):
        parse_fetch_items(Atom("BODY[0]"))
    with pytest.raises(ParseError):
        parse_fetch_items(Atom("NONSENSE"))


@pytest.mark.parametrize("bad", [
    b"\r\n", b"a\r\n", b'a LOGIN "unterminated\r\n', b"a FETCH 1 (FLAGS\r\n", b"a X )\r\n",
    b"a LOGIN {10}\r\nshort\r\n", b"a FETCH 1 BODY[\r\n",
])
def test_parse_errors(bad):
    with pytest.raises(ParseError):
        parse_command(bad)


def test_parse_error_carries_tag():
    with pytest.raises(ParseError) as e:
        parse_command(b"tag7 LOGIN (((\r\n")
    assert e.value.tag == "tag7"


def test_nesting_limit():
    deep = b"a X " + b"(" * 40 + b")" * 40 + b"\r\n"
    with pytest.raises(ParseError, match="LIMIT"):
        parse_command(deep)


def test_sequence_sets():
    s = parse_sequence_set(Atom("1,3:5,7:*"))
    assert s.resolve(9) == [(1, 1), (3, 5), (7, 9)]
    assert s.contains(4, 9) and not s.contains(6, 9)
    assert parse_sequence_set(Atom("*:3")).resolve(2) == [(2, 3)]
    assert parse_sequence_set(Atom("$")).saved
    for bad in ["0", "1:", "a", "1,,2", "4294967296"]:
        with pytest.raises(ParseError):
            parse_sequence_set(Atom(bad))
    assert compress([5, 1, 2, 3, 9, 10]) == "1:3,5,9:10"


def test_search_keys():
    c = parse_command(b'a SEARCH CHARSET UTF-8 OR FROM "bob" NOT SEEN (LARGER 10 SINCE 1-Feb-2024) UID 1:5 {3}\r\nabc\r\n')
    with pytest.raises(ParseError):
        parse_search(c.args)  # the literal is a stray argument
    c = parse_command(b'a SEARCH CHARSET UTF-8 OR FROM "bob" NOT SEEN (LARGER 10 SINCE 1-Feb-2024) UID 1:5 TEXT {3}\r\nabc\r\n')
    charset, ret, tree = parse_search(c.args)
    assert charset == "UTF-8" and ret is None
    assert tree[0] == "and"
    assert tree[1][0] == ("or", ("header", "FROM", b"bob"), ("not", ("flag", "\\Seen", True)))
    assert tree[1][1] == ("and", [("larger", 10), ("date", "since", "internal", datetime.date(2024, 2, 1))])
    assert tree[1][2][0] == "uid" and tree[1][3] == ("text", b"abc")
    for bad in [[Atom("BOGUS")], [Atom("BEFORE"), Atom("32-Jan-2020")], [Atom("OR"), Atom("SEEN")], []]:
        with pytest.raises(ParseError):
            parse_search(bad)


def test_serialize_values():
    assert serialize.value(None) == b"NIL"
    assert serialize.value([Atom("\\Seen"), 5, b'a"b']) == b'(\\Seen 5 "a\\"b")'
    assert serialize.value(b"line\r\nbreak") == b"{11}\r\nline\r\nbreak"
    assert serialize.value("caf\u00e9") == b"{5}\r\ncaf\xc3\xa9"
    assert serialize.untagged(3, "EXISTS") == b"* 3 EXISTS\r\n"


# --- property tests: serialize → frame → parse gives the same tree --------------------------

atoms = st.from_regex(r"[A-Za-z0-9\\$:.,*!&'+/=?^_|~-]{1,12}", fullmatch=True).map(Atom)
strings = st.binary(max_size=40).filter(lambda b: True)
values = st.recursive(atoms | strings, lambda inner: st.lists(inner, max_size=4), max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.lists(values, max_size=6))
def test_round_trip(args):
    wire = b"t1 X" + b"".join(b" " + serialize.value(a) for a in args) + b"\r\n"
    framer = CommandFramer()
    events = []
    # feed in awkward chunks to exercise the framer's buffering
    for i in range(0, len(wire), 7):
        events += [e for e in framer.feed(wire[i:i + 7]) if not isinstance(e, Continue)]
    assert len(events) == 1
    cmd = parse_command(events[0].data)
    assert cmd.tag == "t1" and cmd.name == "X"
    assert cmd.args == args


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_parser_never_crashes(data):
    framer = CommandFramer(max_line=100, max_literal=50)
    for ev in framer.feed(data):
        if isinstance(ev, Frame):
            try:
                parse_command(ev.data)
            except ParseError:
                pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 1000), st.integers(1, 1000)), min_size=1, max_size=5))
def test_sequence_set_round_trip(ranges):
    text = ",".join(f"{a}:{b}" for a, b in ranges)
    s = parse_sequence_set(Atom(text))
    assert parse_sequence_set(Atom(str(s))) == s
