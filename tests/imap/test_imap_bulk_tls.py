"""Bulk FETCH with back-pressure over implicit TLS and over STARTTLS (producer registration
through the TLS layer)."""

import imaplib

from tests.imap.conftest import PASSWORD, USER, deliver, message


def _download(c):
    c.login(USER, PASSWORD)
    c.select("INBOX")
    typ, data = c.fetch("1:*", "(BODY.PEEK[])")
    assert typ == "OK"
    return [d[1] for d in data if isinstance(d, tuple)]


def test_bulk_fetch_over_tls(make_server, store, client_ssl_context):
    body = ("y" * 998 + "\r\n") * 300
    for i in range(12):
        deliver(store, message(f"t{i}", body=body))
    implicit = make_server(implicit=True, allow_plaintext_auth=False)
    c = imaplib.IMAP4_SSL("127.0.0.1", implicit.port, ssl_context=client_ssl_context, timeout=20)
    bodies = _download(c)
    c.logout()
    assert len(bodies) == 12 and all(body.encode() in b for b in bodies)
    starttls = make_server(tls="starttls", allow_plaintext_auth=False)
    c = imaplib.IMAP4("127.0.0.1", starttls.port, timeout=20)
    c.starttls(ssl_context=client_ssl_context)
    bodies = _download(c)
    c.logout()
    assert len(bodies) == 12
