"""One poller for every IDLE session of a process (RFC 2177 push without a thread per client).

Each ``idle_poll`` seconds, while anyone idles, one thread job refreshes the selected mailbox of
every idling session (``Session.collect_updates``: ``Mailbox.sync()`` is a few stat() calls when
nothing changed) and the reactor writes what each one got. A session leaving IDLE waits for a
poll in progress to finish, so its mailbox is never used by two threads at once.
"""

from __future__ import annotations

import logging

from twisted.internet import defer, task

from pymail.runtime import run_blocking

log = logging.getLogger("pymail.imap")


class IdleHub:
    def __init__(self, interval: float, clock=None):
        self.interval = interval
        self.sessions: set = set()
        self.running: defer.Deferred | None = None
        self._loop: task.LoopingCall | None = None
        self._clock = clock

    def add(self, session) -> None:
        self.sessions.add(session)
        if self._loop is None:
            self._loop = task.LoopingCall(self._tick)
            if self._clock is not None:
                self._loop.clock = self._clock
            self._loop.start(self.interval, now=False).addErrback(
                lambda f: log.error("imap idle poller stopped: %s", f.getTraceback()))

    async def remove(self, session) -> None:
        self.sessions.discard(session)
        if self.running is not None:
            # Wait for a poll that may be using this session's mailbox right now.
            d = defer.Deferred()
            self.running.addBoth(lambda r: (d.callback(None), r)[1])
            await d
        if not self.sessions and self._loop is not None and self._loop.running:
            self._loop.stop()
            self._loop = None

    def _tick(self):
        if self.running is not None or not self.sessions:
            return None
        sessions = [s for s in self.sessions if s.selected is not None]

        def poll():
            results = []
            for s in sessions:
                try:
                    results.append((s, s.collect_updates(True)))
                except Exception:  # one broken mailbox must not stop the others' push
                    log.exception("imap: IDLE refresh of %s failed", getattr(s.selected, "name", "?"))
            return results

        def deliver(results):
            self.running = None
            for s, lines in results:
                if lines:  # sent even if the session just left IDLE: its view counts them as told
                    s.send(b"".join(lines))

        def failed(f):
            self.running = None
            log.error("imap idle poll failed: %s", f.getTraceback())

        self.running = run_blocking(poll)
        self.running.addCallbacks(deliver, failed)
        return None
