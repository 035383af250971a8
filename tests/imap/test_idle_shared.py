"""IDLE sessions of one folder share one index read per poll (pymail.store.changeset) and hold
no SQLite connection while they wait; every one of them still gets exactly the untagged
responses RFC 3501 / RFC 7162 / RFC 5267 ask for."""

import os
import re
import subprocess
import sys
import textwrap
import time

from tests.imap.conftest import USER, deliver, message



def open_connections() -> int:
    """Open SQLite connections in this process (the server runs in it).  File descriptors do
    not tell: SQLite keeps a closed connection's descriptor while another connection of the
    process holds locks on the same file (POSIX locks are per process) and reuses it later."""
    import gc
    import sqlite3

    n = 0
    for obj in gc.get_objects():
        if isinstance(obj, sqlite3.Connection):
            try:
                obj.total_changes
            except sqlite3.ProgrammingError:  # closed
                continue
            n += 1
    return n


def inotify_fds() -> int:
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify"
        except OSError:
            continue
    return n


def run_in_subprocess(mail_root, code):
    prog = textwrap.dedent(f"""
        from pymail.store import Store
        acct = Store({str(mail_root)!r}, fsync=False).account({USER!r})
    """) + textwrap.dedent(code)
    subprocess.run([sys.executable, "-c", prog], check=True, timeout=60)


def start_idle(raw, before=b""):
    r = raw(login=True)
    if before:
        r.send(before)
        r.until(b"e")
    r.send(b"s SELECT INBOX\r\n")
    lines = r.until(b"s")
    r.send(b"i IDLE\r\n")
    assert r.line() == b"+ idling\r\n"
    r.sock.settimeout(3)
    return r, lines


def lines_until(r, pattern: bytes, limit=10) -> list[bytes]:
    out = []
    for _ in range(limit):
        line = r.line()
        out.append(line)
        if re.search(pattern, line):
            return out
    raise AssertionError(f"no {pattern!r} in {out!r}")


def test_idling_sessions_hold_no_index_connection(raw, server, store):
    deliver(store, message("one"))
    before = open_connections()
    clients = [start_idle(raw)[0] for _ in range(6)]
    # at most one more: the connection the process keeps per index (store/walkeeper.py
    # keep_open), never one per session
    deadline = time.monotonic() + 3
    while open_connections() > before + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert open_connections() <= before + 1
    idle = open_connections()
    # the next command reopens the connection and sees the mailbox as before
    r = clients[0]
    r.send(b"DONE\r\n")
    assert r.line() == b"i OK IDLE terminated\r\n"
    r.send(b"f FETCH 1 (FLAGS)\r\n")
    assert r.until(b"f")[-1].startswith(b"f OK")
    assert open_connections() == idle + 1


def test_one_delivery_reaches_every_session_recent_in_exactly_one(raw, server, store):
    deliver(store, message("first"))
    opened = [start_idle(raw) for _ in range(5)]
    base = [int(next(ln for ln in sel if ln.endswith(b" RECENT\r\n")).split()[1])
            for _, sel in opened]
    assert sorted(base) == [0, 0, 0, 0, 1]  # the first SELECT claimed message 1
    run_in_subprocess(store.mail_root, f"acct.deliver({message('pushed')!r})")
    recents = []
    for r, _ in opened:
        got = lines_until(r, rb"RECENT")
        assert b"* 2 EXISTS\r\n" in got
        recents.append(int(got[-1].split()[1]))
    gained = [n - b for n, b in zip(recents, base)]
    assert sorted(gained) == [0, 0, 0, 0, 1], (base, recents)  # RFC 3501 §2.3.2
    winner = opened[gained.index(1)][0]
    for r, _ in opened:
        r.send(b"DONE\r\n")
        assert r.line() == b"i OK IDLE terminated\r\n"
        r.send(b"f FETCH 2 (FLAGS)\r\n")
        fetched = r.until(b"f")
        assert fetched[-1].startswith(b"f OK")
        assert (b"\\Recent" in fetched[0]) == (r is winner)


def test_flag_change_and_expunge_while_idling_condstore_and_qresync(raw, connect, server, store):
    for s in ("a", "b", "c"):
        deliver(store, message(s))
    with store.account(USER).mailbox("INBOX") as mb:
        mb.claim_recent()  # no \Recent in the FETCH lines below
    plain, _ = start_idle(raw)
    cond, cond_sel = start_idle(raw, b"e ENABLE CONDSTORE\r\n")
    qres, _ = start_idle(raw, b"e ENABLE QRESYNC\r\n")
    assert any(b"HIGHESTMODSEQ" in ln for ln in cond_sel)
    other = connect()
    other.select("INBOX")
    other.store("2", "+FLAGS.SILENT", "(\\Flagged)")
    assert lines_until(plain, rb"FETCH")[-1] == b"* 2 FETCH (FLAGS (\\Flagged))\r\n"
    got = lines_until(cond, rb"FETCH")[-1]
    assert re.fullmatch(rb"\* 2 FETCH \(FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)\r\n", got), got
    got = lines_until(qres, rb"FETCH")[-1]
    assert re.fullmatch(rb"\* 2 FETCH \(FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)\r\n", got), got

    other.store("1", "+FLAGS.SILENT", "(\\Deleted)")
    other.expunge()
    assert b"* 1 EXPUNGE\r\n" in lines_until(plain, rb"EXPUNGE")
    assert b"* 1 EXPUNGE\r\n" in lines_until(cond, rb"EXPUNGE")
    assert b"* VANISHED 1\r\n" in lines_until(qres, rb"VANISHED")
    for r in (plain, cond, qres):
        r.send(b"DONE\r\n")
        assert r.until(b"i")[-1] == b"i OK IDLE terminated\r\n"
        r.send(b"f FETCH 1:* (UID FLAGS)\r\n")
        lines = r.until(b"f")
        assert lines[0].startswith(b"* 1 FETCH (UID 2 FLAGS (\\Flagged")
        assert lines[1].startswith(b"* 2 FETCH (UID 3 ")
        assert lines[-1].startswith(b"f OK")


