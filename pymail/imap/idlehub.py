"""One poller for every IDLE session of a process (RFC 2177 push without a thread per client).

Each ``idle_poll`` seconds, while anyone idles, one thread job refreshes the selected mailbox of
every idling session (``Session.collect_updates``) and the reactor writes what each one got. A
session leaving IDLE waits for a poll in progress to finish, so its mailbox is never used by two
threads at once.

To keep 10,000 idle sessions cheap, the sessions of one folder share each tick's work: one
stat() look at the folder's ``new/``, ``cur/``, control files and index; when that moved (and
at least every ``FULL_SYNC_EVERY`` seconds, for changes no stat() sees), one
``Mailbox.refresh()`` and one read of the changes after the lowest modseq any of them has seen
(``pymail.store.changeset``), which each session then applies in pure Python with the same
untagged responses ``Mailbox.sync()`` would have given it (EXISTS/RECENT, FETCH FLAGS with
MODSEQ under CONDSTORE, EXPUNGE or VANISHED, updating searches).  ``\\Recent`` is claimed once
for the folder and each new UID handed to one session (RFC 3501 §2.3.2).  After the tick every
idling session's index connection is closed (``Index.release()``; the next command reopens
it): a SQLite connection that has read a small index holds ~140 KiB, most of what an idle
session used to cost.
"""

from __future__ import annotations

import logging
import os
import time

from twisted.internet import defer, task

from pymail.runtime import run_blocking
from pymail.store.changeset import read_changes, seen_modseq

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


def folder_key(user, view):
    """Sessions on the same folder share one key: its index file (else user and name)."""
    path = getattr(getattr(view.mailbox, "index", None), "path", None)
    return path or (user, view.name)


def release_index(mailbox) -> None:
    """Close the mailbox's index connection (reopened on its next use), if it has one."""
    release = getattr(getattr(mailbox, "index", None), "release", None)
    if release is not None:
        release()


class IdleHub:
    def __init__(self, interval: float, clock=None):
        self.interval = interval
        self.sessions: set = set()
        self.running: defer.Deferred | None = None
        self._loop: task.LoopingCall | None = None
        self._clock = clock
        self._stamps: dict = {}  # session → (folder stamp at its last sync, monotonic time)
        self._claims: dict = {}  # folder → \\Recent UIDs claimed for sessions none took yet

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
            self._claims.clear()

    def _tick(self):
        if self.running is not None or not self.sessions:
            return None
        groups: dict = {}
        for s in self.sessions:
            sel = s.selected
            if sel is not None:
                groups.setdefault(folder_key(s.user, sel), []).append((s, sel))
        for key in [k for k in self._claims if k not in groups]:
            del self._claims[key]

        def poll():
            now = time.monotonic()
            results = []
            for key, group in groups.items():
                try:
                    self._poll_folder(key, group, now, results)
                except Exception:  # one broken mailbox must not stop the others' push
                    log.exception("imap: IDLE refresh of %s failed", group[0][1].name)
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

    def _poll_folder(self, key, group: list, now: float, results: list) -> None:
        """Blocking: the updates of every idling session on one folder, from one stat() look
        and (when it moved) one index read shared by all of them; then every session's index
        connection is given back, so an idling session holds none."""
        stamps = self._stamps
        try:
            stamp = folder_stamp(group[0][1].mailbox)
            due = []
            for s, sel in group:
                last = stamps.get(s)
                if stamp is not None and last is not None and last[0] == stamp \
                        and now - last[1] < FULL_SYNC_EVERY:
                    continue
                due.append((s, sel))
            if not due:
                return
            changes = self._read_changes(key, [sel.mailbox for _, sel in due])
            for s, sel in due:
                sel.shared_changes = changes
                try:
                    results.append((s, s.collect_updates(True)))
                    stamps[s] = (stamp, now)
                except Exception:
                    log.exception("imap: IDLE refresh of %s failed", sel.name)
                finally:
                    sel.shared_changes = None
            if changes is not None:
                left = changes.unclaimed()
                if left:
                    self._claims[key] = left
        finally:
            for _, sel in group:
                release_index(sel.mailbox)

    def _read_changes(self, key, mailboxes: list):
        """One ``ChangeSet`` for these sessions' mailboxes (None when the store cannot give
        one: then each session syncs on its own)."""
        leader = mailboxes[0]
        lows = [seen_modseq(mb) for mb in mailboxes]
        if None in lows or not hasattr(leader, "refresh") or not hasattr(leader, "index"):
            return None
        leader.refresh()  # the maildir → index step, once for all of them
        return read_changes(leader, min(lows), self._claims.pop(key, ()))
