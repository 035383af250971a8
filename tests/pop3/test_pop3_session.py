"""POP3 sessions over real sockets and TLS, stdlib poplib against a real Store and Directory."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import hashlib
import poplib
import socket
import time

import pytest

import pymail

from pymail.pop3.settings import Pop3Settings
from pymail.testing import reactor_thread


def message(n: int, body: bytes = b"hello\n") -> bytes:
    return b"From: x@example.com\nSubject: test %d\n\n" % n + body


def drop(pop: poplib.POP3) -> None:
    """Cut the connection the way a crashing client does (no QUIT)."""
    pop.sock.shutdown(socket.SHUT_RDWR)
    pop.file.close()
    pop.sock.close()


def login_eventually(pop3env, port: int) -> poplib.POP3:
    """Log in, retrying while the previous session's lock is still being released."""
    deadline = time.monotonic() + 5
    while True:
        pop = pop3env.client(port, login=False)
        pop.user(pop3env.user)
        try:
            pop.pass_(pop3env.password)
            return pop
        except poplib.error_proto as exc:
            if b"[IN-USE]" not in exc.args[0] or time.monotonic() > deadline:
                raise
            pop.quit()
            time.sleep(0.05)


def received(lines: list[bytes]) -> bytes:
    """The message as a client holds it after RETR (poplib strips CRLF and stuffing)."""
    return b"".join(line + b"\r\n" for line in lines)


# -- TLS and login --------------------------------------------------------------------------------


def test_stls_login_stat_list_retr_sizes_match(pop3env):
    bodies = [b"plain\n", b".dot line\n..two dots\n.\nend\n", b"crlf\r\nlines\r\n",
              b"no final newline", b"", b"bare\rcr\nends with cr\r"]
    for n, body in enumerate(bodies):
        pop3env.deliver(message(n, body))
    port = pop3env.serve()
    pop = pop3env.client(port)
    count, total = pop.stat()
    assert count == len(bodies)
    _, listing, _ = pop.list()
    sizes = [int(line.split()[1]) for line in listing]
    assert sum(sizes) == total
    for number, size in enumerate(sizes, 1):
        resp, lines, octets = pop.retr(number)
        assert resp == b"+OK %d octets" % size
        assert octets == size == len(received(lines))
        expected = message(number - 1, bodies[number - 1]).replace(b"\r\n", b"\n")
        assert received(lines).replace(b"\r\n", b"\n").rstrip(b"\n") == expected.rstrip(b"\n")
    assert pop.quit().startswith(b"+OK")


def test_login_refused_before_stls(pop3env):
    port = pop3env.serve()
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    assert "STLS" in pop.capa()
    assert "USER" not in pop.capa()
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Plaintext authentication"):
        pop.user(pop3env.user)
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\] Plaintext"):
        credentials = f"\0{pop3env.user}\0{pop3env.password}".encode()
        pop._shortcmd("AUTH PLAIN " + base64.b64encode(credentials).decode())
    pop.stls(context=pop3env.client_ssl)
    assert "USER" in pop.capa() and "STLS" not in pop.capa()
    pop.user(pop3env.user)
    assert pop.pass_(pop3env.password).startswith(b"+OK Logged in")
    pop.quit()


def test_plaintext_login_when_the_listener_allows_it(pop3env):
    port = pop3env.serve(tls="none", allow_plaintext_auth=True)
    pop = poplib.POP3("127.0.0.1", port, timeout=10)
    assert "STLS" not in pop.capa()
    with pytest.raises(poplib.error_proto, match="TLS is not available"):
        pop._shortcmd("STLS")
    pop.user(pop3env.user)
    pop.pass_(pop3env.password)
    pop.quit()


def test_stls_discards_plaintext_sent_with_it(pop3env):
    port = pop3env.serve()
    raw = pop3env.raw(port)
    assert raw.line().startswith(b"+OK")
    # One segment: the NOOP after STLS is plaintext an attacker could inject; never run it.
    raw.send(b"STLS\r\nNOOP\r\nUSER evil\r\n")
    assert raw.line() == b"+OK Begin TLS negotiation"
    raw.starttls(pop3env.client_ssl)
    raw.send(b"QUIT\r\n")
    assert raw.read_until_closed() == b"+OK Logging out\r\n"


