"""QueueDir.commit: both files and their names durable before it returns; failures leave no
envelope and no temporary file."""

from __future__ import annotations

import os
import threading

import pytest

from pymail.queue.envelope import Envelope, Recipient
from pymail.queue.spool import QueueDir


def _envelope(qd: QueueDir) -> Envelope:
    return Envelope(queue_id=qd.new_id(), sender="a@ext.test",
                    recipients=[Recipient("alice@example.org", True, "alice@example.org")],
                    created=0.0, size=5)


def test_commit_writes_message_and_envelope(tmp_path):
    qd = QueueDir(tmp_path)
    env = _envelope(qd)
    qd.tmp_path(env.queue_id).write_bytes(b"hello")
    qd.commit(env, qd.tmp_path(env.queue_id))
    assert qd.ids() == [env.queue_id]
    assert qd.load(env.queue_id).sender == "a@ext.test"
    assert qd.data_path(env.queue_id).read_bytes() == b"hello"
    assert not [n for n in os.listdir(qd.msg) if n.endswith(".tmp")]


def test_commit_fsyncs_message_envelope_and_folder_before_rename(tmp_path, monkeypatch):
    qd = QueueDir(tmp_path)
    env = _envelope(qd)
    qd.tmp_path(env.queue_id).write_bytes(b"hello")
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        with lock:
            events.append(("fsync", os.path.basename(name), threading.get_ident()))
        return real_fsync(fd)

    def rename(src, dst):
        with lock:
            events.append(("rename", os.path.basename(str(dst)), threading.get_ident()))
        return real_rename(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    qd.commit(env, qd.tmp_path(env.queue_id))
    kinds = [(e[0], e[1]) for e in events]
    rename_at = kinds.index(("rename", f"{env.queue_id}.json"))
    before = kinds[:rename_at]
    assert ("fsync", env.queue_id) in before  # the message file
    assert any(k == "fsync" and n.endswith(".tmp") for k, n in before)  # the envelope
    assert kinds[rename_at + 1:] == [("fsync", "msg")]  # then the folder


def test_failed_message_fsync_leaves_no_envelope(tmp_path, monkeypatch):
    qd = QueueDir(tmp_path)
    env = _envelope(qd)
    qd.tmp_path(env.queue_id).write_bytes(b"hello")

    real_fsync = os.fsync

    def broken(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == env.queue_id:
            raise OSError(5, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError):
        qd.commit(env, qd.tmp_path(env.queue_id))
    assert qd.ids() == []
    assert os.listdir(qd.msg) == [env.queue_id]  # an orphan message: recover() removes it


def test_failed_envelope_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    qd = QueueDir(tmp_path)
    env = _envelope(qd)
    qd.tmp_path(env.queue_id).write_bytes(b"hello")
    monkeypatch.setattr(Envelope, "to_json", lambda self: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError):
        qd.commit(env, qd.tmp_path(env.queue_id))
    assert qd.ids() == []
    assert not [n for n in os.listdir(qd.msg) if n.startswith(".")]
