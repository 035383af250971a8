"""The delivery runner: picks due messages from the queue and delivers them.

It runs in every process that has ``queue.run_delivery`` on; a message is delivered by whoever
holds its lock (``QueueDir.locked``), so several processes share one queue safely.

Exactly once, and the one exception (RFC 5321 §6.1): before an attempt, the envelope is saved with
the recipients of the attempt marked ``in_flight``; after it, with their outcomes. If the
process dies between a successful delivery (the store or the remote server has the message) and
that second save, the recipient is still pending and is delivered again after the restart — a
duplicate, which RFC 5321 §6.1 prefers to a loss. The runner logs such recipients as
``possible duplicate`` so an admin can tell. Nothing else is ever delivered twice.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque

from twisted.internet import defer, task, threads
from twisted.python.threadpool import ThreadPool

from pymail.queue import maillog
from pymail.queue.bounce import build_bounce, build_dsn, wants_delay_notice, wants_success_notice
from pymail.queue.envelope import DELIVERED, FAILED, Recipient
from pymail.queue.errors import DeliveryFailure
from pymail.queue.ids import queue_id_time
from pymail.runtime import run_blocking

log = logging.getLogger(__name__)


def _daemon_thread(*args, **kwargs):
    import threading

    thread = threading.Thread(*args, **kwargs)
    thread.daemon = True  # a server that exits without queue.stop() must not hang on them
    return thread


class DeliveryPool(ThreadPool):
    """The runner's own threads (daemon: a delivery cut short is redone, RFC 5321 §6.1)."""

    threadFactory = staticmethod(_daemon_thread)


KICK_DELAY = 0.05  # an idle process starts delivering a message this soon after its 250
BUSY_GAP = 0.1  # accepts closer together than this: the process is busy accepting
BUSY_DELAY = 0.5  # ...and then starts its own deliveries this late, in one batch
BUSY_PARALLEL = 1  # ...delivering one message at a time
MAX_LAG = 2.0  # ...unless the oldest message waiting is older than this: then at full speed
IDLE_POLL = 0.1  # an idle process looks this often whether another one queued mail


