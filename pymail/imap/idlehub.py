"""One poller for every IDLE session of a process (RFC 2177 push without a thread per client).

Each ``idle_poll`` seconds, while anyone idles, one thread job refreshes the selected mailbox of
every idling session (``Session.collect_updates``) and the reactor writes what each one got. A
session leaving IDLE waits for a poll in progress to finish, so its mailbox is never used by two
threads at once.  On Linux the ``new/`` and ``cur/`` directories of every watched folder are
also watched with inotify (Twisted's ``twisted.internet.inotify``, what Dovecot does too): a
delivery, flag rename or expunge by any process on this host starts a poll ~20 ms later
instead of at the next tick.  The timer stays as the fallback (NFS, no inotify, changes only in
the index).

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

A tick allocates almost no objects that outlive it per session (the per-folder state holds
the stamps; a session only remembers the folder version it was brought to, an int): with
thousands of sessions, every container that survives a tick is later traversed by Python's
full garbage collections, whose pauses (hundreds of ms at 5,000 sessions) stall the reactor.
"""

from __future__ import annotations

import logging
import os
import time

from twisted.internet import defer, task
from twisted.python.filepath import FilePath

try:
    from twisted.internet import inotify
except ImportError:  # not Linux
    inotify = None

from pymail.runtime import run_blocking
from pymail.store.changeset import read_changes, seen_modseq

log = logging.getLogger("pymail.imap")

FULL_SYNC_EVERY = 5.0
WAKE_DELAY = 0.02  # after an inotify event: let a burst (rename + uidlist append) settle
# a message file appears (delivery: rename or link), is renamed (flags) or removed (expunge)
WATCH_MASK = (inotify.IN_CREATE | inotify.IN_MOVED_TO | inotify.IN_MOVED_FROM
              | inotify.IN_DELETE) if inotify is not None else 0


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


def _behind(mailbox, changes) -> bool:
    """Would ``changes`` tell this session anything (or can it not answer for it)?"""
    seen = seen_modseq(mailbox)
    return seen is None or seen < changes.highest \
        or getattr(mailbox, "generation", None) != changes.generation


class FolderState:
    """What the hub knows about one watched folder (reactor and poll thread take turns:
    the poll thread only while ``IdleHub.running``)."""

    __slots__ = ("stamp", "synced_at", "version", "claims", "watched")

    def __init__(self):
        self.stamp = None
        self.synced_at = 0.0
        self.version = 0            # bumped at every sync; sessions remember the one they saw
        self.claims: set = set()    # \\Recent UIDs claimed for sessions none took yet
        self.watched: list = []     # inotify FilePaths


