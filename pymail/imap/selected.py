"""The selected mailbox as this session sees it: sequence numbers, flags, \\Recent, pending
expunges (RFC 3501 §2.3.1.2, §5.2, §7.4.1).

All methods are blocking (store I/O) and run in a thread, one at a time per session. Changes made
by other sessions or processes are learnt with ``Mailbox.sync()`` and turned into untagged
responses at command boundaries; expunges are held back while a FETCH, STORE or SEARCH by
sequence number runs (RFC 3501 §7.4.1), so sequence numbers never shift under a client.
"""

from __future__ import annotations

import bisect
import operator

from pymail.imap import serialize
from pymail.imap.parser import Atom
from pymail.imap.sequence import compress
from pymail.store.changeset import sync_from
from pymail.store.types import with_date

_UID, _FLAGS, _MODSEQ = (operator.itemgetter(i) for i in range(3))   # MessageRecord fields


def unclaimed_recent(mailbox) -> int:
    """The lowest UID no session has claimed as \\Recent yet (for EXAMINE and STATUS RECENT).

    The store has ``claim_recent()`` but no read-only peek (a seam gap, see docs/imap.md): this
    reads the same index value ``claim_recent`` advances, and says "none" if it cannot.
    """
    try:
        return int(mailbox.index.get("first_recent_uid", 1))
    except (AttributeError, TypeError, ValueError):
        return mailbox.uidnext


def _lookup(mailbox, uids: set) -> dict:
    """uid → MessageRecord for ``uids`` that still exist: one query each for a few, one scan
    of ``records()`` for many (or when the store has no per-uid lookup)."""
    if not uids:
        return {}
    record = getattr(mailbox, "record", None)
    if record is None or len(uids) > 2000:
        return {r.uid: r for r in mailbox.records() if r.uid in uids}
    out = {}
    for uid in uids:
        r = record(uid)
        if r is not None:
            out[uid] = r
    return out