def test_pop3s_implicit_tls(pop3env):
    pop3env.deliver(message(1))
    port = pop3env.serve(tls="implicit")
    pop = pop3env.client_ssl_implicit(port)
    capa = pop.capa()
    assert "STLS" not in capa and "USER" in capa and capa["SASL"] == ["PLAIN"]
    for cap in ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"):
        assert cap in capa
    pop.user(pop3env.user)
    pop.pass_(pop3env.password)
    assert pop.stat()[0] == 1
    pop.quit()


def test_auth_plain_initial_response_and_continuation(pop3env):
    port = pop3env.serve(tls="implicit")
    token = base64.b64encode(f"\0{pop3env.user}\0{pop3env.password}".encode()).decode()
    pop = pop3env.client_ssl_implicit(port)
    assert pop._shortcmd("AUTH PLAIN " + token).startswith(b"+OK Logged in")
    pop.quit()
    pop = pop3env.client_ssl_implicit(port)
    pop._putcmd("AUTH PLAIN")
    assert pop._getline()[0] == b"+ "
    assert pop._shortcmd(token).startswith(b"+OK Logged in")
    pop.quit()
    pop = pop3env.client_ssl_implicit(port)
    pop._putcmd("AUTH PLAIN")
    pop._getline()
    with pytest.raises(poplib.error_proto, match="cancelled"):
        pop._shortcmd("*")
    pop.quit()


def test_bad_password_is_slowed_and_answered_with_auth_code(pop3env):
    port = pop3env.serve()
    pop = pop3env.client(port, login=False)
    pop.user(pop3env.user)
    started = time.monotonic()
    with pytest.raises(poplib.error_proto) as info:
        pop.pass_("wrong")
    assert time.monotonic() - started >= pop3env.failure_delay * 0.9
    assert info.value.args[0] == b"-ERR [AUTH] Authentication failed"
    # Unknown users get the same answer.
    pop.user("nobody@example.org")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\] Authentication failed"):
        pop.pass_("x")
    # The session is still usable.
    pop.user(pop3env.user)
    assert pop.pass_(pop3env.password).startswith(b"+OK")
    pop.quit()


def test_repeated_failures_are_throttled(pop3env):
    port = pop3env.serve()
    pop = pop3env.client(port, login=False)
    answers = []
    for _ in range(7):
        pop.user("bob@example.org")
        try:
            pop.pass_("wrong")
        except poplib.error_proto as exc:
            answers.append(exc.args[0])
    assert answers[0] == b"-ERR [AUTH] Authentication failed"
    assert answers[-1].startswith(b"-ERR [SYS/TEMP]")
    pop.quit()


# -- RFC 1939 semantics ---------------------------------------------------------------------------


def test_dele_then_disconnect_keeps_the_mail(pop3env):
    uids = [pop3env.deliver(message(n)) for n in range(3)]
    port = pop3env.serve()
    pop = pop3env.client(port)
    pop.dele(1)
    pop.dele(3)
    drop(pop)  # dropped connection: no QUIT, no UPDATE state
    pop = login_eventually(pop3env, port)  # the lock is released with the connection
    assert pop3env.uids() == uids
    assert pop.stat()[0] == 3
    pop.quit()


def test_dele_quit_removes_exactly_the_marked_messages(pop3env):
    uids = [pop3env.deliver(message(n)) for n in range(4)]
    port = pop3env.serve()
    pop = pop3env.client(port)
    pop.dele(2)
    pop.dele(4)
    pop.dele(1)
    pop.rset()
    pop.dele(2)
    pop.dele(4)
    assert pop.stat()[0] == 2
    with pytest.raises(poplib.error_proto, match="already deleted"):
        pop.retr(2)
    assert pop.quit() == b"+OK Logging out, 2 messages deleted"
    assert pop3env.uids() == [uids[0], uids[2]]


def test_quit_followed_by_an_immediate_close_still_updates(pop3env):
    uids = [pop3env.deliver(message(n)) for n in range(2)]
    port = pop3env.serve()
    pop = pop3env.client(port)
    pop.dele(1)
    pop._putcmd("QUIT")
    drop(pop)
    deadline = time.monotonic() + 10
    while pop3env.uids() != uids[1:] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pop3env.uids() == uids[1:]