class DeliveryRunner:
    """Accepting comes first: a process busy accepting (SMTP sessions committing one message
    after the other) delivers what it queued in batches every ``BUSY_DELAY`` seconds, one message
    at a time (``BUSY_PARALLEL``) as long as the oldest message waiting arrived less than
    ``MAX_LAG`` seconds ago (flow control: a sustained load cannot outrun delivery for long),
    while a process that is not accepting (another pymail-server worker sharing the queue)
    polls the queue folder's mtime every ``IDLE_POLL`` seconds and takes new messages at once,
    ``max_parallel`` at a time. So with
    several workers the deliveries move to the one with spare time; with one worker, or all of
    them busy, mail still starts out within half a second. An idle server starts a delivery
    ``KICK_DELAY`` after the 250."""

    def __init__(self, queue):
        self.queue = queue
        self.settings = queue.settings
        self._loop: task.LoopingCall | None = None
        self._scanning = False
        self._again = False
        self._working: set[str] = set()  # queue IDs being delivered by this process
        self._backlog: deque[str] = deque()  # due at the last scan, not started yet
        self._sem = defer.DeferredSemaphore(max(1, self.settings.max_parallel))
        self._kick_pending = None
        self._pool: ThreadPool | None = None
        self._made_seen = 0
        self._last_accept = float("-inf")
        self._poll: task.LoopingCall | None = None
        self._polling = False
        self._folder_mtime: int | None = None

    # -- control (reactor thread) ------------------------------------------------------------------
    def start(self) -> defer.Deferred:
        from twisted.internet import reactor

        self._sem = defer.DeferredSemaphore(max(1, self.settings.max_parallel))
        if self._pool is None:
            # Deliveries wait on remote servers for minutes at worst: they get their own threads
            # so SMTP sessions never queue behind them for a directory lookup or a commit.
            self._pool = DeliveryPool(0, max(1, self.settings.max_parallel), name="pymail-delivery")
            self._pool.start()
        d = run_blocking(self.queue.dir.recover)
        d.addCallback(lambda removed: removed and log.info("queue: removed %d unacknowledged orphans", len(removed)))

        def go(_):
            self._loop = task.LoopingCall(self.scan)
            self._loop.clock = reactor
            self._loop.start(self.settings.scan_interval, now=True).addErrback(
                lambda f: log.error("delivery loop stopped: %s", f.getTraceback()))
            self._poll = task.LoopingCall(self.poll)
            self._poll.clock = reactor
            self._poll.start(IDLE_POLL, now=False).addErrback(
                lambda f: log.error("queue poll stopped: %s", f.getTraceback()))
        d.addCallback(go)
        return d

    def stop(self) -> None:
        for loop in (self._loop, self._poll):
            if loop is not None and loop.running:
                loop.stop()
        self._loop = self._poll = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            # Let deliveries in progress finish in the background; never block the reactor.
            from twisted.internet import reactor

            reactor.callInThread(pool.stop)

    def accepted(self) -> None:
        """This process just queued a message: deliver it soon, or with the next batch when
        busy accepting."""
        now = time.monotonic()
        busy = now - self._last_accept < BUSY_GAP
        self._last_accept = now
        self.kick(BUSY_DELAY if busy else KICK_DELAY)

    @property
    def busy(self) -> bool:
        return time.monotonic() - self._last_accept < BUSY_GAP

    def kick(self, delay: float = KICK_DELAY) -> None:
        """Look for due messages within ``delay`` seconds (a message was just queued)."""
        from twisted.internet import reactor

        if self._loop is None:
            return
        pending = self._kick_pending
        if pending is not None:
            if pending.getTime() > reactor.seconds() + delay:
                pending.reset(delay)  # an earlier look was asked for
            return

        def fire():
            self._kick_pending = None
            self.scan()
        self._kick_pending = reactor.callLater(delay, fire)

    def poll(self):
        """While not accepting, notice mail another process queued (the folder's mtime moved)."""
        if self.busy or self._polling or self._scanning or self._kick_pending is not None:
            return None
        self._polling = True

        def mtime():
            try:
                return os.stat(self.queue.dir.msg).st_mtime_ns
            except OSError:
                return None

        def seen(value):
            self._polling = False
            if value is not None and value != self._folder_mtime:
                self._folder_mtime = value
                self.scan()

        def failed(f):
            self._polling = False
            log.error("queue poll: %s", f.getErrorMessage())
        return run_blocking(mtime).addCallbacks(seen, failed)

    def scan(self):
        if self._scanning:
            self._again = True
            return None
        self._scanning = True
        return defer.ensureDeferred(self._scan())

    async def _scan(self) -> None:
        try:
            while True:
                self._again = False
                due = await run_blocking(self.queue.dir.due)
                self._backlog = deque(due)
                self._dispatch()
                if not self._again:
                    break
        finally:
            self._scanning = False
        await run_blocking(self.queue.remote.close_idle)

    def _in_pool(self, fn, *args):
        from twisted.internet import reactor

        if self._pool is None:
            return defer.succeed(None)
        return threads.deferToThreadPool(reactor, self._pool, fn, *args)

    def _dispatch(self) -> None:
        """Start deliveries from the backlog of the last scan: ``max_parallel`` at once, or
        ``BUSY_PARALLEL`` while this process is busy accepting (the delivery threads share the
        process's one GIL with the SMTP sessions)."""
        limit = max(1, self.settings.max_parallel)
        if self.busy and not (self._backlog and time.time() - queue_id_time(self._backlog[0]) > MAX_LAG):
            limit = BUSY_PARALLEL
        while self._backlog and len(self._working) < limit:
            qid = self._backlog.popleft()
            if qid in self._working:
                continue
            self._working.add(qid)
            d = self._sem.run(self._in_pool, self.process, qid)
            d.addErrback(lambda f, q=qid: log.error("%s: delivery error: %s", q, f.getTraceback()))
            d.addBoth(lambda _, q=qid: self._done(q))

    def _done(self, qid: str) -> None:
        self._working.discard(qid)
        self._dispatch()
        if self.queue.dir.made_here != self._made_seen:
            self._made_seen = self.queue.dir.made_here
            self.kick()  # a bounce or redirect was queued by that delivery: send it now
        if self._again and not self._scanning:
            self.scan()

    # -- one message (worker thread) ---------------------------------------------------------------
    def process(self, queue_id: str) -> None:
        qdir = self.queue.dir
        if not qdir.data_path(queue_id).exists():
            if qdir.env_path(queue_id).exists():
                # An envelope whose message never became durable (crash inside commit, no 250).
                maillog.event(queue_id, "removed: the message file is missing")
                qdir.remove(queue_id)
            return
        with qdir.locked(queue_id) as got:
            if not got:
                return
            try:
                envelope = qdir.load(queue_id)
            except Exception:
                return
            now = time.time()
            if envelope.held or envelope.next_attempt > now:
                return
            try:
                with qdir.message(queue_id) as path:
                    self.attempt(envelope, now, path)
            except Exception:
                # A bug or a disk problem after the journal was written: keep the message, try
                # again after the usual back-off instead of at every scan.
                log.exception("%s: delivery attempt failed", queue_id)
                try:
                    envelope = qdir.load(queue_id)
                    envelope.next_attempt = now + self.backoff(envelope.attempts)
                    qdir.save(envelope)
                except Exception:
                    log.exception("%s: cannot record the failed attempt", queue_id)

    def attempt(self, envelope, now: float, path) -> None:
        """One attempt; ``path`` holds the message alone (``QueueDir.message``)."""
        qdir = self.queue.dir
        qid = envelope.queue_id
        pending = envelope.pending()
        for r in pending:
            if r.in_flight:
                maillog.event(qid, f"to=<{r.address}>, possible duplicate (RFC 5321 §6.1): "
                                   "an earlier attempt was interrupted")
            r.in_flight = True
        envelope.attempts += 1
        # The journal: recipients of this attempt. While the envelope is the file's trailer all
        # its recipients are pending, and the TRIED mark (one fchmod + fsync) says so.
        if qdir.in_trailer(qid):
            qdir.mark_tried(qid)
        else:
            qdir.save(envelope)

        def record(r: Recipient, status: str, relay: str, text: str) -> None:
            delay = now - envelope.created
            maillog.event(qid, f"to=<{r.address}>, {relay}, delay={delay:.2f}, status={status} ({text})")

        for r in [r for r in pending if r.local]:
            try:
                text = self.queue.local.deliver(envelope, r, path)
                r.status = DELIVERED
                record(r, "sent", "relay=local", text)
            except DeliveryFailure as exc:
                r.last_error = f"{exc.status} {exc.text}"
                if exc.permanent:
                    r.status = FAILED
                record(r, "bounced" if exc.permanent else "deferred", "relay=local", r.last_error)
            except Exception as exc:  # a bug or an outage must not lose the message: retry
                log.exception("%s: local delivery to %s failed", qid, r.address)
                r.last_error = f"4.3.0 local delivery error: {type(exc).__name__}"
                record(r, "deferred", "relay=local", r.last_error)
        remote = [r for r in pending if not r.local]
        if remote:
            self.queue.remote.deliver(envelope, remote, path, record)
        for r in pending:
            r.in_flight = False
        if not envelope.done and now - envelope.created > self.settings.max_lifetime:
            for r in envelope.pending():
                r.status = FAILED
                r.last_error = f"5.4.7 delivery time expired; last error: {r.last_error}"
                record(r, "bounced", "relay=none", r.last_error)
        failed_now = [r for r in pending if r.status == FAILED]
        if failed_now:
            self.bounce(envelope, failed_now, path)
        # RFC 3461 §6.2.3: NOTIFY=SUCCESS is answered by the last hop that knows DSN.
        delivered = [r for r in pending if r.status == DELIVERED and wants_success_notice(r)]
        if delivered:
            self.notify_success(envelope, delivered, path)
        if envelope.done:
            qdir.remove(qid)
            maillog.event(qid, "removed")
            return
        self.maybe_warn_delay(envelope, now, path)
        envelope.next_attempt = now + self.backoff(envelope.attempts)
        qdir.save(envelope)

    def backoff(self, attempts: int) -> float:
        return min(self.settings.max_backoff, self.settings.min_backoff * (2 ** max(0, attempts - 1)))

    def maybe_warn_delay(self, envelope, now: float, path) -> None:
        """One "delayed" DSN (RFC 3464 Action: delayed) once ``delay_warning_time`` has passed."""
        limit = self.settings.delay_warning_time
        if limit <= 0 or envelope.delay_warned or now - envelope.created < limit:
            return
        envelope.delay_warned = True
        rcpts = [r for r in envelope.pending() if wants_delay_notice(r)]
        made = build_dsn(envelope, rcpts, path, self.queue.hostname, self.settings.bounce_max_body,
                         self.queue.dir.new_id(), "delayed", self.settings.max_lifetime)
        if made is None:
            return
        dsn_env, message = made
        dsn_env.recipients = self.queue.route(envelope.sender)
        if dsn_env.recipients:
            self.queue.dir.enqueue_bytes(dsn_env, message)
            maillog.event(envelope.queue_id, f"sender delay notification: {dsn_env.queue_id}")

    def notify_success(self, envelope, delivered: list[Recipient], path) -> None:
        for action, rcpts in (("delivered", [r for r in delivered if r.local]),
                              ("relayed", [r for r in delivered if not r.local and not r.dsn_passed])):
            made = build_dsn(envelope, rcpts, path, self.queue.hostname, self.settings.bounce_max_body,
                             self.queue.dir.new_id(), action)
            if made is None:
                continue
            dsn_env, message = made
            dsn_env.recipients = self.queue.route(envelope.sender)
            if dsn_env.recipients:
                self.queue.dir.enqueue_bytes(dsn_env, message)
                maillog.event(envelope.queue_id, f"sender delivery status notification ({action}): "
                                                 f"{dsn_env.queue_id}")

    def bounce(self, envelope, failed: list[Recipient], path) -> None:
        qdir = self.queue.dir
        new_id = qdir.new_id()
        made = build_bounce(envelope, failed, path, self.queue.hostname,
                            self.settings.bounce_max_body, new_id)
        if made is None:
            why = "null sender" if not envelope.sender or envelope.is_bounce else "NOTIFY"
            maillog.event(envelope.queue_id, f"no bounce sent ({why})")
            return
        bounce_env, message = made
        bounce_env.recipients = self.queue.route(envelope.sender)
        if not bounce_env.recipients:
            maillog.event(envelope.queue_id, f"no bounce sent (sender <{envelope.sender}> is unknown here)")
            return
        qdir.enqueue_bytes(bounce_env, message)
        maillog.event(envelope.queue_id, f"sender non-delivery notification: {new_id}")
        maillog.event(new_id, f"from=<>, size={bounce_env.size}, nrcpt=1 (queued)")
