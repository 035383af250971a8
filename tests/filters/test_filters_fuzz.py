"""Hostile input never crashes: the Sieve parser/interpreter and the ManageSieve reader only
ever raise their own error types."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from pymail.filters.managesieve.wire import Reader, WireError
from pymail.filters.sieve import SieveContext, SieveEnvelope, SieveError, compile_script, evaluate
from pymail.filters.spamd import _SPAM

SIEVE_WORDS = st.sampled_from([
    "require", "if", "elsif", "else", "fileinto", "keep", "discard", "stop", "redirect", "vacation",
    "header", "address", "envelope", "allof", "anyof", "not", "true", "false", "size", "exists",
    ":is", ":contains", ":matches", ":over", ":under", ":days", ":comparator", ":value", ":count",
    '"fileinto"', '"vacation"', '"variables"', '"a*b?c"', '"${1}"', "[", "]", "(", ")", "{", "}",
    ",", ";", "10K", "0", "text:\n.\n", "#c\n", "/* x */", '"\\"', "set", "string", "body",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(SIEVE_WORDS, max_size=30).map(" ".join) | st.text(max_size=200))
def test_sieve_parser_raises_only_sieve_errors(text):
    try:
        script = compile_script(text)
    except SieveError as exc:
        assert exc.line >= 0
        return
    actions = evaluate(script, b"Subject: x\r\nFrom: a@b.example\r\n\r\nbody\r\n",
                       SieveEnvelope("a@b.example", "u@example.com"), SieveContext("u@example.com"))
    assert actions  # always something: at least the implicit keep, or a discard the script chose


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40) | st.sampled_from([b"{3+}\r\n", b'"q\\"', b"\r\n", b" ", b"NOOP"]),
                max_size=20))
def test_managesieve_reader_raises_only_wire_errors(chunks):
    reader = Reader(max_literal=100)
    for chunk in chunks:
        reader.feed(chunk)
        for _ in range(50):
            try:
                if reader.next() is None:
                    break
            except WireError as exc:
                if exc.fatal:
                    return
    assert len(reader.buffer) < 100 + 9000


def test_spam_header_parser():
    assert _SPAM.match("True ; 15.5 / 5.0").groups() == ("True", "15.5", "5.0")
    assert _SPAM.match("False ; -0.1 / 5.0")
    assert _SPAM.match("maybe ; x / y") is None