def test_change_from_another_process_within_a_second_for_many_sessions(raw, server, store,
                                                                     monkeypatch):
    from pymail.imap import selected
    from pymail.store.mailbox import Mailbox

    deliver(store, message("a"))
    with store.account(USER).mailbox("INBOX") as mb:
        mb.claim_recent()
    clients = [start_idle(raw)[0] for _ in range(8)]
    time.sleep(0.6)  # every session has been through one poll (and gave its connection back)
    calls = {"sync": 0, "shared": 0}
    real_sync, real_sync_from = Mailbox.sync, selected.sync_from

    def counting_sync(self):
        calls["sync"] += 1
        return real_sync(self)

    def counting_sync_from(mb, changes):
        res = real_sync_from(mb, changes)
        calls["shared"] += res is not None
        return res

    monkeypatch.setattr(Mailbox, "sync", counting_sync)
    monkeypatch.setattr(selected, "sync_from", counting_sync_from)
    run_in_subprocess(store.mail_root, """
        with acct.mailbox("INBOX") as mb:
            mb.store_flags([1], ["\\\\Seen", "work"], "add")
    """)
    done = time.monotonic()
    for r in clients:
        r.sock.settimeout(1.5)
        got = lines_until(r, rb"FETCH")
        assert got[0] == b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft work)\r\n"
        assert got[-1] == b"* 1 FETCH (FLAGS (\\Seen work))\r\n"
    assert time.monotonic() - done < 1.5
    # all eight learnt it from the one shared read, none ran a sync of its own
    assert calls["sync"] == 0 and calls["shared"] >= 8, calls


def test_updating_search_told_while_idling(raw, server, store):
    deliver(store, message("a"))
    r = raw(login=True)
    r.send(b"s SELECT INBOX\r\n")
    r.until(b"s")
    r.send(b"q SEARCH RETURN (UPDATE ALL) UNSEEN\r\n")
    assert r.until(b"q")[-1].startswith(b"q OK")
    twin, _ = start_idle(raw)
    r.send(b"i IDLE\r\n")
    assert r.line() == b"+ idling\r\n"
    r.sock.settimeout(3)
    deliver(store, message("b"))
    got = lines_until(r, rb"ADDTO")
    assert b"* 2 EXISTS\r\n" in got
    assert got[-1] == b'* ESEARCH (TAG "q") ADDTO (2 2)\r\n'
    assert b"* 2 EXISTS\r\n" in lines_until(twin, rb"EXISTS")


def test_inotify_wakes_the_poller_long_before_its_timer(make_server, store):
    """With a 30 s poll interval, a delivery by another process still arrives at once: the
    folder's new/ is watched (Linux inotify), as Dovecot does."""
    from tests.imap.conftest import PASSWORD, Raw

    deliver(store, message("a"))
    srv = make_server(idle_poll=30.0)
    before = inotify_fds()
    r = Raw(srv.port)
    try:
        r.send(f"L LOGIN {USER} {PASSWORD}\r\n".encode())
        r.until(b"L")
        r.send(b"s SELECT INBOX\r\n")
        r.until(b"s")
        r.send(b"i IDLE\r\n")
        assert r.line() == b"+ idling\r\n"
        run_in_subprocess(store.mail_root, f"acct.deliver({message('b')!r})")
        done = time.monotonic()
        r.sock.settimeout(5)
        assert r.line() == b"* 2 EXISTS\r\n"
        assert time.monotonic() - done < 1.0
        r.send(b"DONE\r\n")
        assert r.until(b"i")[-1] == b"i OK IDLE terminated\r\n"
        hub = srv.factory.idle_hub
        assert hub._folders == {} and hub._notifier is None  # the last one took the watch along
        deadline = time.monotonic() + 2
        while inotify_fds() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert inotify_fds() == before
    finally:
        r.close()


def test_each_session_is_refreshed_once_per_change(raw, server, store, monkeypatch):
    """The hub's own \\Recent claim (files renamed new/ → cur/) and the periodic look find
    nothing new in the index: they must not walk every idling session again."""
    from pymail.imap.session import Session

    deliver(store, message("a"))
    clients = [start_idle(raw)[0] for _ in range(4)]
    time.sleep(0.7)  # every newcomer has had its first look
    calls = []
    real = Session.collect_updates

    def counting(self, *a, **kw):
        calls.append(self)
        return real(self, *a, **kw)

    monkeypatch.setattr(Session, "collect_updates", counting)
    run_in_subprocess(store.mail_root, f"acct.deliver({message('b')!r})")
    for r in clients:
        assert b"* 2 EXISTS\r\n" in lines_until(r, rb"RECENT")
    time.sleep(1.5)  # the claim's renames woke the hub again; several timer ticks passed
    assert len(calls) == 4 and len(set(calls)) == 4, len(calls)
