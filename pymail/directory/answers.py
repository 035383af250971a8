"""Directory answers remembered for a few seconds per process: an RCPT resolution, a user's
spam settings, quota limits.  Under load one SQL query per RCPT or per delivered message was a
large share of the work; a change made elsewhere is then seen at most ``ttl`` seconds late
(each caller says what that means for it)."""

from __future__ import annotations

import threading
import time
import weakref

ANSWERS_MAX = 10_000   # per directory; above it, expired answers go, then all


class AnswerCache:
    """Answers per Directory object (weakly held: a new Directory, as in tests, never sees
    another's answers) and lower-cased address."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_dir: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def get(self, directory, address: str):
        """The answer kept for ``address``, or None (never asked, or expired)."""
        key = address.lower()
        with self._lock:
            entries = self._by_dir.get(directory)
            entry = entries.get(key) if entries is not None else None
            if entry is None:
                return None
            if entry[0] < time.monotonic():
                del entries[key]
                return None
            return entry[1]

    def put(self, directory, address: str, answer, ttl: float) -> None:
        now = time.monotonic()
        with self._lock:
            entries = self._by_dir.get(directory)
            if entries is None:
                entries = self._by_dir[directory] = {}
            if len(entries) >= ANSWERS_MAX:
                for key in [k for k, v in entries.items() if v[0] < now]:
                    del entries[key]
                if len(entries) >= ANSWERS_MAX:
                    entries.clear()
            entries[address.lower()] = (now + ttl, answer)

    def forget(self, address: str | None = None) -> None:
        """Drop the answers for ``address`` (in every directory), or all of them."""
        with self._lock:
            if address is None:
                self._by_dir.clear()
                return
            for entries in self._by_dir.values():
                entries.pop(address.lower(), None)
