"""STARTTLS (and the plaintext-injection rule), implicit TLS, LOGINDISABLED before TLS."""

import imaplib

from tests.imap.conftest import PASSWORD, USER, Raw


def test_starttls_then_login(make_server, client_ssl_context):
    srv = make_server(tls="starttls", allow_plaintext_auth=False)
    c = imaplib.IMAP4("127.0.0.1", srv.port, timeout=10)
    try:
        assert "LOGINDISABLED" in c.capabilities
        c.starttls(ssl_context=client_ssl_context)
        assert "LOGINDISABLED" not in c.capabilities and "STARTTLS" not in c.capabilities
        assert "AUTH=PLAIN" in c.capabilities
        assert c.login(USER, PASSWORD)[0] == "OK"
        assert c.select("INBOX")[0] == "OK"
    finally:
        c.logout()


def test_starttls_injection_is_discarded(make_server, client_ssl_context):
    """``STARTTLS\\r\\nNOOP\\r\\n`` in one segment: the NOOP must never run (RFC 2595 §3.1)."""
    srv = make_server(tls="starttls", allow_plaintext_auth=False)
    r = Raw(srv.port)
    r.send(b"a STARTTLS\r\nb NOOP\r\n")
    assert r.line() == b"a OK Begin TLS negotiation now\r\n"
    assert r.buf == b""
    tls = client_ssl_context.wrap_socket(r.sock, server_hostname="localhost")
    tls.settimeout(5)
    tls.sendall(b"c NOOP\r\n")
    data = b""
    while b"c OK" not in data:
        chunk = tls.recv(4096)
        assert chunk
        data += chunk
    assert b"b OK" not in data and b"b BAD" not in data
    assert data.startswith(b"c OK")
    tls.close()


def test_starttls_twice_and_after_tls_refused(make_server, client_ssl_context):
    srv = make_server(tls="starttls")
    c = imaplib.IMAP4("127.0.0.1", srv.port, timeout=10)
    try:
        c.starttls(ssl_context=client_ssl_context)
        tag = c._command("STARTTLS")
        try:
            c._command_complete("STARTTLS", tag)
            raise AssertionError("second STARTTLS accepted")
        except imaplib.IMAP4.error as e:
            assert "BAD" in str(e)
        assert c.noop()[0] == "OK"
    finally:
        c.shutdown()


def test_implicit_tls(make_server, client_ssl_context):
    srv = make_server(implicit=True, allow_plaintext_auth=False)
    c = imaplib.IMAP4_SSL("127.0.0.1", srv.port, ssl_context=client_ssl_context, timeout=10)
    try:
        assert "STARTTLS" not in c.capabilities and "AUTH=PLAIN" in c.capabilities
        assert c.login(USER, PASSWORD)[0] == "OK"
        assert c.list('""', "*")[0] == "OK"
    finally:
        c.logout()


def test_plain_listener_without_tls_context_has_no_starttls(make_server):
    srv = make_server()
    srv.ctx.tls = None
    r = Raw(srv.port)
    assert b"STARTTLS" not in r.greeting
    r.send(b"a STARTTLS\r\n")
    assert r.until(b"a")[-1].startswith(b"a BAD")
    r.close()
