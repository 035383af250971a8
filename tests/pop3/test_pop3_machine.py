"""The sans-IO POP3 state machine, driven with bytes; no sockets, no store."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings, strategies as st

from pymail.pop3.errors import Pop3Error
from pymail.pop3.protocol import (
    Close, Login, Maildrop, MessageInfo, Pop3Machine, Retrieve, Send, StartTLS, State, Update,
)


def machine(secure=False, tls=True, plaintext=False, **kw) -> Pop3Machine:
    return Pop3Machine(secure=secure, tls_available=tls, allow_plaintext_auth=plaintext, **kw)


def sent(actions) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Send))


MAILDROP = Maildrop("u@example.org", [
    MessageInfo(uid=10, size=100, uidl="0000000a5f000000"),
    MessageInfo(uid=11, size=200, uidl="custom-uidl"),
    MessageInfo(uid=15, size=50, uidl="0000000f5f000000"),
])


def logged_in(**kw) -> Pop3Machine:
    m = machine(secure=True, **kw)
    actions = m.data_received(b"USER u@example.org\r\nPASS pw\r\n")
    assert actions[-1] == Login("u@example.org", "pw", "USER")
    assert sent(m.effect_done(MAILDROP)).startswith(b"+OK Logged in, 3 messages (350 octets)")
    assert m.state is State.TRANSACTION
    return m


def test_greeting():
    assert sent(machine().greeting()).startswith(b"+OK ")


def test_capa_before_tls_offers_stls_not_user():
    out = sent(machine().data_received(b"CAPA\r\n"))
    lines = out.split(b"\r\n")
    assert lines[0].startswith(b"+OK")
    for cap in (b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING", b"STLS"):
        assert cap in lines
    assert b"USER" not in lines and not any(x.startswith(b"SASL") for x in lines)
    assert out.endswith(b"\r\n.\r\n")


def test_capa_after_tls_offers_user_and_sasl_plain():
    lines = sent(machine(secure=True).data_received(b"CAPA\r\n")).split(b"\r\n")
    assert b"USER" in lines and b"SASL PLAIN" in lines and b"STLS" not in lines


@pytest.mark.parametrize("line", [b"USER a\r\n", b"PASS x\r\n", b"AUTH PLAIN AGEAYg==\r\n"])
def test_login_refused_before_tls(line):
    m = machine()
    out = sent(m.data_received(line))
    assert out.startswith(b"-ERR [AUTH] Plaintext authentication disallowed")
    assert m.state is State.AUTHORIZATION and not m.busy


def test_login_allowed_without_tls_when_listener_allows():
    m = machine(plaintext=True)
    assert m.data_received(b"USER a\r\nPASS b c\r\n")[-1] == Login("a", "b c", "USER")


def test_stls_discards_pipelined_plaintext():
    m = machine()
    actions = m.data_received(b"STLS\r\nNOOP\r\nUSER evil\r\n")
    assert actions == [Send(b"+OK Begin TLS negotiation\r\n"), StartTLS()]
    assert m.secure
    # The next bytes arrive over TLS; nothing of the plaintext tail is answered.
    assert sent(m.data_received(b"CAPA\r\n")).startswith(b"+OK Capability")


def test_stls_forgets_user_given_before():
    m = machine(plaintext=True)
    m.data_received(b"USER a\r\n")
    m.data_received(b"STLS\r\n")
    assert sent(m.data_received(b"PASS b\r\n")).startswith(b"-ERR No user name")


def test_stls_refused_when_active_or_unavailable():
    assert sent(machine(secure=True).data_received(b"STLS\r\n")).startswith(b"-ERR")
    assert sent(machine(tls=False).data_received(b"STLS\r\n")).startswith(b"-ERR TLS is not")


def test_failed_login_maps_error_and_allows_retry():
    m = machine(secure=True)
    m.data_received(b"USER a\r\nPASS b\r\n")
    out = sent(m.effect_failed(Pop3Error("Authentication failed", "AUTH")))
    assert out == b"-ERR [AUTH] Authentication failed\r\n"
    assert m.state is State.AUTHORIZATION
    assert isinstance(m.data_received(b"USER a\r\nPASS c\r\n")[-1], Login)


def test_pipelined_commands_wait_for_the_login():
    m = machine(secure=True)
    actions = m.data_received(b"USER a\r\nPASS b\r\nSTAT\r\nLIST\r\nQUIT\r\n")
    assert sent(actions) == b"+OK\r\n" and isinstance(actions[-1], Login) and m.busy
    actions = m.effect_done(MAILDROP)
    out = sent(actions)
    assert out.startswith(b"+OK Logged in")
    assert b"+OK 3 350\r\n" in out
    assert b"+OK 3 messages (350 octets)\r\n1 100\r\n2 200\r\n3 50\r\n.\r\n" in out
    assert actions[-1] == Update((), ())


def test_auth_plain_initial_response():
    m = machine(secure=True)
    token = base64.b64encode(b"\0u@example.org\0secret").decode()
    assert m.data_received(f"AUTH PLAIN {token}\r\n".encode()) == [
        Login("u@example.org", "secret", "PLAIN")]


def test_auth_plain_continuation():
    m = machine(secure=True)
    assert m.data_received(b"AUTH PLAIN\r\n") == [Send(b"+ \r\n")]
    token = base64.b64encode(b"u@example.org\0u@example.org\0pw w")
    assert m.data_received(token + b"\r\n") == [Login("u@example.org", "pw w", "PLAIN")]


@pytest.mark.parametrize("response, error", [
    (b"*", b"-ERR Authentication cancelled"),
    (b"!!notbase64", b"-ERR Invalid base64"),
    (base64.b64encode(b"no-nuls"), b"-ERR Invalid PLAIN"),
    (base64.b64encode(b"other\0u\0pw"), b"-ERR [AUTH] Logging in as another user"),
])
def test_auth_plain_bad_responses(response, error):
    m = machine(secure=True)
    m.data_received(b"AUTH PLAIN\r\n")
    assert sent(m.data_received(response + b"\r\n")).startswith(error)
    assert m.state is State.AUTHORIZATION and not m.busy


def test_auth_unknown_mechanism_and_listing():
    m = machine(secure=True)
    assert sent(m.data_received(b"AUTH CRAM-MD5\r\n")).startswith(b"-ERR Unsupported")
    listing = b"+OK Supported mechanisms follow\r\nPLAIN\r\n.\r\n"
    assert sent(m.data_received(b"AUTH\r\n")) == listing


def test_transaction_commands_before_login():
    out = sent(machine().data_received(b"STAT\r\n"))
    assert out == b"-ERR STAT is not allowed before login\r\n"


def test_stat_list_uidl():
    m = logged_in()
    assert sent(m.data_received(b"STAT\r\n")) == b"+OK 3 350\r\n"
    assert sent(m.data_received(b"LIST 2\r\n")) == b"+OK 2 200\r\n"
    assert sent(m.data_received(b"UIDL\r\n")) == (
        b"+OK Unique-ID listing follows\r\n1 0000000a5f000000\r\n2 custom-uidl\r\n"
        b"3 0000000f5f000000\r\n.\r\n")
    assert sent(m.data_received(b"UIDL 3\r\n")) == b"+OK 3 0000000f5f000000\r\n"


@pytest.mark.parametrize("line, error", [
    (b"LIST 0", b"-ERR No such message"),
    (b"LIST 4", b"-ERR No such message"),
    (b"LIST x", b"-ERR Invalid message number"),
    (b"LIST 1 2", b"-ERR Too many arguments for LIST"),
    (b"RETR", b"-ERR RETR needs one message number"),
    (b"TOP 1", b"-ERR TOP needs a message number and a line count"),
    (b"TOP 1 -1", b"-ERR Invalid line count"),
    (b"DELE 99999999999999999999", b"-ERR Invalid message number"),
    (b"USER x", b"-ERR Already logged in"),
    (b"STLS", b"-ERR STLS is only allowed before login"),
    (b"XYZZY", b"-ERR Unknown command XYZZY"),
])
def test_transaction_errors(line, error):
    m = logged_in()
    assert sent(m.data_received(line + b"\r\n")).startswith(error)
    assert m.state is State.TRANSACTION


def test_dele_marks_and_rset_unmarks():
    m = logged_in()
    assert sent(m.data_received(b"DELE 2\r\n")).startswith(b"+OK")
    assert sent(m.data_received(b"STAT\r\n")) == b"+OK 2 150\r\n"
    assert sent(m.data_received(b"LIST\r\n")).endswith(b"1 100\r\n3 50\r\n.\r\n")
    assert sent(m.data_received(b"RETR 2\r\n")) == b"-ERR Message 2 already deleted\r\n"
    assert sent(m.data_received(b"DELE 2\r\n")) == b"-ERR Message 2 already deleted\r\n"
    assert sent(m.data_received(b"RSET\r\n")) == b"+OK Maildrop has 3 messages (350 octets)\r\n"
    assert sent(m.data_received(b"STAT\r\n")) == b"+OK 3 350\r\n"


def test_retr_and_top_are_effects():
    m = logged_in()
    assert m.data_received(b"RETR 2\r\nNOOP\r\n") == [Retrieve(2, 11, b"+OK 200 octets\r\n")]
    assert m.effect_done() == [Send(b"+OK\r\n")]
    assert m.data_received(b"TOP 3 5\r\n") == [
        Retrieve(3, 15, b"+OK Top of message follows\r\n", 5)]
    m.effect_done()
    m.data_received(b"RETR 1\r\n")
    assert m.effect_failed(Pop3Error("Message 1 was removed by another session")) == [
        Send(b"-ERR Message 1 was removed by another session\r\n")]
    m.data_received(b"DELE 3\r\n")
    # Only the RETR that completed counts as retrieved; TOP and failed RETR do not.
    assert m.data_received(b"QUIT\r\n") == [Update((15,), (11,))]


def test_quit_updates_then_closes_and_ignores_later_input():
    m = logged_in()
    m.data_received(b"DELE 1\r\nDELE 3\r\n")
    assert m.data_received(b"QUIT\r\nSTAT\r\n") == [Update((10, 15), ())]
    assert m.state is State.UPDATE
    assert m.data_received(b"NOOP\r\n") == []
    assert m.effect_done(2) == [Send(b"+OK Logging out, 2 messages deleted\r\n"), Close()]
    assert m.state is State.CLOSED


def test_update_failure_still_closes():
    m = logged_in()
    m.data_received(b"DELE 1\r\nQUIT\r\n")
    out = m.effect_failed(Pop3Error("Some deleted messages were not removed", "SYS/TEMP"))
    assert out == [Send(b"-ERR [SYS/TEMP] Some deleted messages were not removed\r\n"), Close()]


def test_quit_before_login():
    assert machine().data_received(b"QUIT\r\n") == [Send(b"+OK Logging out\r\n"), Close()]


def test_lines_split_across_reads_and_bare_lf():
    m = logged_in()
    assert m.data_received(b"ST") == []
    assert sent(m.data_received(b"AT\r\nNOOP\n")) == b"+OK 3 350\r\n+OK\r\n"


def test_overlong_line_is_refused_and_skipped():
    m = logged_in(max_line_length=64)
    out = sent(m.data_received(b"NOOP " + b"x" * 100))
    assert out == b"-ERR Line too long\r\n"
    assert sent(m.data_received(b"y" * 100 + b"\r\nSTAT\r\n")) == b"+OK 3 350\r\n"
    out = sent(m.data_received(b"NOOP " + b"z" * 80 + b"\r\nSTAT\r\n"))
    assert out == b"-ERR Line too long\r\n+OK 3 350\r\n"


def test_too_many_bad_commands_close():
    m = machine(max_bad_commands=3)
    actions = m.data_received(b"A\r\nB\r\nC\r\nD\r\n")
    assert sent(actions).count(b"-ERR") == 3 and actions[-1] == Close()
    assert m.state is State.CLOSED


def test_flood_while_busy_closes():
    m = machine(secure=True)
    m.data_received(b"USER a\r\nPASS b\r\n")
    actions = m.data_received(b"NOOP\r\n" * 200_000)
    assert actions[-1] == Close()


def test_overlong_sasl_response_ends_the_auth_exchange():
    m = machine(secure=True, max_line_length=64)
    m.data_received(b"AUTH PLAIN\r\n")
    assert sent(m.data_received(b"A" * 100 + b"\r\n")) == b"-ERR Line too long\r\n"
    assert sent(m.data_received(b"NOOP\r\n")).startswith(b"-ERR NOOP is not allowed")


_WORDS = st.sampled_from([b"USER", b"PASS", b"AUTH", b"STLS", b"CAPA", b"STAT", b"LIST", b"RETR",
                          b"TOP", b"DELE", b"NOOP", b"RSET", b"UIDL", b"QUIT", b"APOP", b"*",
                          b"PLAIN", b"0", b"1", b"3", b"-1", b"99999999999", b"\xff", b"=", b""])
_LINES = st.lists(_WORDS, min_size=0, max_size=4).map(lambda ws: b" ".join(ws))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_LINES.map(lambda line: line + b"\r\n"), st.binary(max_size=40)),
                max_size=30),
       st.booleans(), st.booleans())
def test_any_input_gives_only_well_formed_replies(chunks, secure, succeed):
    """Never an exception; every reply is a +OK/-ERR/+ line (or a multi-line body)."""
    m = machine(secure=secure, plaintext=True, max_line_length=200)
    out = []
    for chunk in chunks:
        actions = m.data_received(chunk)
        while True:
            out.extend(actions)
            effects = [a for a in actions if isinstance(a, (Login, Retrieve, Update))]
            if not effects:
                break
            assert len(effects) == 1 and actions[-1] is effects[0]  # one effect at a time
            if isinstance(effects[0], Login):
                actions = (m.effect_done(MAILDROP) if succeed
                           else m.effect_failed(Pop3Error("Authentication failed", "AUTH")))
            else:
                actions = m.effect_done(0 if isinstance(effects[0], Update) else None)
    for action in out:
        if isinstance(action, Send):
            assert action.data.endswith(b"\r\n")
            assert action.data[:1] in (b"+", b"-")
    if Close() in out:
        assert out[-1] == Close() and m.state is State.CLOSED
