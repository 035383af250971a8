"""One read of a mailbox's changes, shared by every session of a process that watches it.

Many IDLE sessions on one folder (a user with a phone, a laptop and webmail; or a load test
holding 5,000 on ten INBOXes) all want the same answer each time the folder changes.  Instead
of each ``Mailbox`` running ``sync()`` and a record lookup per changed UID on its own SQLite
connection, the IMAP IdleHub brings the index up to date once (``Mailbox.refresh()``), reads
what changed after the lowest modseq any of those sessions has seen (``read_changes``) and
lets each session apply it in pure Python (``sync_from``), with exactly the ``SyncResult``
``Mailbox.sync()`` would have given it.

``sync_from`` moves a ``Mailbox``'s session state (the UIDs it knows, the modseq it has seen,
the index generation) the way ``Mailbox.sync()`` does; it lives here rather than in
``mailbox.py`` only because that file has another owner at the moment, and it reads those
three attributes directly.  When it cannot answer (the index was rebuilt, or the session is
older than the change set) it returns None and the caller runs ``Mailbox.sync()``.

``\\Recent`` (RFC 3501 §2.3.2: each UID recent in exactly one session) is claimed through the
index once per change set, by the first read-write session that has new messages, and only
when some new UID is not claimed yet (``first_recent_uid``); the claimed UIDs are then handed
out, each to one session.  UIDs claimed but wanted by no session this time are kept
(``unclaimed``) for the caller to pass to the next change set.
"""

from __future__ import annotations

from pymail.store.types import MessageRecord, SyncResult

_CHANGED = ("SELECT uid, flags, modseq, vsize, mtime, COALESCE(guid, base) FROM records "
            "WHERE modseq > ? ORDER BY uid")
_EXPUNGED = "SELECT uid, modseq FROM expunged WHERE modseq > ? ORDER BY uid"


class ChangeSet:
    """What changed in one mailbox after modseq ``low``, as of one snapshot of its index."""

    __slots__ = ("low", "highest", "generation", "uidnext", "first_recent", "records",
                 "changed", "expunged", "_claimed", "_carry")

    def __init__(self, low: int, highest: int, generation, uidnext: int, first_recent: int,
                 records: dict, expunged: list, carry=()):
        self.low = low
        self.highest = highest
        self.generation = generation
        self.uidnext = uidnext
        self.first_recent = first_recent
        self.records = records          # uid → MessageRecord, every row with modseq > low
        self.changed = sorted(records)  # those uids, ascending
        self.expunged = expunged        # [(uid, modseq)] with modseq > low, by uid
        self._claimed: set | None = None
        self._carry = set(carry)

    def lookup(self, uids) -> dict:
        """uid → current record for those of ``uids`` that changed (absent: expunged)."""
        records = self.records
        return {u: records[u] for u in uids if u in records}

    def claim(self, mailbox, new_uids) -> set:
        """The UIDs of ``new_uids`` that are \\Recent in the calling session."""
        if not new_uids:
            return set()
        if self._claimed is None:
            self._claimed = set(self._carry)
            if max(new_uids) >= self.first_recent:  # else another session has them already
                self._claimed.update(mailbox.claim_recent())
        mine = self._claimed.intersection(new_uids)
        self._claimed -= mine
        return mine

    def unclaimed(self) -> set:
        """UIDs claimed for this process's sessions that none of them took yet."""
        return set(self._carry) if self._claimed is None else set(self._claimed)


def seen_modseq(mailbox) -> int | None:
    """The highest modseq this ``Mailbox`` session has looked at (None: unknown)."""
    value = getattr(mailbox, "seen_modseq", None)
    return value if isinstance(value, int) else None


def read_changes(mailbox, low: int, carry=()) -> ChangeSet:
    """Everything changed after modseq ``low``, in one read transaction (bring the index up
    to date first: ``mailbox.refresh()``)."""
    index = mailbox.index
    flagsets: dict[str, frozenset] = {}
    with index.read() as db:
        highest = int(index.get("highest_modseq", 0, db))
        generation = index.get("generation", None, db)
        uidnext = int(index.get("uidnext", 1, db))
        first_recent = int(index.get("first_recent_uid", 1, db))
        rows = db.execute(_CHANGED, (low,)).fetchall() if highest > low else []
        gone = db.execute(_EXPUNGED, (low,)).fetchall() if highest > low else []
    records = {}
    for uid, text, modseq, vsize, mtime, guid in rows:
        flags = flagsets.get(text)
        if flags is None:
            flags = flagsets[text] = frozenset(text.split(" ")) if text else frozenset()
        records[uid] = tuple.__new__(MessageRecord, (uid, flags, modseq, vsize, mtime, guid))
    return ChangeSet(low, highest, generation, uidnext, first_recent, records,
                     [(u, m) for u, m in gone], carry)


def sync_from(mailbox, changes: ChangeSet) -> SyncResult | None:
    """``mailbox.sync()``'s answer computed from ``changes`` without touching the index, or
    None when ``changes`` cannot give it (then call ``mailbox.sync()``); a store without
    ``Mailbox.sync_from`` always gets None."""
    method = getattr(mailbox, "sync_from", None)
    return method(changes) if method is not None else None