def test_retr_marks_seen_at_quit_only(pop3env):
    uid = pop3env.deliver(message(1))
    port = pop3env.serve()
    pop = pop3env.client(port)
    pop.retr(1)
    drop(pop)
    pop = login_eventually(pop3env, port)
    with pop3env.inbox() as mailbox:
        assert "\\Seen" not in mailbox.record(uid).flags
    pop.top(1, 0)
    pop.retr(1)
    pop.quit()
    with pop3env.inbox() as mailbox:
        mailbox.sync()
        assert "\\Seen" in mailbox.record(uid).flags


def test_in_use_while_another_session_holds_the_maildrop(pop3env):
    pop3env.deliver(message(1))
    port = pop3env.serve()
    first = pop3env.client(port)
    second = pop3env.client(port, login=False)
    second.user(pop3env.user)
    with pytest.raises(poplib.error_proto) as info:
        second.pass_(pop3env.password)
    assert info.value.args[0] == b"-ERR [IN-USE] Mailbox is locked by another POP3 session"
    # Deliveries and other users are not blocked by the POP3 lock.
    pop3env.deliver(message(2))
    other = pop3env.client(port, user="bob@example.org", password="bob password")
    other.quit()
    assert first.stat()[0] == 1  # the snapshot taken at login (RFC 1939 §8)
    first.quit()
    second.user(pop3env.user)
    second.pass_(pop3env.password)
    assert second.stat()[0] == 2
    second.quit()


