"""Queue IDs: sortable by arrival, unique across processes (like Postfix's long queue IDs)."""

from __future__ import annotations

import os
import secrets
import time

_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"  # no vowels: IDs never spell words


def _encode(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, len(_ALPHABET))
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_queue_id() -> str:
    """12 chars of microsecond time + 6 random chars, e.g. ``0B4ZQ1L7MKBX3C9K2Q``."""
    return _encode(time.time_ns() // 1000, 12) + _encode(secrets.randbits(30) ^ os.getpid(), 6)


def valid_queue_id(text: str) -> bool:
    return len(text) == 18 and all(c in _ALPHABET for c in text)


def queue_id_time(queue_id: str) -> float:
    """The arrival time (unix seconds) a queue ID encodes."""
    n = 0
    for c in queue_id[:12]:
        n = n * len(_ALPHABET) + _ALPHABET.index(c)
    return n / 1e6