class IdleHub:
    def __init__(self, interval: float, clock=None, wake_delay: float = WAKE_DELAY):
        self.interval = interval
        self.sessions: set = set()
        self.running: defer.Deferred | None = None
        self._loop: task.LoopingCall | None = None
        self._clock = clock
        self._wake_delay = wake_delay
        self._folders: dict = {}  # folder key → FolderState
        self._keys: dict = {}     # session → folder key
        self._seen: dict = {}     # session → FolderState.version it was brought up to
        self._notifier = None     # twisted INotify, once a folder is watched
        self._wake = None         # DelayedCall of a poll asked for by inotify
        self._again = False       # an inotify event came during a poll

    def add(self, session) -> None:
        self.sessions.add(session)
        sel = session.selected
        if sel is not None:
            key = folder_key(session.user, sel)
            self._keys[session] = key
            folder = self._folders.get(key)
            if folder is None:
                folder = self._folders[key] = FolderState()
                self._watch(folder, sel.mailbox)
        if self._loop is None:
            self._loop = task.LoopingCall(self._tick)
            if self._clock is not None:
                self._loop.clock = self._clock
            self._loop.start(self.interval, now=False).addErrback(
                lambda f: log.error("imap idle poller stopped: %s", f.getTraceback()))

    async def remove(self, session) -> None:
        self.sessions.discard(session)
        key = self._keys.pop(session, None)
        if self.running is not None:
            # Wait for a poll that may be using this session's mailbox right now.
            d = defer.Deferred()
            self.running.addBoth(lambda r: (d.callback(None), r)[1])
            await d
        self._seen.pop(session, None)  # after the poll: it may have just set it
        if key is not None and key not in self._keys.values():
            folder = self._folders.pop(key, None)
            if folder is not None:
                self._unwatch(folder)
        if not self.sessions and self._loop is not None and self._loop.running:
            self._loop.stop()
            self._loop = None
            if self._wake is not None and self._wake.active():
                self._wake.cancel()
            self._wake = None
            if self._notifier is not None:  # no folder is watched any more: close the fd
                self._notifier.loseConnection()
                self._notifier = None
                for folder in self._folders.values():
                    folder.watched = []     # watches of the closed notifier

    # --- inotify: a change on this host starts a poll at once --------------------------------
    def _watch(self, folder: FolderState, mailbox) -> None:
        base = getattr(getattr(mailbox, "folder", None), "path", None)
        if base is None or inotify is None or self._clock is not None:
            return
        try:
            if self._notifier is None:
                self._notifier = inotify.INotify()
                self._notifier.startReading()
            for sub in ("new", "cur"):
                path = FilePath(os.path.join(base, sub))
                self._notifier.watch(path, mask=WATCH_MASK, callbacks=[self._changed])
                folder.watched.append(path)
        except Exception as e:  # no inotify (limits, other OS): the timer alone serves
            log.info("imap: no inotify watch on %s (%s); IDLE polls every %.1f s",
                     base, e, self.interval)

    def _unwatch(self, folder: FolderState) -> None:
        # The notifier may be gone already: the last session's remove() closes it while
        # another remove() still waits for a poll to finish.
        notifier = self._notifier
        for path in folder.watched if notifier is not None else ():
            try:
                notifier.ignore(path)
            except (KeyError, OSError):
                pass
        folder.watched = []

    def _changed(self, _watch, _path, _mask) -> None:
        if self._wake is None or not self._wake.active():
            from twisted.internet import reactor

            self._wake = reactor.callLater(self._wake_delay, self._woken)

    def _woken(self) -> None:
        self._wake = None
        if self.running is not None:
            self._again = True
        else:
            self._tick()

    # --- polling ------------------------------------------------------------------------------
    def _tick(self):
        if self.running is not None or not self.sessions:
            return None
        self._again = False
        groups: dict = {}
        for s in self.sessions:
            sel = s.selected
            key = self._keys.get(s)
            if sel is not None and key is not None:
                groups.setdefault(key, []).append((s, sel))
        work = [(self._folders[key], group) for key, group in groups.items()
                if key in self._folders]
        targets: list = []   # sessions with something to send, and (below) the bytes
        payloads: list = []

        def poll():
            now = time.monotonic()
            for folder, group in work:
                try:
                    self._poll_folder(folder, group, now, targets, payloads)
                except Exception:  # one broken mailbox must not stop the others' push
                    log.exception("imap: IDLE refresh of %s failed", group[0][1].name)

        def deliver(_):
            self.running = None
            for s, data in zip(targets, payloads):
                s.send(data)  # sent even if the session just left IDLE: its view counts them as told
            if self._again:
                self._changed(None, None, None)

        def failed(f):
            self.running = None
            log.error("imap idle poll failed: %s", f.getTraceback())

        self.running = run_blocking(poll)
        self.running.addCallbacks(deliver, failed)
        return None

    def _poll_folder(self, folder: FolderState, group: list, now: float, targets: list,
                     payloads: list) -> None:
        """Blocking: the updates of every idling session on one folder, from one stat() look
        and (when it moved) one index read shared by all of them; then every session's index
        connection is given back, so an idling session holds none."""
        seen = self._seen
        try:
            stamp = folder_stamp(group[0][1].mailbox)
            version = folder.version
            if stamp is None or stamp != folder.stamp or now - folder.synced_at >= FULL_SYNC_EVERY:
                # The folder moved (or it is time to look anyway): one read for everyone, and
                # everyone gets it unless it holds nothing new (our own \\Recent claim's
                # renames, a flag set to what it was): then only newcomers are looked at.
                folder.stamp, folder.synced_at = stamp, now
                changes = self._read_changes(folder, [sel.mailbox for _, sel in group])
                if changes is None or any(_behind(sel.mailbox, changes) for _, sel in group):
                    folder.version = version = version + 1
            else:
                changes = None
            due = [(s, sel) for s, sel in group if seen.get(s) != version]
            if not due:
                if changes is not None:
                    folder.claims = changes.unclaimed()
                return
            if changes is None:
                changes = self._read_changes(folder, [sel.mailbox for _, sel in due])
            for s, sel in due:
                sel.shared_changes = changes
                try:
                    lines = s.collect_updates(True)
                    seen[s] = version
                    if lines:
                        targets.append(s)
                        payloads.append(b"".join(lines))
                except Exception:
                    log.exception("imap: IDLE refresh of %s failed", sel.name)
                finally:
                    sel.shared_changes = None
            if changes is not None:
                folder.claims = changes.unclaimed()
        finally:
            for _, sel in group:
                release_index(sel.mailbox)

    def _read_changes(self, folder: FolderState, mailboxes: list):
        """One ``ChangeSet`` for these sessions' mailboxes (None when the store cannot give
        one: then each session syncs on its own)."""
        leader = mailboxes[0]
        lows = [seen_modseq(mb) for mb in mailboxes]
        if None in lows or not hasattr(leader, "refresh") or not hasattr(leader, "index"):
            return None
        leader.refresh()  # the maildir → index step, once for all of them
        carry, folder.claims = folder.claims, set()
        return read_changes(leader, min(lows), carry)
