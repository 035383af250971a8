"""Deliveries yield to accepting: batching while busy, idle workers taking mail another process
queued, the in-memory message copy (and its file fallback), the quota cache."""

from __future__ import annotations

import time

from pymail.queue import local, runner, spool
from pymail.queue.envelope import Envelope, Recipient
from pymail.queue.service import open_queue
from pymail.smtp.testing import MailSystem
from pymail.testing import reactor_thread


def _pending_delay(system) -> float | None:
    from twisted.internet import reactor

    pending = system.queue.runner._kick_pending
    return None if pending is None else pending.getTime() - reactor.seconds()


def test_busy_process_batches_while_an_idle_one_delivers_soon(reactor, tmp_path):
    system = MailSystem(tmp_path, scan_interval=60.0)
    try:
        r = system.queue.runner

        def burst():
            r._last_accept = float("-inf")
            r.accepted()  # idle: a look soon
            first = _pending_delay(system)
            r._kick_pending.cancel()
            r._kick_pending = None
            r.accepted()  # right after another accept: busy, the next batch
            return first, _pending_delay(system), r.busy

        first, second, busy = reactor_thread.call(burst)
        assert first <= runner.KICK_DELAY + 0.01
        assert runner.BUSY_DELAY - 0.05 <= second <= runner.BUSY_DELAY + 0.01 and busy

        def calm():
            r._last_accept = time.monotonic() - 1.0  # the burst is over
            r.accepted()
            return _pending_delay(system)
        assert reactor_thread.call(calm) <= runner.KICK_DELAY + 0.01  # an earlier look wins
    finally:
        system.close()


def test_idle_runner_takes_mail_another_process_queued(reactor, tmp_path):
    """Two queues on one folder, as two pymail-server workers: mail queued by one (which never
    delivers) goes out through the other's folder poll, long before its scan interval."""
    system = MailSystem(tmp_path, start_runner=False, scan_interval=60.0)
    other = open_queue(system.config, system.store, system.directory, "mx.test")
    try:
        system.add_user("alice@example.org")
        reactor_thread.call(other.runner.start)
        time.sleep(3 * runner.IDLE_POLL)
        env = Envelope(queue_id=system.queue.new_id(), sender="x@ext.test",
                       recipients=[Recipient("alice@example.org", True, "alice@example.org")],
                       created=time.time())
        system.queue.dir.enqueue_bytes(env, b"Subject: polled\r\n\r\nhi\r\n")
        got = system.wait_for(lambda: system.inbox("alice@example.org"), timeout=10,
                              what="the other runner to deliver")
        assert b"Subject: polled" in got[0]
        system.wait_for(lambda: not system.queued(), what="the queue to empty")
    finally:
        reactor_thread.call(other.stop)
        system.close()


def test_message_copy_falls_back_to_a_scratch_file(tmp_path, monkeypatch):
    qd = spool.QueueDir(tmp_path)
    env = Envelope(queue_id=qd.new_id(), sender="", recipients=[Recipient("a@b.test", False)], created=0.0)
    qd.enqueue_bytes(env, b"only the message")
    with qd.message(env.queue_id) as path:
        assert str(path).startswith("/proc/self/fd/") and path.read_bytes() == b"only the message"
    monkeypatch.setattr(spool, "_MEMFD", False)
    with qd.message(env.queue_id) as path:
        assert path.parent == tmp_path / "tmp" and path.read_bytes() == b"only the message"
    assert list((tmp_path / "tmp").iterdir()) == []
    assert sorted(p.name for p in qd.msg.iterdir()) == [env.queue_id]


def test_quota_limits_are_cached_for_a_few_seconds(tmp_path, monkeypatch):
    class Directory:
        calls = 0

        def get_user(self, address):
            Directory.calls += 1

            class User:
                quota_bytes, quota_messages = 1000, 10
            return User()

    class Store:
        def account(self, address, quota_bytes, quota_messages):
            return (address, quota_bytes, quota_messages)

    delivery = local.LocalDelivery(Store(), Directory())
    assert delivery.account("Bob@x.test") == ("Bob@x.test", 1000, 10)
    assert delivery.account("bob@x.test") == ("bob@x.test", 1000, 10)
    assert Directory.calls == 1
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + local.QUOTA_TTL + 1)
    delivery.account("bob@x.test")
    assert Directory.calls == 2


def test_busy_process_delivers_one_at_a_time_until_mail_waits_too_long(reactor, tmp_path):
    from collections import deque

    from pymail.queue import ids

    system = MailSystem(tmp_path, scan_interval=60.0, max_parallel=4)
    try:
        r = system.queue.runner

        def started(backlog: list[str], busy: bool) -> int:
            r._working.clear()
            r._last_accept = time.monotonic() if busy else float("-inf")
            r._backlog = deque(backlog)
            r._dispatch()  # these IDs name no file: each attempt ends at once, later
            return len(r._working)

        def aged(seconds: float) -> str:
            return ids._encode(int((time.time() - seconds) * 1e6), 12) + "BCDFGH"

        fresh = [system.queue.new_id() for _ in range(6)]
        assert reactor_thread.call(started, fresh, True) == runner.BUSY_PARALLEL
        assert reactor_thread.call(started, fresh, False) == 4
        late = [aged(runner.MAX_LAG + 1)] + fresh
        assert reactor_thread.call(started, late, True) == 4  # flow control: catch up
        assert abs(ids.queue_id_time(late[0]) - (time.time() - runner.MAX_LAG - 1)) < 1
    finally:
        system.close()
