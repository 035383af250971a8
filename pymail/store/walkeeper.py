"""Each process keeps one idle connection per recently used mailbox index, and checkpoints
those indexes' WAL files in the background.

Why a kept connection: SQLite checkpoints the WAL and deletes it (and its ``-shm``) when the
last connection to a database closes, and the next writer creates them again. For a client
that logs in, SELECTs and logs out that was a checkpoint, two file creations and a deletion per
session. With one connection always open the WAL stays.

Why a background checkpoint: with the WAL kept, SQLite's automatic checkpoint (``PRAGMA
wal_autocheckpoint``, run by whichever commit crosses it) would land inside some client's
command — a STORE that happens to cross 1,000 pages paid tens of milliseconds for copying
another session's parse-cache fill. Sessions' connections get a high automatic threshold
(``index.AUTOCHECKPOINT_PAGES``, a backstop) and this thread copies a WAL back into its database
(``PRAGMA wal_checkpoint(PASSIVE)``: never waits for readers or writers) once it passes
``CHECKPOINT_BYTES``, looking every ``CHECKPOINT_EVERY`` seconds.

Nothing waits for the checkpointer: a session that evicts kept connections while a checkpoint
runs (up to seconds for a big parse-cache fill) leaves them for this thread to
close.  It runs at normal priority: a niced thread was tried (warm commands after a cold pass
measured a little faster), but a thread the kernel rarely schedules can be preempted while it
holds the GIL, and then every thread of the process waits for it.

The same thread runs other work no command should wait for (``add_background_task``): the
records-view snapshots of mailbox.py.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections import OrderedDict

log = logging.getLogger(__name__)

KEPT_OPEN = 64              # index files this process keeps one idle connection to
CHECKPOINT_EVERY = 1.0      # seconds between looks at the kept indexes' WAL sizes
CHECKPOINT_BYTES = 1 << 20  # a WAL above this is checkpointed by the background thread

_lock = threading.Lock()       # guards _kept
_in_use = threading.Lock()     # a kept connection is being checkpointed, or closed
_kept: "OrderedDict[str, sqlite3.Connection]" = OrderedDict()
_to_close: list[sqlite3.Connection] = []   # evicted during a checkpoint (guarded by _lock)
_thread: threading.Thread | None = None
_owner = os.getpid()           # the process the kept connections were opened in


def _forget_after_fork() -> None:
    """Caller holds ``_lock``.  Connections opened before a fork belong to the parent: SQLite
    connections must not cross fork(), so a child drops them (without using or closing them)."""
    global _owner, _kept, _to_close
    if _owner != os.getpid():
        _owner = os.getpid()
        _kept = OrderedDict()
        _to_close = []


def keep_open(path: str) -> None:
    """Hold one idle connection to ``path`` (LRU of ``KEPT_OPEN``) and make sure the
    background checkpointer runs."""
    with _lock:
        _forget_after_fork()
        if path in _kept:
            _kept.move_to_end(path)
            return
    try:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("SELECT 1 FROM meta LIMIT 1").fetchall()   # maps the WAL index (-shm)
    except sqlite3.Error:
        return
    with _lock:
        _forget_after_fork()
        old = _kept.pop(path, None)
        _kept[path] = db
        evicted = [_kept.popitem(last=False)[1] for _ in range(len(_kept) - KEPT_OPEN)]
        _start_checkpointer()
    done = evicted + ([old] if old is not None else [])
    if done:
        if _in_use.acquire(blocking=False):    # not while the checkpointer uses one
            try:
                for conn in done:
                    conn.close()
            finally:
                _in_use.release()
        else:                                  # nor wait for it: it closes them itself
            with _lock:
                _to_close.extend(done)


def kept_paths() -> list[str]:
    with _lock:
        _forget_after_fork()
        return list(_kept)


def checkpoint_large_wals(min_bytes: int = CHECKPOINT_BYTES) -> list[str]:
    """Checkpoint (PASSIVE) every kept index whose WAL is above ``min_bytes``; → their paths."""
    with _lock:
        _forget_after_fork()
        items = list(_kept.items())
    done = []
    for path, db in items:
        try:
            if os.stat(path + "-wal").st_size <= min_bytes:
                continue
        except OSError:
            continue
        with _in_use:
            with _lock:
                if _kept.get(path) is not db:  # evicted (and closed) meanwhile
                    continue
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                done.append(path)
            except sqlite3.Error as exc:       # busy, deleted mailbox: try again later
                log.debug("checkpoint of %s: %s", path, exc)
    close_evicted()
    return done


def close_evicted() -> None:
    """Close the connections ``keep_open`` evicted while a checkpoint was running."""
    with _in_use:
        with _lock:
            pending = _to_close[:]
            del _to_close[:]
        for conn in pending:
            conn.close()


def _start_checkpointer() -> None:
    """Caller holds ``_lock``."""
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    _thread = threading.Thread(target=_run, name="pymail-wal-checkpoint", daemon=True)
    _thread.start()


_tasks: list = []     # more work for this thread's tick (add_background_task)


def add_background_task(task) -> None:
    """Run ``task()`` on this thread after each checkpoint look (the records-view snapshots of
    mailbox.py: work no command should wait for)."""
    if task not in _tasks:
        _tasks.append(task)


def _run() -> None:
    stop = threading.Event()
    while not stop.wait(CHECKPOINT_EVERY):
        for task in [checkpoint_large_wals, *_tasks]:
            # never let the thread die: for checkpoints the automatic threshold is the backstop
            try:
                task()
            except Exception:
                log.exception("background task %s failed", task)
