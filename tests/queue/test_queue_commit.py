"""The queue file format and its commit: one file per message (message, then the envelope as a
checked trailer), one file fsync and one folder fsync before the 250; torn and unsealed files are
never taken for queued mail; envelope updates move to <id>.json; the older two-file layout still
works."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest

from pymail.queue.envelope import Envelope, Recipient
from pymail.queue.spool import PLAIN, SEALED, TRIED, QueueDir, QueueError, trailer


def _envelope(qd: QueueDir, qid: str | None = None) -> Envelope:
    return Envelope(queue_id=qid or qd.new_id(), sender="a@ext.test",
                    recipients=[Recipient("alice@example.org", True, "alice@example.org"),
                                Recipient("x@remote.test", False, "x@remote.test")],
                    created=0.0, size=5)


def _committed(qd: QueueDir, message: bytes = b"hello") -> Envelope:
    env = _envelope(qd)
    qd.tmp_path(env.queue_id).write_bytes(message)
    qd.commit(env, qd.tmp_path(env.queue_id))
    return env


def _mode(qd: QueueDir, qid: str) -> int:
    return stat.S_IMODE(os.stat(qd.data_path(qid)).st_mode)


def _message(qd: QueueDir, qid: str) -> bytes:
    with qd.message(qid) as path:
        return path.read_bytes()


def test_commit_seals_message_and_envelope_in_one_file(tmp_path):
    qd = QueueDir(tmp_path)
    env = _committed(qd)
    assert qd.ids() == [env.queue_id] and qd.due() == [env.queue_id]
    assert os.listdir(qd.msg) == [env.queue_id]  # no .json, no temporary file
    assert _mode(qd, env.queue_id) == SEALED
    loaded = qd.load(env.queue_id)
    assert loaded == env and not any(r.in_flight for r in loaded.recipients)
    raw = qd.data_path(env.queue_id).read_bytes()
    assert raw.startswith(b"hello") and b'"sender": "a@ext.test"' in raw
    assert _message(qd, env.queue_id) == b"hello"
    assert qd.message_length(env.queue_id) == 5
    assert [n for n in os.listdir(qd.msg) if n.startswith(".")] == []  # the copy is gone


def test_commit_order_trailer_mode_one_file_fsync_then_folder(tmp_path, monkeypatch):
    qd = QueueDir(tmp_path)
    env = _envelope(qd)
    qd.tmp_path(env.queue_id).write_bytes(b"hello")
    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    real = {name: getattr(os, name) for name in ("fsync", "fchmod", "pwrite", "rename")}

    def spy(name):
        def call(*args):
            target = args[0]
            label = os.path.basename(os.readlink(f"/proc/self/fd/{target}")) if isinstance(target, int) \
                else os.path.basename(str(args[-1]))
            with lock:
                events.append((name, label))
            return real[name](*args)
        return call

    for name in real:
        monkeypatch.setattr(os, name, spy(name))
    qd.commit(env, qd.tmp_path(env.queue_id))
    kinds = [k for k, _ in events]
    assert kinds[-3:] == ["fchmod", "fsync", "fsync"]
    assert events[-2] == ("fsync", env.queue_id) and events[-1] == ("fsync", "msg")
    assert set(kinds[:-3]) == {"pwrite"} and "rename" not in kinds
    assert kinds.count("fsync") == 2  # one file, one folder: nothing else to make durable


def test_failed_fsync_leaves_an_unsealed_orphan(tmp_path, monkeypatch):
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
    monkeypatch.undo()
    assert qd.ids() == [] and qd.due() == []
    assert _mode(qd, env.queue_id) == PLAIN
    assert qd.data_path(env.queue_id).read_bytes() == b"hello"  # no trailer left
    assert qd.recover(min_age=0) == [env.queue_id] and os.listdir(qd.msg) == []


def test_failed_envelope_serialisation_queues_nothing(tmp_path, monkeypatch):
    qd = QueueDir(tmp_path)
    env = _envelope(qd)
    qd.tmp_path(env.queue_id).write_bytes(b"hello")
    monkeypatch.setattr(Envelope, "to_json", lambda self: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError):
        qd.commit(env, qd.tmp_path(env.queue_id))
    assert qd.ids() == []
    assert not [n for n in os.listdir(qd.msg) if n.startswith(".")]


def test_commit_refuses_a_spool_file_of_the_wrong_length(tmp_path):
    qd = QueueDir(tmp_path)
    env = _envelope(qd)
    qd.tmp_path(env.queue_id).write_bytes(b"hello")
    with pytest.raises(OSError):
        qd.commit(env, qd.tmp_path(env.queue_id), message_len=4)
    assert qd.ids() == []


def test_a_message_ending_in_a_forged_trailer_is_not_queued(tmp_path):
    """An unsealed file (a crash before the fsync: no 250) is never read for an envelope, even
    when the client's own bytes end in something shaped like one."""
    qd = QueueDir(tmp_path)
    qid = qd.new_id()
    forged = _envelope(qd, qid)
    forged.recipients = [Recipient("victim@remote.test", False)]
    body = b"Subject: x\r\n\r\nhi\r\n"
    qd.tmp_path(qid).write_bytes(body + trailer(forged, len(body), 0))
    assert qd.ids() == [] and qd.due() == []
    with pytest.raises(QueueError):
        qd.load(qid)