HOLDER = """
import sys, time
from pymail.pop3.lock import SessionLock
SessionLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_in_use_when_another_process_holds_the_lock_until_it_crashes(pop3env):
    """Another pymail worker (or host) in a POP3 session; then it dies without cleaning up."""
    port = pop3env.serve()
    maildir = pop3env.store.account(pop3env.user).root
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(maildir)],
                              stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(pymail.__file__)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        pop = pop3env.client(port, login=False)
        pop.user(pop3env.user)
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            pop.pass_(pop3env.password)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    pop.user(pop3env.user)
    assert pop.pass_(pop3env.password).startswith(b"+OK Logged in")
    pop.quit()


def test_concurrent_imap_expunge_during_a_session(pop3env):
    uids = [pop3env.deliver(message(n)) for n in range(3)]
    port = pop3env.serve()
    pop = pop3env.client(port)
    assert pop.stat()[0] == 3
    # An IMAP session (same store API, another Mailbox object) expunges message 2.
    with pop3env.inbox() as imap:
        imap.sync()
        imap.store_flags([uids[1]], {"\\Deleted"}, "add")
        assert imap.expunge([uids[1]]) == [uids[1]]
    with pytest.raises(poplib.error_proto) as info:
        pop.retr(2)
    assert info.value.args[0] == b"-ERR Message 2 was removed by another session"
    assert pop.retr(1)[0].startswith(b"+OK")
    pop.dele(2)  # marking a vanished message is harmless
    pop.dele(3)
    assert pop.quit().startswith(b"+OK Logging out")
    assert pop3env.uids() == [uids[0]]


def test_retr_after_imap_renamed_the_file(pop3env):
    uid = pop3env.deliver(message(1))
    port = pop3env.serve()
    pop = pop3env.client(port)
    with pop3env.inbox() as imap:  # flag changes rename the maildir file (":2,FS")
        imap.store_flags([uid], {"\\Flagged", "\\Seen"}, "add")
    resp, lines, octets = pop.retr(1)
    assert resp == b"+OK %d octets" % octets and lines[1] == b"Subject: test 1"
    pop.quit()


def test_quit_leaves_messages_flagged_deleted_by_imap_alone(pop3env):
    uids = [pop3env.deliver(message(n)) for n in range(2)]
    port = pop3env.serve()
    pop = pop3env.client(port)
    with pop3env.inbox() as imap:
        imap.store_flags([uids[0]], {"\\Deleted"}, "add")
    pop.dele(2)
    pop.quit()
    assert pop3env.uids() == [uids[0]]  # the IMAP user's \Deleted message waits for its EXPUNGE


# -- TOP, UIDL, large messages --------------------------------------------------------------------


def test_top(pop3env):
    pop3env.deliver(b"Subject: t\n\n.one\ntwo\nthree\n")
    port = pop3env.serve()
    pop = pop3env.client(port)
    assert pop.top(1, 0)[1] == [b"Subject: t", b""]
    assert pop.top(1, 2)[1] == [b"Subject: t", b"", b".one", b"two"]
    pop.quit()


def test_large_message_is_streamed_intact(pop3env):
    line = b"0123456789abcdefghijklmnopqrstuvwxyz.0123456789abcdefghijklmnopqrstuvwxyz\n"
    raw = b"Subject: big\n\n" + b"".join(b"." + line if i % 7 == 0 else line
                                          for i in range(120_000))  # about 9 MB
    pop3env.deliver(raw)
    port = pop3env.serve()
    pop = pop3env.client(port)
    size = int(pop.list(1).split()[2])
    resp, lines, octets = pop.retr(1)
    data = received(lines)
    assert octets == size == len(data)
    assert hashlib.sha256(data).digest() == hashlib.sha256(raw.replace(b"\n", b"\r\n")).digest()
    pop.quit()


def test_retr_to_a_client_that_does_not_read_is_paused(pop3env):
    raw = b"Subject: big\n\n" + (b"y" * 99 + b"\n") * 200_000  # 20 MB
    pop3env.deliver(raw)
    port = pop3env.serve()
    pop = pop3env.client(port)
    pop.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    pop._putcmd("RETR 1")
    time.sleep(1.0)  # the client reads nothing: the server must stop reading the file

    def progress():
        [protocol] = [p for p in pop3env.factories[0].protocols if p.session is not None]
        return protocol.streamed, protocol._producer is not None and protocol._producer.paused

    streamed, paused = reactor_thread.call(progress)
    assert paused and streamed < 8_000_000, streamed
    time.sleep(0.3)
    assert reactor_thread.call(progress)[0] == streamed  # no progress while paused
    assert pop._getresp().startswith(b"+OK")
    total = 0
    while (line := pop.file.readline()) != b".\r\n":
        total += len(line)
    assert total == len(raw) + raw.count(b"\n")
    pop.quit()


def test_uidl_stable_across_sessions(pop3env):
    for n in range(3):
        pop3env.deliver(message(n))
    port = pop3env.serve()
    pop = pop3env.client(port)
    first = pop.uidl()[1]
    assert pop.uidl(2) == b"+OK " + first[1]
    pop.quit()
    pop = pop3env.client(port)
    assert pop.uidl()[1] == first
    pop.quit()
    with pop3env.inbox() as mailbox:
        v = mailbox.uidvalidity
        expected = [b"%d %08x%08x" % (n, uid, v) for n, uid in enumerate(pop3env.uids(), 1)]
    assert first == expected


def test_uidl_format_is_configurable(pop3env):
    uid = pop3env.deliver(message(1))
    port = pop3env.serve(settings=Pop3Settings(uidl_format="%v.%u"))
    pop = pop3env.client(port)
    with pop3env.inbox() as mailbox:
        assert pop.uidl(1) == b"+OK 1 %d.%d" % (mailbox.uidvalidity, uid)
    pop.quit()


# -- pipelining and bad input ---------------------------------------------------------------------


def test_pipelined_commands_are_answered_in_order(pop3env):
    pop3env.deliver(message(1, b"line\n.dot\n"))
    pop3env.deliver(message(2))
    port = pop3env.serve(tls="implicit")
    raw = pop3env.raw(port)
    raw.starttls(pop3env.client_ssl)
    assert raw.line().startswith(b"+OK")
    raw.send(f"CAPA\r\nUSER {pop3env.user}\r\nPASS {pop3env.password}\r\n".encode() +
             b"STAT\r\nLIST\r\nUIDL 2\r\nRETR 1\r\nTOP 2 0\r\nDELE 1\r\nNOOP\r\nQUIT\r\n")
    assert raw.line() == b"+OK Capability list follows"
    assert b"PIPELINING" in raw.multiline()
    assert raw.line() == b"+OK"
    assert raw.line().startswith(b"+OK Logged in, 2 messages")
    stat = raw.line()
    assert stat.startswith(b"+OK 2 ")
    assert raw.line().startswith(b"+OK 2 messages")
    listing = raw.multiline()
    assert [item.split()[0] for item in listing] == [b"1", b"2"]
    assert raw.line().startswith(b"+OK 2 ")
    assert raw.line() == b"+OK %s octets" % listing[0].split()[1]
    assert raw.multiline()[-2:] == [b"line", b".dot"]
    assert raw.line() == b"+OK Top of message follows"
    assert raw.multiline()[-1] == b""
    assert raw.line().startswith(b"+OK Message 1 marked")
    assert raw.line() == b"+OK"
    assert raw.read_until_closed() == b"+OK Logging out, 1 messages deleted\r\n"
    assert len(pop3env.uids()) == 1


def test_bad_commands_get_clear_errors(pop3env):
    pop3env.deliver(message(1))
    port = pop3env.serve()
    pop = pop3env.client(port, login=False)
    for command, error in [
        ("STAT", b"-ERR STAT is not allowed before login"),
        ("PASS x", b"-ERR No user name given, send USER first"),
        ("APOP a b", b"-ERR APOP is not supported"),
        ("AUTH CRAM-MD5", b"-ERR Unsupported authentication mechanism"),
        ("XYZZY", b"-ERR Unknown command XYZZY"),
    ]:
        with pytest.raises(poplib.error_proto) as info:
            pop._shortcmd(command)
        assert info.value.args[0].startswith(error)
    pop.user(pop3env.user)
    pop.pass_(pop3env.password)
    for command, error in [
        ("RETR 2", b"-ERR No such message"),
        ("RETR x", b"-ERR Invalid message number"),
        ("TOP 1", b"-ERR TOP needs"),
        ("LIST 1 2", b"-ERR Too many arguments"),
        ("USER x", b"-ERR Already logged in"),
        ("STLS", b"-ERR STLS is only allowed before login"),
        ("NOOP " + "x" * 3000, b"-ERR Line too long"),
    ]:
        with pytest.raises(poplib.error_proto) as info:
            pop._shortcmd(command)
        assert info.value.args[0].startswith(error)
    assert pop.noop() == b"+OK"
    pop.quit()


def test_too_many_bad_commands_disconnect(pop3env):
    port = pop3env.serve(settings=Pop3Settings(max_bad_commands=3))
    raw = pop3env.raw(port)
    raw.line()
    raw.send(b"A\r\nB\r\nC\r\nD\r\n")
    data = raw.read_until_closed()
    assert data.count(b"-ERR") == 3 and b"closing connection" in data


def test_idle_timeout_closes_without_update(pop3env):
    uids = [pop3env.deliver(message(1))]
    port = pop3env.serve(settings=Pop3Settings(idle_timeout=0.5))
    raw = pop3env.raw(port)
    raw.line()
    raw.send(b"STLS\r\n")
    raw.line()
    raw.starttls(pop3env.client_ssl)
    raw.send(f"USER {pop3env.user}\r\nPASS {pop3env.password}\r\nDELE 1\r\n".encode())
    assert raw.line() == b"+OK"
    assert raw.line().startswith(b"+OK Logged in")
    assert raw.line().startswith(b"+OK Message 1 marked")
    started = time.monotonic()
    assert raw.read_until_closed() == b"-ERR Disconnected for inactivity\r\n"
    assert 0.25 < time.monotonic() - started < 5
    time.sleep(0.2)
    assert pop3env.uids() == uids


def test_connections_per_ip_are_limited(pop3env):
    port = pop3env.serve(settings=Pop3Settings(max_connections_per_ip=2))
    first, second = pop3env.raw(port), pop3env.raw(port)
    assert first.line().startswith(b"+OK") and second.line().startswith(b"+OK")
    third = pop3env.raw(port)
    assert third.read_until_closed() == (
        b"-ERR [SYS/TEMP] Too many connections from your IP address\r\n")
    first.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        fourth = pop3env.raw(port)
        line = fourth.line()
        fourth.close()
        if line.startswith(b"+OK"):
            break
        time.sleep(0.05)
    assert line.startswith(b"+OK")
    second.close()


def test_maildrop_is_free_as_soon_as_quit_answers(pop3env):
    pop3env.deliver(message(1))
    port = pop3env.serve()
    for _ in range(10):
        pop = pop3env.client(port)  # never IN-USE: the lock went before "+OK Logging out"
        pop.dele(1)
        pop.rset()
        assert pop.quit().startswith(b"+OK Logging out")
