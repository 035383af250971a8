"""The wire layer: command parsing, multi-line replies, message encoding and sizes."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings, strategies as st

from pymail.pop3.wire import (
    CommandSyntaxError, MessageEncoder, encode_message, multiline, parse_command, wire_size,
)


def unstuff(body: bytes) -> bytes:
    """What a client does with a multi-line response body (RFC 1939 §3)."""
    assert body.endswith(b"\r\n.\r\n") or body == b".\r\n"
    lines = body.split(b"\r\n")
    assert lines[-2:] == [b".", b""]
    out = [line[1:] if line.startswith(b".") else line for line in lines[:-2]]
    return b"".join(line + b"\r\n" for line in out)


def encode(raw: bytes, chunk: int = 7, body_lines=None) -> bytes:
    enc = MessageEncoder(body_lines)
    out = b""
    for i in range(0, len(raw), chunk):
        if enc.done:
            break
        out += enc.feed(raw[i:i + chunk])
    return out + enc.finish()


def test_parse_command_keyword_case_and_args():
    cmd = parse_command(b"retr 12")
    assert (cmd.keyword, cmd.args) == ("RETR", ["12"])
    assert parse_command(b"PASS my secret  pw").rest == "my secret  pw"
    assert parse_command(b"LIST").args == []


@pytest.mark.parametrize("line", [b"", b"   ", b"\xff\xfe", b"RE\x00TR 1", b"12 3"])
def test_parse_command_rejects_garbage(line):
    with pytest.raises(CommandSyntaxError):
        parse_command(line)


def test_multiline_stuffs_and_terminates():
    assert multiline("x", ["a", ".b"]) == b"+OK x\r\na\r\n..b\r\n.\r\n"


def test_lf_message_becomes_crlf_and_dots_are_stuffed():
    raw = b"Subject: a\n\n.hidden\nline\n..two\n.\n"
    body = encode(raw, chunk=3)
    assert body == b"Subject: a\r\n\r\n..hidden\r\nline\r\n...two\r\n..\r\n.\r\n"
    assert unstuff(body) == raw.replace(b"\n", b"\r\n")
    assert wire_size(io.BytesIO(raw)) == len(raw.replace(b"\n", b"\r\n"))


def test_crlf_split_across_chunks_is_not_doubled():
    raw = b"A: b\r\n\r\nbody\r\n"
    for chunk in range(1, len(raw) + 1):
        assert encode(raw, chunk) == raw + b".\r\n"


def test_missing_final_newline_is_added_and_counted():
    raw = b"A: b\n\nno newline"
    body = encode(raw)
    assert body == b"A: b\r\n\r\nno newline\r\n.\r\n"
    assert wire_size(io.BytesIO(raw)) == len(unstuff(body))


def test_empty_message():
    assert encode(b"") == b".\r\n"
    assert wire_size(io.BytesIO(b"")) == 0


def test_bare_cr_is_kept():
    assert encode(b"a\rb\n") == b"a\rb\r\n.\r\n"


@pytest.mark.parametrize("n, expected", [
    (0, b"H: 1\r\nH2: 2\r\n\r\n"),
    (1, b"H: 1\r\nH2: 2\r\n\r\n..one\r\n"),
    (2, b"H: 1\r\nH2: 2\r\n\r\n..one\r\ntwo\r\n"),
    (9, b"H: 1\r\nH2: 2\r\n\r\n..one\r\ntwo\r\nthree\r\n"),
])
def test_top_header_and_n_body_lines(n, expected):
    raw = b"H: 1\nH2: 2\n\n.one\ntwo\nthree\n"
    for chunk in (1, 2, 5, 100):
        assert encode(raw, chunk, body_lines=n) == expected + b".\r\n"


def test_top_without_body_sends_the_header():
    assert encode(b"H: 1\nH: 2", body_lines=3) == b"H: 1\r\nH: 2\r\n.\r\n"


def test_encode_message_streams_in_chunks():
    raw = b"X: y\n\n" + b"line of text\n" * 20000
    parts = list(encode_message(io.BytesIO(raw)))
    assert len(parts) > 2
    assert unstuff(b"".join(parts)) == raw.replace(b"\n", b"\r\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 40))
def test_size_equals_what_the_client_receives(raw, chunk):
    body = encode(raw, chunk)
    received = unstuff(body)
    assert len(received) == wire_size(io.BytesIO(raw))
    assert body == encode(raw, 10_000)  # chunking never changes the output


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_size_is_dovecot_vsize_plus_a_missing_final_crlf(raw):
    """maildrop.py announces the store's W= size (+2 without a final newline): same number."""
    vsize = len(raw) + raw.count(b"\n") - raw.count(b"\r\n")
    missing_crlf = 2 if raw and not raw.endswith(b"\n") else 0
    assert wire_size(io.BytesIO(raw)) == vsize + missing_crlf
