"""A private Dovecot (Debian's dovecot-imapd) and pymail on the same maildir: both must see the
same UIDs, UIDVALIDITY, flags and keywords, whichever of them wrote last.

Skips only when the ``dovecot`` binary is absent (bin/test installs dovecot-imapd)."""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from pymail.store import Store

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
pytestmark = pytest.mark.skipif(DOVECOT is None, reason="dovecot binary not installed")

USER, PASSWORD = "live@example.org", "secret-pw"

CONF = """\
base_dir = {top}/run
state_dir = {top}/state
log_path = {top}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{mail}/%d/%n/Maildir
mail_fsync = always
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {top}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={top}/home/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dovecot():
    top = tempfile.mkdtemp(prefix="pymail-dovecot-")
    os.chmod(top, 0o755)
    mail = os.path.join(top, "mail")
    os.makedirs(mail)
    if os.getuid() == 0:
        uid, gid = 65534, 65534           # Dovecot refuses to open mail as root
    else:
        uid, gid = os.getuid(), os.getgid()
    port = _free_port()
    conf = os.path.join(top, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(CONF.format(top=top, mail=mail, uid=uid, gid=gid, port=port))
    with open(os.path.join(top, "passwd"), "w") as f:
        f.write(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
                    log = open(os.path.join(top, "dovecot.log")).read() if os.path.exists(
                        os.path.join(top, "dovecot.log")) else ""
                    pytest.fail(f"dovecot did not start: {out}\n{log}")
                time.sleep(0.1)

        def give_to_dovecot():
            for dirpath, dirnames, filenames in os.walk(mail):
                for name in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, name), uid, gid)
                os.lchown(dirpath, uid, gid)

        yield {"port": port, "mail": mail, "top": top, "own": give_to_dovecot}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(top, ignore_errors=True)


def _imap(port):
    conn = imaplib.IMAP4("127.0.0.1", port, timeout=15)
    conn.login(USER, PASSWORD)
    return conn


def _fetch_flags(conn) -> dict[int, frozenset]:
    typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK", data
    out = {}
    for item in data:
        if not item:
            continue
        text = item.decode() if isinstance(item, bytes) else item[0].decode()
        m = re.search(r"UID (\d+)", text)
        f = re.search(r"FLAGS \(([^)]*)\)", text)
        if m and f:
            out[int(m.group(1))] = frozenset(x for x in f.group(1).split() if x != "\\Recent")
    return out


def _status(conn, box="INBOX"):
    typ, data = conn.status(box, "(UIDVALIDITY UIDNEXT MESSAGES)")
    assert typ == "OK", data
    text = data[0].decode()
    return {k: int(v) for k, v in re.findall(r"(UIDVALIDITY|UIDNEXT|MESSAGES) (\d+)", text)}


def test_dovecot_and_pymail_agree(dovecot):
    store = Store(dovecot["mail"])
    acct = store.account(USER)
    acct.ensure()
    for i in range(4):
        acct.deliver(f"From: a@b.c\nSubject: p{i}\n\nbody {i}\n".encode())
    box = acct.mailbox("INBOX")
    box.store_flags([1], ["\\Seen", "Work"], "add")
    box.store_flags([2], ["\\Flagged", "$Label1"], "add")
    box.store_flags([3], ["\\Deleted"], "add")
    box.expunge()
    ours = {r.uid: r.flags for r in box.records()}
    dovecot["own"]()

    # Dovecot opens pymail's maildir: same UIDVALIDITY, UIDs, flags and keywords
    conn = _imap(dovecot["port"])
    try:
        st = _status(conn)
        assert st["UIDVALIDITY"] == box.uidvalidity
        assert st["UIDNEXT"] == box.uidnext
        assert st["MESSAGES"] == 3
        conn.select("INBOX")
        assert _fetch_flags(conn) == ours
        # Dovecot changes flags and appends a message
        typ, _ = conn.uid("STORE", "4", "+FLAGS", "(\\Answered Dovecotkw)")
        assert typ == "OK"
        typ, data = conn.append("INBOX", "(\\Seen)", None, b"From: d@e.f\r\nSubject: dc\r\n\r\nhi\r\n")
        assert typ == "OK"
        dovecot_uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
        theirs = _fetch_flags(conn)
        conn.logout()
    finally:
        try:
            conn.shutdown()
        except Exception:
            pass

    # pymail sees Dovecot's changes with Dovecot's UID
    res = box.sync()
    assert dovecot_uid == 5
    assert res.added == [5] and 4 in res.flag_changes
    mine = {r.uid: r.flags for r in box.records()}
    assert mine == theirs
    assert mine[4] == frozenset({"\\Answered", "Dovecotkw"})
    with box.open_message(5) as f:
        assert b"Subject: dc" in f.read()

    # and pymail's next delivery is seen by Dovecot under the UID pymail gave it
    r = acct.deliver(b"From: a@b.c\nSubject: late\n\nx\n", flags=["Dovecotkw"])
    assert r.uid == 6
    dovecot["own"]()
    conn = _imap(dovecot["port"])
    try:
        conn.select("INBOX")
        flags = _fetch_flags(conn)
        assert flags[6] == frozenset({"Dovecotkw"})
        assert set(flags) == {1, 2, 4, 5, 6}
        assert _status(conn)["UIDVALIDITY"] == box.uidvalidity
        conn.logout()
    finally:
        try:
            conn.shutdown()
        except Exception:
            pass
    # Dovecot found nothing to complain about in the files pymail wrote
    with open(os.path.join(dovecot["top"], "dovecot.log"), errors="replace") as f:
        log = f.read().splitlines()
    assert any("starting up" in line for line in log), log
    problems = [line for line in log if "Error" in line or "Panic" in line or "Warning" in line]
    assert problems == []


def test_dovecot_sees_pymail_folders_and_subscriptions(dovecot):
    acct = Store(dovecot["mail"]).account(USER)
    acct.ensure()
    acct.create_mailbox("Work/2024")
    acct.create_mailbox("Entwürfe")
    acct.subscribe("Work/2024")
    acct.unsubscribe("Junk")
    acct.deliver(b"Subject: nested\n\nx\n", mailbox="Work/2024")
    dovecot["own"]()
    conn = _imap(dovecot["port"])
    try:
        typ, data = conn.list()
        assert typ == "OK"
        listed = {line.decode().rsplit(" ", 1)[1].strip('"') for line in data}
        assert {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Work/2024",
                "Entw&APw-rfe"} <= listed
        typ, data = conn.lsub()
        assert typ == "OK"
        subscribed = {line.decode().rsplit(" ", 1)[1].strip('"') for line in data}
        assert {"INBOX", "Sent", "Drafts", "Trash", "Archive", "Work/2024"} <= subscribed
        assert "Junk" not in subscribed
        assert _status(conn, "Work/2024")["MESSAGES"] == 1
        assert _status(conn, "Work/2024")["UIDVALIDITY"] == acct.mailbox("Work/2024").uidvalidity
        # a folder Dovecot creates is one pymail lists
        typ, _ = conn.create("FromDovecot/Child")
        assert typ == "OK"
        typ, _ = conn.subscribe("FromDovecot/Child")
        assert typ == "OK"
        conn.logout()
    finally:
        try:
            conn.shutdown()
        except Exception:
            pass
    infos = {i.name: i for i in acct.list_mailboxes()}
    assert "FromDovecot/Child" in infos
    assert infos["FromDovecot/Child"].subscribed
    assert acct.mailbox("FromDovecot/Child").count() == 0
