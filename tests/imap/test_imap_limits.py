"""Limits with clear responses: line length, literal size, nesting, connections per IP and per
user, autologout, many pipelined commands; literal abuse."""

import time

from tests.imap.conftest import PASSWORD, USER, Raw


def test_huge_literal_refused_before_any_byte(make_server):
    srv = make_server(max_literal_size=1000)
    r = Raw(srv.port)
    r.send(f"L LOGIN {USER} {PASSWORD}\r\n".encode())
    r.until(b"L")
    r.send(b"a APPEND INBOX {4294967296}\r\n")
    assert r.line() == b"a NO [TOOBIG] Literal of 4294967296 bytes is over the 1000 byte limit\r\n"
    r.send(b"b APPEND INBOX {1001}\r\n")
    assert r.line().startswith(b"b NO [TOOBIG]")
    r.send(b"c NOOP\r\n")
    assert r.until(b"c")[-1] == b"c OK NOOP completed\r\n"


def test_appendlimit_advertised(make_server):
    srv = make_server(max_literal_size=5000)
    r = Raw(srv.port)
    r.send(f"L LOGIN {USER} {PASSWORD}\r\n".encode())
    assert b" APPENDLIMIT=5000 " in r.until(b"L")[-1]


def test_huge_non_synchronising_literal_closes(make_server):
    srv = make_server(max_literal_size=1000)
    r = Raw(srv.port)
    r.send(b"a LOGIN {999999+}\r\n")
    assert r.line() == b"* BYE [TOOBIG] Literal too big\r\n"
    assert r.closed()


def test_line_too_long(make_server):
    srv = make_server(max_line_length=1024)
    r = Raw(srv.port)
    r.send(b"a NOOP " + b"x" * 2000)
    assert r.line() == b"* BYE [TOOBIG] Command line too long\r\n"
    assert r.closed()


def test_literal_abuse(raw):
    r = raw()
    # a literal shorter than announced waits for the rest; junk after it is a BAD, not a crash
    r.send(b"a LOGIN {3}\r\n")
    assert r.line() == b"+ Ready\r\n"
    r.send(b"bob\r\n")
    assert r.until(b"a")[-1].startswith(b"a BAD")
    r.send(b"b LOGIN {3}\r\nbob {0}\r\n\r\n")
    assert r.line() == b"+ Ready\r\n"
    lines = r.until(b"b")
    assert lines[-1].startswith(b"b NO") or lines[-1].startswith(b"b BAD")
    r.send(b"c NOOP {5}\r\n")
    assert r.line() == b"+ Ready\r\n"
    r.send(b"\r\n\r\n\r\n")
    assert r.until(b"c")[-1].startswith(b"c BAD")
    r.send(b"d NOOP\r\n")
    assert r.until(b"d")[-1].startswith(b"d OK")


def test_nesting_depth(raw):
    r = raw(login=True)
    r.send(b"a SEARCH " + b"(" * 100 + b"ALL" + b")" * 100 + b"\r\n")
    assert r.until(b"a")[-1].startswith(b"a BAD [LIMIT]")


def test_connections_per_ip(make_server):
    srv = make_server(max_connections_per_ip=2)
    a, b = Raw(srv.port), Raw(srv.port)
    c = Raw(srv.port)
    assert c.greeting.startswith(b"* BYE [UNAVAILABLE]")
    a.close()
    time.sleep(0.2)
    d = Raw(srv.port)
    assert d.greeting.startswith(b"* OK")
    for x in (b, c, d):
        x.close()


def test_connections_per_user(make_server):
    srv = make_server(max_connections_per_user=1)
    a, b = Raw(srv.port), Raw(srv.port)
    a.send(f"L LOGIN {USER} {PASSWORD}\r\n".encode())
    assert a.until(b"L")[-1].startswith(b"L OK")
    b.send(f"L LOGIN {USER} {PASSWORD}\r\n".encode())
    assert b.until(b"L")[-1].startswith(b"L NO [LIMIT]")
    a.close()
    b.close()


def test_autologout(make_server):
    srv = make_server(autologout=0.5)
    r = Raw(srv.port)
    r.sock.settimeout(3)
    assert r.line() == b"* BYE Autologout; idle for too long\r\n"
    assert r.closed()


def test_many_pipelined_commands(raw):
    r = raw(login=True)
    r.send(b"".join(b"n%d NOOP\r\n" % i for i in range(300)))
    got = []
    while len(got) < 300:
        ln = r.line()
        if ln.startswith(b"n"):
            got.append(int(ln.split(b" ")[0][1:]))
    assert got == list(range(300))


def test_drain_says_bye(make_server):
    from pymail.testing import reactor_thread

    srv = make_server()
    idle, between = Raw(srv.port), Raw(srv.port)
    for r in (idle, between):
        r.send(f"L LOGIN {USER} {PASSWORD}\r\n".encode())
        r.until(b"L")
    idle.send(b"s SELECT INBOX\r\ni IDLE\r\n")
    idle.until(b"s")
    assert idle.line() == b"+ idling\r\n"
    reactor_thread.call(srv.port_obj.stopListening)
    for r in (idle, between):
        r.sock.settimeout(5)
        assert r.line().startswith(b"* BYE [UNAVAILABLE] Server shutting down")
        assert r.closed()


def test_login_timeout_is_shorter_than_autologout(make_server):
    srv = make_server(login_timeout=0.5, autologout=60)
    r = Raw(srv.port)
    r.sock.settimeout(3)
    assert r.line() == b"* BYE Autologout; idle for too long\r\n"
    r2 = Raw(srv.port)
    r2.send(f"L LOGIN {USER} {PASSWORD}\r\n".encode())
    r2.until(b"L")
    r2.sock.settimeout(1.0)
    import socket as _socket
    try:
        r2.line()
        raise AssertionError("logged-in session was dropped by the login timeout")
    except _socket.timeout:
        pass
