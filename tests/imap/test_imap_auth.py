"""Greeting, CAPABILITY, LOGIN, AUTHENTICATE PLAIN (SASL-IR and continuation), LOGOUT, NOOP."""

import base64
import imaplib

import pytest

from tests.imap.conftest import PASSWORD, USER


def test_greeting_and_capability(connect):
    c = connect(login=False)
    assert c.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1")
    typ, data = c.capability()
    caps = data[0].split()
    assert typ == "OK" and b"AUTH=PLAIN" in caps and b"LOGINDISABLED" not in caps
    assert b"STARTTLS" in caps and b"SASL-IR" in caps and b"LITERAL+" in caps


def test_login_ok_gives_capability_code(raw):
    r = raw()
    r.send(f'a LOGIN "{USER}" "{PASSWORD}"\r\n'.encode())
    [line] = r.until(b"a")
    assert line.startswith(b"a OK [CAPABILITY IMAP4rev1 ")
    assert b" UIDPLUS " in line and b" MOVE " in line and b" IDLE " in line


def test_login_bad_password(connect):
    c = connect(login=False)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        c.login(USER, "wrong")
    c.login(USER, PASSWORD)


def test_authenticate_plain_with_continuation(connect):
    c = connect(login=False)
    typ, _ = c.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())
    assert typ == "OK"
    assert c.select("INBOX")[0] == "OK"


def test_authenticate_plain_sasl_ir(raw):
    r = raw()
    ir = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    r.send(f"a AUTHENTICATE PLAIN {ir}\r\n".encode())
    assert r.until(b"a")[-1].startswith(b"a OK [CAPABILITY")


def test_authenticate_cancel_and_garbage(raw):
    r = raw()
    r.send(b"a AUTHENTICATE PLAIN\r\n")
    assert r.line() == b"+ \r\n"
    r.send(b"*\r\n")
    assert r.until(b"a")[-1].startswith(b"a BAD")
    r.send(b"b AUTHENTICATE PLAIN !!!notbase64\r\n")
    assert r.until(b"b")[-1].startswith(b"b BAD")
    r.send(b"c AUTHENTICATE CRAM-MD5\r\n")
    assert r.until(b"c")[-1].startswith(b"c NO")
    r.send(b"d NOOP\r\n")
    assert r.until(b"d")[-1].startswith(b"d OK")


def test_state_rules(raw):
    r = raw()
    r.send(b"a SELECT INBOX\r\n")
    assert r.until(b"a")[-1].startswith(b"a BAD")
    r.send(b"b FETCH 1 FLAGS\r\n")
    assert r.until(b"b")[-1].startswith(b"b BAD")
    r.send(b"c FROBNICATE\r\n")
    assert r.until(b"c")[-1].startswith(b"c BAD")
    r.send(b"d LOGOUT\r\n")
    lines = r.until(b"d")
    assert lines[0].startswith(b"* BYE") and lines[-1].startswith(b"d OK")
    assert r.closed()


def test_logindisabled_without_tls(make_server, connect):
    srv = make_server(tls="starttls", allow_plaintext_auth=False)
    c = connect(login=False, srv=srv)
    caps = c.capability()[1][0].split()
    assert b"LOGINDISABLED" in caps and b"AUTH=PLAIN" not in caps and b"STARTTLS" in caps
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        c.login(USER, PASSWORD)


def test_id_namespace_enable(connect):
    c = connect()
    typ, data = c.xatom("ID", '("name" "test")')
    assert typ == "OK"
    assert c.untagged_responses.pop("ID")[0] == b'("name" "pymail" "vendor" "pymail")'
    typ, data = c.namespace()
    assert data[0] == b'(("" "/")) NIL NIL'
    typ, data = c.enable("CONDSTORE")
    assert typ == "OK" and c.untagged_responses.pop("ENABLED") == [b"CONDSTORE"]


def test_authenticate_login_mechanism(raw):
    r = raw()
    r.send(b"a AUTHENTICATE LOGIN\r\n")
    assert r.line() == b"+ " + base64.b64encode(b"Username:") + b"\r\n"
    r.send(base64.b64encode(USER.encode()) + b"\r\n")
    assert r.line() == b"+ " + base64.b64encode(b"Password:") + b"\r\n"
    r.send(base64.b64encode(PASSWORD.encode()) + b"\r\n")
    assert r.until(b"a")[-1].startswith(b"a OK [CAPABILITY")


def test_authenticate_login_with_initial_response_and_bad_password(raw):
    r = raw()
    r.send(b"a AUTHENTICATE LOGIN " + base64.b64encode(USER.encode()) + b"\r\n")
    assert r.line() == b"+ " + base64.b64encode(b"Password:") + b"\r\n"
    r.send(base64.b64encode(b"wrong") + b"\r\n")
    assert r.until(b"a")[-1].startswith(b"a NO [AUTHENTICATIONFAILED]")


def test_mechanisms_hidden_without_tls(make_server, connect):
    srv = make_server(tls="starttls", allow_plaintext_auth=False)
    r = connect(login=False, srv=srv)
    typ, data = r._simple_command("AUTHENTICATE", "LOGIN")
    assert typ == "NO" and b"PRIVACYREQUIRED" in data[0]
