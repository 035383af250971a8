"""Search contexts (RFC 5267 CONTEXT=SEARCH / CONTEXT=SORT): PARTIAL results and UPDATE.

A SEARCH or SORT with ``RETURN (UPDATE)`` stays live: after every command the session re-runs
it and reports ``ESEARCH (TAG "t") ADDTO (position set)`` / ``REMOVEFROM (position set)`` until
the client sends CANCELUPDATE or the mailbox is closed.
"""

from __future__ import annotations

from typing import Callable

from pymail.imap import serialize
from pymail.imap.sequence import compress, ordered_compress


def partial_text(numbers: list[int], low: int, high: int, sort_order: bool) -> str:
    """``PARTIAL (low:high set)`` — positions are 1-based into the result (RFC 5267 §4.4)."""
    chosen = numbers[low - 1:high]
    shown = (ordered_compress(chosen) if sort_order else compress(chosen)) if chosen else "NIL"
    return f"PARTIAL ({low}:{high} {shown})"


class UpdatingSearch:
    def __init__(self, tag: str, uid: bool, compute: Callable[[object], list[tuple[int, int]]],
                 result: list[tuple[int, int]]):
        self.tag = tag
        self.uid = uid
        self.compute = compute  # view → ordered (seq, uid) pairs; runs in a thread
        self.uids = [u for _, u in result]

    def updates(self, view, old_seq: dict[int, int]) -> list[bytes]:
        """REMOVEFROM / ADDTO lines for what changed (``old_seq``: uid → seq before refresh)."""
        new = [u for _, u in self.compute(view)]
        new_set, old_set = set(new), set(self.uids)
        out = []
        removed = [u for u in self.uids if u not in new_set]
        if removed:
            position = self.uids.index(removed[0]) + 1
            nums = [u if self.uid else old_seq.get(u, view.seq_of(u) or 0) for u in removed]
            out.append(self._line("REMOVEFROM", position, sorted(n for n in nums if n)))
        added = [u for u in new if u not in old_set]
        if added:
            position = new.index(added[0]) + 1
            nums = [u if self.uid else view.seq_of(u) for u in added]
            out.append(self._line("ADDTO", position, [n for n in nums if n]))
        self.uids = new
        return out

    def expunging(self, view, uids) -> list[bytes]:
        """REMOVEFROM for results about to be expunged, numbered before they go."""
        doomed = set(uids)
        removed = [u for u in self.uids if u in doomed and view.seq_of(u) is not None]
        if not removed:
            return []
        position = self.uids.index(removed[0]) + 1
        nums = sorted(u if self.uid else view.seq_of(u) for u in removed)
        self.uids = [u for u in self.uids if u not in doomed]
        return [self._line("REMOVEFROM", position, nums)]

    def _line(self, kind: str, position: int, numbers: list[int]) -> bytes:
        head = f"ESEARCH (TAG {serialize.string(self.tag).decode()})" + (" UID" if self.uid else "")
        return f"* {head} {kind} ({position} {compress(numbers)})\r\n".encode()