class SelectedMailbox:
    def __init__(self, name: str, mailbox, readonly: bool):
        self.name = name
        self.mailbox = mailbox
        self.readonly = readonly
        self.uids: list[int] = []
        self.flags: dict[int, frozenset] = {}
        self.modseqs: dict[int, int] = {}
        self.records: dict[int, object] = {}  # uid → MessageRecord (size, internal date)
        self.recent: set[int] = set()
        self.gone: set[int] = set()  # expunged in the store, not yet announced
        self.uidnext = 0
        self.keywords: set[str] = set()
        self.condstore = False  # send MODSEQ in FETCH updates (RFC 7162 §3.2)
        self.qresync = False  # VANISHED instead of EXPUNGE (RFC 7162 §3.2.10)
        self.rev2 = False  # IMAP4rev2 (RFC 9051): no \\Recent, no RECENT responses
        self.contexts: dict = {}  # the session's updating searches (RFC 5267), told of expunges

    # --- opening -------------------------------------------------------------------------
    def open(self) -> None:
        """Fill the view from a Mailbox just opened (its constructor brought the index up to
        date, so no extra ``sync()`` here: in the store's one-second "dirty" window after a
        change each one rescans the folder).  SELECT claims \\Recent first (that refreshes the
        index too) and then reads the records, so a message arriving in between is both in
        the view and \\Recent here rather than claimed but not shown."""
        mb = self.mailbox
        claimed = None if self.readonly else mb.claim_recent()
        recs = mb.records()
        # built by map/zip in C: a 100,000-message SELECT spent 30 ms in comprehensions here
        self.uids = list(map(_UID, recs))
        self.records = dict(zip(self.uids, recs))
        self.flags = dict(zip(self.uids, map(_FLAGS, recs)))
        self.modseqs = dict(zip(self.uids, map(_MODSEQ, recs)))
        if claimed is not None:
            self.recent = set(claimed) & self.records.keys()
        else:  # EXAMINE shows what is recent without claiming it (RFC 3501 §6.3.2)
            first = unclaimed_recent(mb)
            self.recent = {u for u in self.uids if u >= first}
        self.uidnext = mb.uidnext
        self._announced_exists = len(self.uids)
        self._note_keywords()
        self._announced_keywords = set(self.keywords)

    def missing_dates(self, uids) -> list[int]:
        """Those of ``uids`` whose internal date the view does not know yet (no store access)."""
        records = self.records
        return [u for u in uids if (r := records.get(u)) is not None and r.internal_date is None]

    def fill_internal_dates(self, uids) -> None:
        """Make sure ``records[uid].internal_date`` is known for ``uids`` (a bulk-built index
        reads dates on first use; ``Mailbox.internal_dates``).  Blocking: call in a thread."""
        missing = self.missing_dates(uids)
        if not missing:
            return
        dates = self.mailbox.internal_dates(missing)
        records = self.records
        for uid in missing:
            rec = records.get(uid)
            if rec is not None:   # 0 (1970) for a message expunged meanwhile
                records[uid] = with_date(rec, dates.get(uid, 0.0))

    def _note_keywords(self, uids=None) -> None:
        # the store shares one frozenset per distinct flag combination: look at each once
        flagsets = set(self.flags.values()) if uids is None else (self.flags.get(u, ()) for u in uids)
        for fl in flagsets:
            for f in fl:
                if not f.startswith("\\"):
                    self.keywords.add(f)

    @property
    def exists(self) -> int:
        return len(self.uids)

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        return i + 1 if i < len(self.uids) and self.uids[i] == uid else None

    def first_unseen_seq(self) -> int | None:
        for i, uid in enumerate(self.uids):
            if "\\Seen" not in self.flags.get(uid, ()):
                return i + 1
        return None

    def flag_names(self) -> list[str]:
        return ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"] + sorted(self.keywords)

    # --- resolving sets --------------------------------------------------------------------
    def select(self, seqset, by_uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) pairs named by a sequence set, in ascending order."""
        if not self.uids:
            return []
        out: list[tuple[int, int]] = []
        uids = self.uids
        if by_uid:
            ranges = seqset.resolve(uids[-1])
            for low, high in ranges:
                i = bisect.bisect_left(uids, low)
                j = bisect.bisect_right(uids, high, lo=i)
                out.extend(zip(range(i + 1, j + 1), uids[i:j]))
        else:
            n = len(uids)
            ranges = seqset.resolve(n)
            for low, high in ranges:
                i, j = max(low, 1) - 1, min(high, n)
                out.extend(zip(range(i + 1, j + 1), uids[i:j]))
        # one range (1:*, the common case) comes out ascending and without repeats already
        return out if len(ranges) == 1 else sorted(set(out))

    def seq_set_valid(self, seqset) -> bool:
        """A message sequence number beyond EXISTS is an error (RFC 3501 §9, seq-number)."""
        n = len(self.uids)
        return all((low is None or low <= n) and (high is None or high <= n)
                   for low, high in seqset.ranges)

    # --- updates ---------------------------------------------------------------------------
    def fetch_line(self, uid: int, with_uid: bool) -> bytes | None:
        seq = self.seq_of(uid)
        if seq is None:
            return None
        items: list = []
        if with_uid:
            items += [Atom("UID"), uid]
        items += [Atom("FLAGS"), self.flag_atoms(uid)]
        if self.condstore:
            items += [Atom("MODSEQ"), [self.modseqs.get(uid, 0)]]
        return serialize.untagged(seq, "FETCH", items)

    def flag_atoms(self, uid: int) -> list:
        flags = sorted(self.flags.get(uid, ()))
        if uid in self.recent and not self.rev2:
            flags.append("\\Recent")
        return [Atom(f) for f in flags]

    def apply_records(self, records) -> None:
        for r in records:
            if r.uid in self.flags:
                self.flags[r.uid] = r.flags
                self.modseqs[r.uid] = r.modseq
                for f in r.flags:
                    if not f.startswith("\\"):
                        self.keywords.add(f)

    def refresh(self, allow_expunge: bool, with_uid: bool = False) -> list[bytes]:
        """Untagged responses for what changed since the last refresh.

        With ``shared_changes`` set (the IdleHub does, for every idling session of a folder:
        one index read per folder and tick, see ``pymail.store.changeset``) the changes come
        from there without a query of this session's own; otherwise from ``Mailbox.sync()``."""
        mb = self.mailbox
        shared, self.shared_changes = self.shared_changes, None
        res = sync_from(mb, shared) if shared is not None else None
        if res is None:
            shared = None
            res = mb.sync()
        out: list[bytes] = []
        changed_flags: list[int] = []
        if res.added or res.expunged or res.flag_changes:
            wanted = set(res.added) | set(res.flag_changes)
            # only what changed: cheap on a 100k mailbox
            current = shared.lookup(wanted) if shared is not None else _lookup(mb, wanted)
            known = self.flags
            for uid in res.expunged:
                if uid in known:
                    self.gone.add(uid)
            for uid in wanted:
                if uid not in current and uid in known:  # changed, then expunged meanwhile
                    self.gone.add(uid)
            for uid in sorted(wanted & known.keys()):
                r = current.get(uid)
                if r is None or uid in self.gone:
                    continue
                self.modseqs[uid] = r.modseq
                if r.flags != known[uid]:
                    self.flags[uid] = r.flags
                    changed_flags.append(uid)
            last = self.uids[-1] if self.uids else 0
            new = sorted(u for u in res.added if u in current and u not in known and u > last)
            if new:
                for uid in new:
                    self.uids.append(uid)
                    self.flags[uid] = current[uid].flags
                    self.modseqs[uid] = current[uid].modseq
                    self.records[uid] = current[uid]
                if shared is not None:
                    if not self.readonly:
                        self.recent |= shared.claim(mb, new)
                    self.uidnext = max(shared.uidnext, self.uids[-1] + 1)
                else:
                    if not self.readonly:
                        self.recent |= set(mb.claim_recent()) & set(new)
                    self.uidnext = max(mb.uidnext, self.uids[-1] + 1)
            self._note_keywords(changed_flags + new)
        out += self.keyword_lines()
        if allow_expunge and self.gone:
            out += self.announce_expunges(self.gone)
        seen_lines = set()
        for uid in changed_flags:
            if uid in seen_lines:
                continue
            seen_lines.add(uid)
            line = self.fetch_line(uid, with_uid)
            if line:
                out.append(line)
        if self._announced_exists != len(self.uids):
            # The client's count: what it was told minus the EXPUNGEs it got since.
            out.append(serialize.untagged(len(self.uids), "EXISTS"))
            if not self.rev2:
                out.append(serialize.untagged(len(self.recent), "RECENT"))
            self._announced_exists = len(self.uids)
        return out

    def keyword_lines(self) -> list[bytes]:
        """``* FLAGS (...)`` when a keyword appeared, before any FETCH shows it (RFC 3501 §7.2.6)."""
        if self.keywords == self._announced_keywords:
            return []
        self._announced_keywords = set(self.keywords)
        return [serialize.untagged("FLAGS", [Atom(f) for f in self.flag_names()])]

    _announced_exists = -1
    _announced_keywords: set = set()
    shared_changes = None  # a ChangeSet for the next refresh() only (set by the IdleHub)

    def vanished_since(self, modseq: int, within=None) -> list[int]:
        """UIDs expunged after ``modseq`` (from the store's change log), optionally only those
        in the UID set ``within``."""
        largest = max(self.uidnext - 1, 1)
        return sorted({c.uid for c in self.mailbox.changes_since(modseq) if c.kind == "expunge"
                       and (within is None or within.contains(c.uid, largest))})

    def resync_lines(self, modseq: int, known) -> list[bytes]:
        """SELECT (QRESYNC ...): VANISHED (EARLIER) and FETCH of what changed (RFC 7162 §3.2.5)."""
        out = []
        gone = self.vanished_since(modseq, known)
        if gone:
            out.append(serialize.untagged("VANISHED", "(EARLIER)", Atom(compress(gone))))
        for uid in self.uids:
            if self.modseqs.get(uid, 0) > modseq:
                items = [Atom("UID"), uid, Atom("FLAGS"), self.flag_atoms(uid),
                         Atom("MODSEQ"), [self.modseqs[uid]]]
                out.append(serialize.untagged(self.seq_of(uid), "FETCH", items))
        return out

    def announce_expunges(self, uids) -> list[bytes]:
        """``* n EXPUNGE`` for each uid still in the view, highest sequence first (or one
        ``* VANISHED uid-set`` once QRESYNC is enabled)."""
        out = []
        for ctx in self.contexts.values():
            # REMOVEFROM goes first, while the numbers still name the messages (RFC 5267 §4.3)
            out += ctx.expunging(self, uids)
        vanished = []
        for uid in sorted(set(uids), reverse=True):
            seq = self.seq_of(uid)
            if seq is None:
                continue
            if self.qresync:
                vanished.append(uid)
            else:
                out.append(serialize.untagged(seq, "EXPUNGE"))
            self._announced_exists -= 1
            del self.uids[seq - 1]
            self.flags.pop(uid, None)
            self.modseqs.pop(uid, None)
            self.records.pop(uid, None)
            self.recent.discard(uid)
        self.gone -= set(uids)
        if vanished:
            out.append(serialize.untagged("VANISHED", Atom(compress(vanished))))
        return out
