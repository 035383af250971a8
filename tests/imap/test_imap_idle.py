"""IDLE (RFC 2177): a delivery made by another process is pushed within a second; DONE ends it;
a client dropping the connection mid-IDLE is a normal end of session."""

import subprocess
import sys
import textwrap
import time

from tests.imap.conftest import USER, deliver, message


def deliver_in_subprocess(mail_root, raw):
    code = textwrap.dedent(f"""
        from pymail.store import Store
        Store({str(mail_root)!r}, fsync=False).account({USER!r}).deliver({raw!r})
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_idle_push_from_other_process(raw, store):
    deliver(store, message("first"))
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    r.send(b"i IDLE\r\n")
    assert r.line() == b"+ idling\r\n"
    deliver_in_subprocess(store.mail_root, message("pushed"))
    delivered = time.monotonic()
    r.sock.settimeout(1.5)
    lines = [r.line(), r.line()]
    seen_after = time.monotonic() - delivered
    assert lines[0] == b"* 2 EXISTS\r\n" and lines[1] == b"* 2 RECENT\r\n"
    assert seen_after < 1.0, seen_after
    r.send(b"DONE\r\n")
    assert r.line() == b"i OK IDLE terminated\r\n"
    r.sock.settimeout(10)
    r.send(b"f FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
    assert b"Subject: pushed" in b"".join(r.until(b"f"))


def test_idle_flag_change_and_expunge(raw, connect, store):
    deliver(store, message("a"))
    deliver(store, message("b"))
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    r.send(b"i IDLE\r\n")
    assert r.line() == b"+ idling\r\n"
    other = connect()
    other.select("INBOX")
    other.store("1", "+FLAGS.SILENT", "(\\Deleted)")
    other.expunge()
    r.sock.settimeout(3)
    assert r.line() == b"* 1 EXPUNGE\r\n"
    r.send(b"done\r\n")
    assert r.line() == b"i OK IDLE terminated\r\n"


def test_idle_without_done_then_drop(raw, server, store):
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\ni IDLE\r\n")
    r.until(b"s")
    assert r.line() == b"+ idling\r\n"
    r.close()  # Thunderbird does this on quit
    time.sleep(0.3)
    assert server.factory.per_ip == {} and server.factory.per_user == {}


def test_idle_bad_continuation(raw):
    r = raw(login=True)
    r.send(b"i IDLE\r\n")
    assert r.line() == b"+ idling\r\n"
    r.send(b"x NOOP\r\n")
    assert r.line().startswith(b"i BAD")
    r.send(b"y NOOP\r\n")
    assert r.until(b"y")[-1].startswith(b"y OK")


def test_many_idlers_share_one_poller(raw, server, store):
    clients = []
    for _ in range(20):
        r = raw(login=True)
        r.send(b"s SELECT INBOX\r\ni IDLE\r\n")
        r.until(b"s")
        assert r.line() == b"+ idling\r\n"
        clients.append(r)
    assert len(server.factory.idle_hub.sessions) == 20
    deliver(store, message("to all"))
    for r in clients:
        r.sock.settimeout(3)
        assert r.line() == b"* 1 EXISTS\r\n"
    for r in clients:
        r.send(b"DONE\r\n")
        lines = r.until(b"i")
        assert lines[-1] == b"i OK IDLE terminated\r\n"
    time.sleep(0.2)
    assert server.factory.idle_hub.sessions == set()


def test_folder_stamp_changes_with_mail_and_flags(store):
    from pymail.imap.idlehub import folder_stamp

    deliver(store, message("one"))
    with store.account(USER).mailbox("INBOX") as mb:
        first = folder_stamp(mb)
        assert first is not None and folder_stamp(mb) == first
        deliver(store, message("two"))
        second = folder_stamp(mb)
        assert second != first
        mb.store_flags([1], ["\\Flagged"], "add")
        assert folder_stamp(mb) != second