@pytest.mark.parametrize("damage", ["cut", "envelope", "message"])
def test_torn_sealed_file_is_detected_and_set_aside(tmp_path, damage):
    qd = QueueDir(tmp_path)
    env = _committed(qd, b"Subject: x\r\n\r\n" + b"y" * 5000)
    path = qd.data_path(env.queue_id)
    raw = bytearray(path.read_bytes())
    if damage == "cut":
        raw = raw[:-30]
    elif damage == "envelope":
        raw[raw.index(b"a@ext.test")] = ord("b")
    else:
        raw[100] ^= 1
    os.chmod(path, 0o600)
    path.write_bytes(bytes(raw))
    os.chmod(path, SEALED)
    if damage != "message":  # the message CRC is checked at start-up, not at every load
        with pytest.raises(QueueError):
            qd.load(env.queue_id)
    assert qd.recover(min_age=3600) == [env.queue_id]
    assert qd.ids() == [] and (tmp_path / "corrupt" / env.queue_id).exists()


def test_tried_mark_puts_every_recipient_in_flight(tmp_path):
    qd = QueueDir(tmp_path)
    env = _committed(qd)
    assert qd.in_trailer(env.queue_id)
    qd.mark_tried(env.queue_id)
    assert _mode(qd, env.queue_id) == TRIED
    loaded = qd.load(env.queue_id)
    assert loaded.attempts == 1 and all(r.in_flight for r in loaded.recipients)
    assert qd.due() == [env.queue_id]  # a crash during the first attempt: try again at once


def test_save_moves_the_envelope_out_and_strips_the_trailer(tmp_path):
    qd = QueueDir(tmp_path)
    env = _committed(qd)
    env.attempts, env.next_attempt = 1, time.time() + 300
    env.recipients[1].last_error = "4.3.0 later"
    qd.save(env)
    assert not qd.in_trailer(env.queue_id)
    assert qd.data_path(env.queue_id).read_bytes() == b"hello" and _mode(qd, env.queue_id) == PLAIN
    assert qd.load(env.queue_id) == env and qd.ids() == [env.queue_id] and qd.due() == []
    assert _message(qd, env.queue_id) == b"hello"


def test_interrupted_conversion_is_finished_before_delivery(tmp_path):
    """A crash after <id>.json was written and before the trailer was stripped."""
    qd = QueueDir(tmp_path)
    env = _committed(qd)
    qd._write_envelope(env)  # the first half of save()
    assert qd.message_length(env.queue_id) == 5
    assert qd.load(env.queue_id) == env and qd.ids() == [env.queue_id]
    assert _message(qd, env.queue_id) == b"hello"
    assert qd.data_path(env.queue_id).read_bytes() == b"hello" and _mode(qd, env.queue_id) == PLAIN


def test_older_two_file_layout_is_read_as_is(tmp_path):
    qd = QueueDir(tmp_path)
    env = _envelope(qd)
    qd.data_path(env.queue_id).write_bytes(b"hello")  # 0600 plain message and its .json
    qd.env_path(env.queue_id).write_bytes(env.to_json())
    assert qd.ids() == [env.queue_id] and qd.due() == [env.queue_id]
    assert qd.load(env.queue_id) == env and not qd.in_trailer(env.queue_id)
    with qd.message(env.queue_id) as path:
        assert path == qd.data_path(env.queue_id)
    qd.remove(env.queue_id)
    assert os.listdir(qd.msg) == []


def test_enqueue_bytes_seals_one_file(tmp_path):
    qd = QueueDir(tmp_path)
    env = _envelope(qd)
    qd.enqueue_bytes(env, b"bounce text")
    assert os.listdir(qd.msg) == [env.queue_id] and _mode(qd, env.queue_id) == SEALED
    assert qd.load(env.queue_id).size == 11 and _message(qd, env.queue_id) == b"bounce text"


def test_admin_list_and_show_read_sealed_files_without_their_trailer(tmp_path):
    from pymail.queue import admin

    qd = QueueDir(tmp_path)
    env = _committed(qd, b"Subject: s\r\nX: y")  # no blank line: show prints all of it
    entries = admin.list_queue(qd)
    assert [(e.queue_id, e.sender) for e in entries] == [(env.queue_id, "a@ext.test")]
    shown = admin.show(qd, env.queue_id)
    assert shown.endswith("Subject: s\r\nX: y") and "PYMAILQ1" not in shown
    admin.hold(qd, env.queue_id)
    assert qd.load(env.queue_id).held and not qd.in_trailer(env.queue_id) and qd.due() == []
    admin.delete(qd, env.queue_id)
    assert os.listdir(qd.msg) == []
