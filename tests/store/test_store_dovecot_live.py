"""A private Dovecot (Debian's dovecot-imapd) and pymail on the same maildir: both must see the
same UIDs, UIDVALIDITY, flags and keywords, whichever of them wrote last.

Skips only when the ``dovecot`` binary is absent (bin/test installs dovecot-imapd)."""

from __future__ import annotations

import imaplib
import os
import poplib
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
protocols = imap pop3
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
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
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
    conf = os.path.join(top, "dovecot.conf")
    with open(os.path.join(top, "passwd"), "w") as f:
        f.write(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    proc = None
    try:
        for attempt in range(3):     # a port picked here may be taken by another test meanwhile
            port, pop3_port = _free_port(), _free_port()
            with open(conf, "w") as f:
                f.write(CONF.format(top=top, mail=mail, uid=uid, gid=gid, port=port,
                                    pop3_port=pop3_port))
            proc = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
            if _wait_for_port(proc, port, deadline=time.monotonic() + 20):
                break
            _stop(proc)
        else:
            log_path = os.path.join(top, "dovecot.log")
            log = open(log_path).read() if os.path.exists(log_path) else ""
            pytest.fail(f"dovecot did not start: {proc.stdout.read().decode(errors='replace')}"
                        f"\n{log}")

        def give_to_dovecot():
            for dirpath, dirnames, filenames in os.walk(mail):
                for name in dirnames + filenames:
                    os.lchown(os.path.join(dirpath, name), uid, gid)
                os.lchown(dirpath, uid, gid)

        yield {"port": port, "pop3_port": pop3_port, "mail": mail, "top": top,
               "own": give_to_dovecot}
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(top, ignore_errors=True)


def _stop(proc) -> None:
    """SIGTERM lets the Dovecot master stop its children too; SIGKILL only as a last resort."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_for_port(proc, port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


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


def _ser(v) -> str:
    """RFC 3501 form of a string/NIL/number/list (quoted strings: the samples are ASCII)."""
    if v is None:
        return "NIL"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, bytes):
        return '"' + v.decode("latin-1").replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "(" + " ".join(_ser(x) for x in v) + ")"


def _ser_addresses(v) -> str:
    # env-from etc.: "(" 1*address ")" — no SP between addresses (RFC 3501 §9)
    return "NIL" if v is None else "(" + "".join(_ser(a) for a in v) + ")"


def _ser_envelope(env) -> str:
    parts = [_ser(env[0]), _ser(env[1])] + [_ser_addresses(a) for a in env[2:8]]
    return "(" + " ".join(parts + [_ser(env[8]), _ser(env[9])]) + ")"


def _ser_body(b) -> str:
    if isinstance(b[0], list):      # body-type-mpart = 1*body SP media-subtype [SP ext]
        k = 0
        while isinstance(b[k], list):
            k += 1
        return "(" + "".join(_ser_body(p) for p in b[:k]) + " " + " ".join(
            _ser(x) for x in b[k:]) + ")"
    items = [_ser(x) for x in b]
    if (b[0] or b"").lower() == b"message" and (b[1] or b"").lower() == b"rfc822":
        items[7] = _ser_envelope(b[7])
        items[8] = _ser_body(b[8])
    return "(" + " ".join(items) + ")"


PARSE_SAMPLES = [
    b"From: a@b.c\r\nSubject: plain\r\n\r\nhello\r\nworld\r\n",
    b'From: "Joe Q. Public" <john.q.public@example.com>\r\n'
    b"To: Mary Smith <mary@x.test>, jdoe@example.org\r\n"
    b"Cc: A Group:Ed Jones <c@a.test>,joe@where.test;\r\n"
    b"Subject: env\r\nDate: Fri, 21 Nov 1997 09:55:06 -0600\r\n"
    b"Message-ID: <1234@local.machine.example>\r\nIn-Reply-To: <x@y>\r\n\r\nbody\r\n",
    b'Content-Type: multipart/mixed; boundary="XX"\r\nSubject: m\r\n\r\npreamble\r\n'
    b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\nworld\r\n"
    b"--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: in\r\nFrom: i@n.er\r\n\r\nbody\r\n"
    b'--XX\r\nContent-Type: application/pdf; name="a b.pdf"\r\n'
    b'Content-Disposition: attachment; filename="a b.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\nContent-Language: en, de\r\n"
    b"Content-Location: http://x/y\r\nContent-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    b"Content-ID: <id1@x>\r\nContent-Description: a file\r\n\r\nAAAA\r\n--XX--\r\nepilogue\r\n",
    b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n"
    b'\r\nplain\r\n--b\r\nContent-Type: text/html; charset="us-ascii"\r\n\r\n<p>x</p>\r\n--b--\r\n',
    b"Subject: lf only\n\nline1\nline2\n",
    b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: a\r\n\r\nx\r\n--d--\r\n",
    b"Content-Type: text/plain; charset=iso-8859-1; format=flowed\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n",
    b"Content-Type: image/png\r\nContent-Disposition: inline\r\n\r\nxx",
    b"Subject: no final newline\r\n\r\nabc",
    b"Subject: =?utf-8?q?caf=C3=A9?=\r\nFrom: a@b.c (Comment Name)\r\nSender:\r\n"
    b"To: undisclosed-recipients:;\r\nReply-To: <@route.one,@route.two:x@y.z>\r\n"
    b"Date: Mon, 30 Nov 2026\r\n 01:00:00 +0000\r\nSubject:   spaced   \r\n\r\nb\r\n",
    b"Content-Type: TEXT/PLAIN; CHARSET=UTF-8; name=\"a \\\"q\\\" b\"\r\n"
    b"Content-Disposition: inline\r\nContent-Language: fr\r\n\r\nx\r\n",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n",
    b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
    b"Content-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\nt\r\n--i\r\n"
    b"Content-Type: text/html\r\n\r\n<b>h</b>\r\n--i--\r\n--o\r\n"
    b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n"
    b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n\r\nzz\r\n--z--\r\n"
    b"--o--\r\n",
    b"Content-Type: application/octet-stream; name*=utf-8''%E2%82%AC.txt\r\n"
    b"Content-Disposition: attachment; filename*0=\"long\"; filename*1=\"name.txt\"\r\n\r\nx",
    b"From: Group One: ;\r\nTo: \"Smith, John\" <js@x.y>, <bare@x.y>\r\n"
    b"Cc: Bob <bob@x.y>, , bad address, Carol <carol@x.y>\r\n\r\nb\r\n",
    b"From: foo\r\nSender: foo@\r\nReply-To: <foo>\r\nTo: <>\r\nCc: @bar\r\n"
    b"Bcc: a@b, \"q\"@c (x) , d@e (first) (second)\r\n\r\nb\r\n",
    b"From: Empty Group:;\r\nTo: G: a@b, c@d;, e@f\r\nCc: \"\" <x@y>\r\n"
    b"Subject: first\r\nSubject: second\r\n\r\nb\r\n",
    b"Content-Type: message/rfc822\r\n\r\nSubject: nested\r\n\r\nbody\r\n",
    b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n"
    b"\r\nA\r\n--q\r\nContent-Type: multipart/related; boundary=r\r\n\r\n--r\r\n\r\nB\r\n"
    b"--r--\r\nepilogue text\r\n--q\r\nContent-Type: message/rfc822\r\n\r\nSubject: s\r\n"
    b"\r\nC\r\n--q--\r\n",
    b"Content-Type: text/plain; a*0=\"x\"; b=1; a*1=\"y\"; c*0*=utf-8''%41; c*1*=%42\r\n\r\nz",
    b"To: a@b,\r\nCc: , c@d\r\nBcc: <x@y> (Paren Name)\r\nFrom: \"Last, First\" (c) <f@l>\r\n"
    b"\r\nb\r\n",
    b"Subject: header only, no blank line\r\n",
    b"",
    b"Content-Type: multipart/mixed; boundary=\"a b:c\"\n\n--a b:c\nContent-Transfer-Encoding:"
    b" BASE64\nContent-Type: APPLICATION/X-Thing\n\nQUJD\n--a b:c\n"
    b"Content-Type: text/plain (a comment); charset=\"utf-8\"\n\nlf\nonly\n--a b:c--\n",
    b"Content-Type: multipart/mixed; boundary=e\r\n\r\n--e\r\n\r\n\r\n--e\r\n\r\nx\r\n\r\n"
    b"--e--",
]


def _unliteral(text: str) -> str:
    """Turn IMAP literals ({n} + n octets, as imaplib joins them) into quoted strings."""
    out, i = [], 0
    while True:
        m = re.compile(r"\{(\d+)\}").search(text, i)
        if m is None:
            out.append(text[i:])
            return "".join(out)
        n = int(m.group(1))
        value = text[m.end():m.end() + n]
        out.append(text[i:m.start()])
        out.append('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        i = m.end() + n


def test_parse_cache_matches_dovecot(dovecot):
    """ENVELOPE, BODY and BODYSTRUCTURE from pymail's parse cache equal Dovecot's answers."""
    acct = Store(dovecot["mail"]).account(USER)
    acct.ensure()
    for raw in PARSE_SAMPLES:
        acct.deliver(raw)
    box = acct.mailbox("INBOX")
    dovecot["own"]()
    conn = _imap(dovecot["port"])
    mismatches = []
    try:
        conn.select("INBOX", readonly=True)
        for uid in range(1, len(PARSE_SAMPLES) + 1):
            for item, ours in (("ENVELOPE", _ser_envelope(box.envelope(uid))),
                               ("BODY", _ser_body(box.bodystructure(uid, extended=False))),
                               ("BODYSTRUCTURE", _ser_body(box.bodystructure(uid)))):
                typ, data = conn.uid("FETCH", str(uid), f"({item})")
                assert typ == "OK", data
                text = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
                text = text.decode("latin-1")
                theirs = text[text.index(item + " ") + len(item) + 1:text.rindex(")")]
                theirs = _unliteral(theirs)
                if theirs != ours:
                    mismatches.append((uid, item, theirs, ours))
        conn.logout()
    finally:
        try:
            conn.shutdown()
        except Exception:
            pass
    for m in mismatches:      # shown with -s when something differs
        print("MISMATCH", m[0], m[1], "\n  dovecot:", m[2], "\n  pymail: ", m[3])
    assert mismatches == []


def test_pop3_uidl_and_expunge_agree_with_dovecot(dovecot):
    """Dovecot's own pop3.uidl (doveadm fetch, default pop3_uidl_format) equals
    Mailbox.pop3_uidl(); an expunge made through Dovecot reaches pymail."""
    acct = Store(dovecot["mail"]).account(USER)
    acct.ensure()
    for i in range(3):
        acct.deliver(f"Subject: u{i}\n\nx\n".encode())
    box = acct.mailbox("INBOX")
    dovecot["own"]()
    # Dovecot's POP3 server (default pop3_uidl_format %08Xu%08Xv) lists the same UIDLs
    pop = poplib.POP3("127.0.0.1", dovecot["pop3_port"], timeout=15)
    try:
        pop.user(USER)
        pop.pass_(PASSWORD)
        _, lines, _ = pop.uidl()
        theirs = [line.decode().split()[1] for line in lines]
    finally:
        pop.quit()
    assert theirs == [box.pop3_uidl(uid) for uid in (1, 2, 3)]
    assert theirs[0] == f"{1:08x}{box.uidvalidity:08x}"
    # and the same GUIDs (doveadm fetch reads them from the maildir)
    doveadm = shutil.which("doveadm") or "/usr/bin/doveadm"
    conf = os.path.join(dovecot["top"], "dovecot.conf")
    proc = subprocess.run([doveadm, "-c", conf, "fetch", "-u", USER, "uid guid",
                           "mailbox", "INBOX", "all"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    uids = [int(x) for x in re.findall(r"^uid: (\d+)$", proc.stdout, re.M)]
    guids = re.findall(r"^guid: (.*)$", proc.stdout, re.M)
    assert uids == [1, 2, 3]
    assert guids == [box.record(uid).guid for uid in uids]
    conn = _imap(dovecot["port"])
    try:
        conn.select("INBOX")
        conn.uid("STORE", "2", "+FLAGS", "(\\Deleted)")
        typ, _ = conn.expunge()
        assert typ == "OK"
        conn.logout()
    finally:
        try:
            conn.shutdown()
        except Exception:
            pass
    res = box.sync()
    assert res.expunged == [2]
    assert [r.uid for r in box.records()] == [1, 3]
    assert acct.deliver(b"Subject: after\n\nx\n").uid == 4


def _pymail_worker(mail_root: str, uid: int, gid: int, count: int) -> dict[int, str]:
    """Deliver and flag as the mail user Dovecot runs as (so Dovecot can read our files)."""
    if os.getuid() == 0:
        os.setgid(gid)
        os.setuid(uid)
    import random as _random
    rng = _random.Random(7)
    acct = Store(mail_root).account(USER)
    box = acct.mailbox("INBOX")
    got = {}
    for i in range(count):
        subject = f"pm-{i}"
        r = acct.deliver(f"From: p@m\nSubject: {subject}\n\nx\n".encode(),
                         flags=["PymailKw"] if i % 4 == 0 else [])
        got[r.uid] = subject
        box.sync()
        uids = box.uids()
        if uids:
            box.store_flags([rng.choice(uids)], ["\\Flagged"], "add")
    box.close()
    return got


def test_dovecot_and_pymail_write_at_the_same_time(dovecot):
    import multiprocessing
    import threading
    acct = Store(dovecot["mail"]).account(USER)
    acct.ensure()
    dovecot["own"]()
    uid, gid = (65534, 65534) if os.getuid() == 0 else (os.getuid(), os.getgid())
    dovecot_appended = []
    errors = []

    def dovecot_client():
        try:
            conn = _imap(dovecot["port"])
            conn.select("INBOX")
            for i in range(25):
                typ, data = conn.append("INBOX", "(\\Seen)", None,
                                        f"From: d@v\r\nSubject: dv-{i}\r\n\r\nx\r\n".encode())
                assert typ == "OK", data
                dovecot_appended.append(int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1)))
                conn.uid("STORE", str(dovecot_appended[-1]), "+FLAGS", "(\\Answered)")
                conn.noop()
            conn.logout()
        except Exception as e:      # reported below, with the main thread's assertions
            errors.append(repr(e))

    t = threading.Thread(target=dovecot_client, daemon=True)
    t.start()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        ours = pool.apply_async(_pymail_worker, (dovecot["mail"], uid, gid, 25)).get(timeout=120)
    t.join(timeout=120)
    assert not t.is_alive() and errors == []
    assert len(ours) == 25 and len(dovecot_appended) == 25
    assert not set(ours) & set(dovecot_appended), "a UID was given twice"

    conn = _imap(dovecot["port"])
    try:
        conn.select("INBOX")
        theirs_flags = _fetch_flags(conn)
        typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        subjects = {}
        for item in data:
            if isinstance(item, tuple):
                m = re.search(rb"UID (\d+)", item[0])
                subjects[int(m.group(1))] = item[1].decode().split(":", 1)[1].strip()
        conn.logout()
    finally:
        try:
            conn.shutdown()
        except Exception:
            pass
    box = acct.mailbox("INBOX")
    box.sync()
    mine = {r.uid: r.flags for r in box.records()}
    assert mine == theirs_flags
    expected = dict(ours)
    expected.update({u: f"dv-{i}" for i, u in enumerate(dovecot_appended)})
    assert subjects == expected
    for u, subject in expected.items():
        with box.open_message(u) as f:
            assert f"Subject: {subject}".encode() in f.read()
    with open(os.path.join(dovecot["top"], "dovecot.log"), errors="replace") as f:
        problems = [line for line in f if "Error" in line or "Panic" in line or "Warning" in line]
    assert problems == []
