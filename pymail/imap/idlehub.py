"""One poller for every IDLE session of a process (RFC 2177 push without a thread per client).

Each ``idle_poll`` seconds, while anyone idles, one thread job refreshes the selected mailbox of
every idling session (``Session.collect_updates``) and the reactor writes what each one got. A
session leaving IDLE waits for a poll in progress to finish, so its mailbox is never used by two
threads at once.

To keep 1,000 idle sessions cheap, sessions on the same folder share one look per tick: the
stat() of the folder's ``new/``, ``cur/``, control files and index; ``Mailbox.sync()`` runs only
when that changed, and at least every ``FULL_SYNC_EVERY`` seconds (changes no stat() sees, or a
store without those paths: then every tick).
"""

from __future__ import annotations

import logging
import os
import time

from twisted.internet import defer, task

from pymail.runtime import run_blocking

log = logging.getLogger("pymail.imap")

FULL_SYNC_EVERY = 5.0


def folder_stamp(mailbox):
    """(mtime, size, inode) of what changes when mail arrives, moves, or its flags change;
    None when the store does not expose its paths (then the caller always syncs)."""
    folder = getattr(mailbox, "folder", None)
    index = getattr(mailbox, "index", None)
    base = getattr(folder, "path", None)
    if base is None:
        return None
    paths = [os.path.join(base, "new"), os.path.join(base, "cur"),
             getattr(folder, "uidlist_path", os.path.join(base, "dovecot-uidlist")),
             getattr(folder, "keywords_path", os.path.join(base, "dovecot-keywords"))]
    index_path = getattr(index, "path", None)
    if index_path:
        paths += [index_path, index_path + "-wal"]
    stamp = []
    for p in paths:
        try:
            st = os.stat(p)
            stamp.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            stamp.append(None)
    return tuple(stamp)


class IdleHub:
    def __init__(self, interval: float, clock=None):
        self.interval = interval
        self.sessions: set = set()
        self.running: defer.Deferred | None = None
        self._loop: task.LoopingCall | None = None
        self._clock = clock
        self._stamps: dict = {}  # session → (folder stamp at its last sync, monotonic time)

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
        self._stamps.pop(session, None)
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

        stamps = self._stamps

        def poll():
            now = time.monotonic()
            seen: dict = {}
            results = []
            for s in sessions:
                try:
                    key = (s.user, s.selected.name)
                    if key not in seen:
                        seen[key] = folder_stamp(s.selected.mailbox)
                    stamp = seen[key]
                    last = stamps.get(s)
                    if stamp is not None and last is not None and last[0] == stamp \
                            and now - last[1] < FULL_SYNC_EVERY:
                        continue
                    results.append((s, s.collect_updates(True)))
                    stamps[s] = (stamp, now)
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
