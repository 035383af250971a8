"""A maildir that came from Dovecot keeps its POP3 UIDLs (and sizes, and bytes) under pymail.

The fixture is written by hand in Dovecot's own format: ``dovecot-uidlist`` version 3 with a
gap in the UIDs and one message carrying a ``P`` (POP3 UIDL) field, file names with ``S=`` and
``W=``, messages in ``cur/`` and ``new/``. The expected UIDLs are spelled out below; when
Debian's ``dovecot-pop3d`` is installed, the same maildir (a copy) is also served by the real
Dovecot POP3 binary and its answers are compared byte for byte with pymail's.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pymail.pop3.settings import Pop3Settings

DOVECOT_POP3 = "/usr/lib/dovecot/pop3"  # Debian package dovecot-pop3d
USER = "carol@example.org"
PASSWORD = "carol password"
UIDVALIDITY = 1700000000  # 0x6553f100

# (uid, base name, subdir, info, P field, raw message)
FIXTURE = [
    (1, "1700000000.M11P101.oldhost", "cur", ":2,S", None,
     b"From: a@example.com\nSubject: first\n\nbody one\n"),
    (2, "1700000050.M12P101.oldhost", "cur", ":2,", "UID2-1069959287",
     b"From: b@example.com\nSubject: second\n\n.a line with a dot\n..two\nend\n"),
    (4, "1700000100.M13P101.oldhost", "new", "", None,
     b"From: c@example.com\r\nSubject: third\r\n\r\ncrlf body\r\n"),
]

# What Dovecot 2.3 shows with pop3_uidl_format = %08Xu%08Xv (its default): the P field when
# present, else UID and UIDVALIDITY as 8 lower-case hex digits each (var-expand's %X is %llx).
EXPECTED_UIDLS = ["000000016553f100", "UID2-1069959287", "000000046553f100"]


def write_dovecot_maildir(maildir: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    lines = [f"3 V{UIDVALIDITY} N5 G4c7a2f0e9d8b4e1f8a6b5c4d3e2f1a0b\n"]
    for uid, base, subdir, info, pop3_uidl, raw in FIXTURE:
        size = len(raw)
        vsize = size + raw.count(b"\n") - raw.count(b"\r\n")
        name = f"{base},S={size},W={vsize}"
        (maildir / subdir / (name + info)).write_bytes(raw)
        extra = f" P{pop3_uidl}" if pop3_uidl else ""
        lines.append(f"{uid}{extra} :{name}\n")
    (maildir / "dovecot-uidlist").write_text("".join(lines))


@pytest.fixture
def dovecot_user(pop3env):
    pop3env.directory.add_user(USER, PASSWORD)
    local, domain = USER.split("@")
    maildir = Path(pop3env.store.mail_root) / domain / local / "Maildir"
    write_dovecot_maildir(maildir)
    return maildir


def pymail_answers(pop3env, port: int) -> dict[str, bytes]:
    """The raw multi-line answers of pymail for UIDL, LIST and each RETR."""
    raw = pop3env.raw(port)
    raw.starttls(pop3env.client_ssl)
    raw.line()
    raw.send(f"USER {USER}\r\nPASS {PASSWORD}\r\n".encode())
    assert raw.line() == b"+OK"
    assert raw.line().startswith(b"+OK Logged in")
    answers = {}
    for command in ["UIDL", "LIST"] + [f"RETR {n}" for n in range(1, len(FIXTURE) + 1)]:
        raw.send(command.encode() + b"\r\n")
        status = raw.line()
        assert status.startswith(b"+OK"), (command, status)
        body = []
        while (line := raw.line()) != b".":
            body.append(line)
        answers[command] = b"\r\n".join(body)
    raw.send(b"QUIT\r\n")
    raw.read_until_closed()
    return answers


def test_uidls_of_a_dovecot_maildir(pop3env, dovecot_user):
    port = pop3env.serve(tls="implicit")
    pop = pop3env.client_ssl_implicit(port)
    pop.user(USER)
    pop.pass_(PASSWORD)
    assert pop.uidl()[1] == [f"{n} {uidl}".encode() for n, uidl in enumerate(EXPECTED_UIDLS, 1)]
    assert pop.uidl(2) == b"+OK 2 UID2-1069959287"
    sizes = [int(line.split()[1]) for line in pop.list()[1]]
    assert sizes == [len(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
                     for *_, raw in FIXTURE]
    pop.quit()
    # Stable across sessions, and not disturbed by a new delivery.
    pop3env.deliver(b"Subject: new\n\nnew\n", user=USER)
    pop = pop3env.client_ssl_implicit(port)
    pop.user(USER)
    pop.pass_(PASSWORD)
    uidls = [line.split()[1].decode() for line in pop.uidl()[1]]
    assert uidls[:3] == EXPECTED_UIDLS
    assert uidls[3] == "%08x%08x" % (5, UIDVALIDITY)
    pop.quit()


def test_upper_case_format_letters_follow_dovecot(pop3env, dovecot_user):
    port = pop3env.serve(settings=Pop3Settings(uidl_format="%Xv-%u"))
    pop = pop3env.client(port, user=USER, password=PASSWORD)
    assert pop.uidl(1) == b"+OK 1 6553f100-1"
    assert pop.uidl(2) == b"+OK 2 UID2-1069959287"  # the P field wins over any format
    pop.quit()


def _dovecot_answers(maildir: Path) -> dict[str, bytes]:
    """Run Debian's Dovecot POP3 binary (pre-authenticated, stdin/stdout) on ``maildir``."""
    work = Path(tempfile.mkdtemp(prefix="pymail-dovecot-"))
    try:
        os.chmod(work, 0o755)  # the mail process runs as an unprivileged user
        copy = work / "Maildir"
        shutil.copytree(maildir, copy)
        (work / "run").mkdir()
        if os.geteuid() == 0:  # Dovecot refuses mail access as root
            user = pwd.getpwnam("nobody")
            uid_name, gid_name = user.pw_name, grp.getgrgid(user.pw_gid).gr_name
            for path in [work, *work.rglob("*")]:
                os.chown(path, user.pw_uid, user.pw_gid)
        else:
            uid_name = pwd.getpwuid(os.getuid()).pw_name
            gid_name = grp.getgrgid(os.getgid()).gr_name
        conf = work / "dovecot.conf"
        conf.write_text(
            f"ssl = no\nlog_path = /dev/stderr\nbase_dir = {work / 'run'}\n"
            f"mail_location = maildir:{copy}\nmail_uid = {uid_name}\nmail_gid = {gid_name}\n"
            "first_valid_uid = 1\nfirst_valid_gid = 1\npop3_uidl_format = %08Xu%08Xv\n")
        commands = ["UIDL", "LIST"] + [f"RETR {n}" for n in range(1, len(FIXTURE) + 1)]
        script = "".join(c + "\r\n" for c in commands + ["QUIT"]).encode()
        proc = subprocess.run([DOVECOT_POP3, "-c", str(conf)], input=script,
                              capture_output=True, timeout=30,
                              env={"USER": USER, "HOME": str(work), "PATH": os.defpath})
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = proc.stdout.split(b"\r\n")
    answers, i = {}, 0
    for command in commands:
        assert lines[i].startswith(b"+OK"), (command, lines[i], proc.stderr)
        end = lines.index(b".", i + 1)
        answers[command] = b"\r\n".join(lines[i + 1:end])
        i = end + 1
    return answers


@pytest.mark.skipif(not os.path.exists(DOVECOT_POP3),
                    reason="Debian package dovecot-pop3d is not installed")
def test_same_answers_as_real_dovecot(pop3env, dovecot_user):
    dovecot = _dovecot_answers(dovecot_user)
    assert dovecot["UIDL"].split(b"\r\n") == [
        f"{n} {uidl}".encode() for n, uidl in enumerate(EXPECTED_UIDLS, 1)]
    port = pop3env.serve(tls="implicit")
    ours = pymail_answers(pop3env, port)
    assert ours == dovecot
