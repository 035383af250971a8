"""The POP3 maildrop lock: exclusive across processes, gone with a crashed holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import pymail

from pymail.pop3.lock import LOCK_NAME, MaildropInUse, SessionLock

HOLDER = textwrap.dedent("""
    import sys, time
    from pymail.pop3.lock import SessionLock
    lock = SessionLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


def test_second_lock_in_process_is_refused_until_release(tmp_path):
    first, second = SessionLock(tmp_path), SessionLock(tmp_path)
    first.acquire()
    with pytest.raises(MaildropInUse) as info:
        second.acquire()
    assert info.value.reply() == b"-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n"
    first.release()
    second.acquire()
    assert second.held
    second.release()
    assert (tmp_path / LOCK_NAME).exists()  # the file stays; only the flock matters


def test_lock_held_by_another_process_and_freed_when_it_dies(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(pymail.__file__)))
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(MaildropInUse):
            SessionLock(tmp_path).acquire()
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # a crash: no clean release
        proc.wait(timeout=10)
    lock = SessionLock(tmp_path)
    lock.acquire()  # a stale lock file does not lock the user out
    lock.release()
