"""Debian's fetchmail in "keep" mode over STLS and POP3S: a second run fetches nothing new.

fetchmail keeps the UIDLs it has seen in its idfile; with ``keep`` it leaves the mail on the
server and must not fetch it again, so this is the real-client proof that UIDLs are stable
across sessions. The certificate is checked (sslcertck against the test CA file).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


FETCHMAIL = shutil.which("fetchmail")  # Debian package fetchmail

pytestmark = pytest.mark.skipif(FETCHMAIL is None,
                                reason="Debian package fetchmail is not installed")


def run_fetchmail(pop3env, tmp_path, port: int, cert_file, implicit: bool) -> tuple[int, str]:
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        f"poll localhost via 127.0.0.1 protocol POP3 service {port} uidl\n"
        f'  user "{pop3env.user}" there with password "{pop3env.password}" is "nobody" here\n'
        f"  keep {'ssl ' if implicit else ''}sslproto 'TLS1.2+' sslcertck sslcommonname localhost\n"
        f'  sslcertfile "{cert_file}"\n'
        f'  mda "cat >> {tmp_path / "delivered"}"\n')
    os.chmod(rc, 0o600)
    proc = subprocess.run(
        [FETCHMAIL, "-f", str(rc), "--idfile", str(tmp_path / "fetchids"),
         "--pidfile", str(tmp_path / "fetchmail.pid"), "--nodetach", "-v"],
        capture_output=True, text=True, timeout=60,
        env={"HOME": str(tmp_path), "PATH": os.defpath, "LC_ALL": "C"})
    return proc.returncode, proc.stdout + proc.stderr


def delivered_subjects(tmp_path) -> list[str]:
    path = tmp_path / "delivered"
    if not path.exists():
        return []
    return [line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
            if line.startswith("Subject:")]


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_fetchmail_keep_mode_fetches_each_message_once(pop3env, tmp_path, tls_files, tls):
    for n in range(3):
        pop3env.deliver(b"From: a@example.com\nSubject: fm-%d\n\n.dot line\nbody %d\n" % (n, n))
    port = pop3env.serve(tls=tls)
    code, log = run_fetchmail(pop3env, tmp_path, port, tls_files[0], tls == "implicit")
    assert code == 0, log  # 0: mail was retrieved
    assert ("POP3> STLS" in log) == (tls == "starttls"), log
    assert "Logged in" in log, log
    assert sorted(delivered_subjects(tmp_path)) == ["fm-0", "fm-1", "fm-2"]
    assert len(pop3env.uids()) == 3  # keep: nothing removed on the server

    code, log = run_fetchmail(pop3env, tmp_path, port, tls_files[0], tls == "implicit")
    assert code == 1, log  # 1: no new mail
    assert len(delivered_subjects(tmp_path)) == 3

    pop3env.deliver(b"From: a@example.com\nSubject: fm-new\n\nlater\n")
    code, log = run_fetchmail(pop3env, tmp_path, port, tls_files[0], tls == "implicit")
    assert code == 0, log
    assert sorted(delivered_subjects(tmp_path)) == ["fm-0", "fm-1", "fm-2", "fm-new"]
    assert len(pop3env.uids()) == 4
