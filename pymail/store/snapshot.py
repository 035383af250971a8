"""A records view saved in the index, for the first look of another process.

Sessions of one process share their records view (``mailbox._publish_view``), but a session in
another process — the second IMAP worker, another host on the same storage — read every row
back: 16 ms in-process for 10,000 messages (23–41 ms over IMAP), a quarter of a second for
100,000.  The process that has a view saves it here now and then (``save``, from the WAL
keeper's thread, never inside a command), and a process without one starts from it
(``load``) and reads only the rows changed since, as it does after any change.

The view is stored as packed columns (``array`` bytes, one text of NUL-separated GUIDs, flag
sets as indexes into a short list of their texts): unpacking them cannot run code or crash the
process, whatever the file holds, and a damaged or short column only means the rows are read
as before.  A snapshot holds what the index can rebuild: it belongs to one generation (a
rebuild makes it useless) and to one modseq (later changes are read from the rows).
"""

from __future__ import annotations

import json
import operator
from array import array
from itertools import repeat

from pymail.store.types import MessageRecord

MIN_MESSAGES = 2000     # a smaller view reads from the rows in a few milliseconds anyway
STALE_SHARE = 20        # saved again once 1/STALE_SHARE of the messages changed since
_NO_DATE = float("nan")  # an internal date not read yet (None in the view)

_UID, _FLAGS, _MODSEQ, _SIZE, _DATE, _GUID = (operator.itemgetter(i) for i in range(6))
_COLUMNS = "count, uids, modseqs, sizes, dates, flag_texts, flag_index, guids"


def pack(ordered: list) -> tuple:
    """The columns (count, uids, modseqs, sizes, dates, flag texts, flag indexes, guids) of a
    records view ordered by UID."""
    texts: dict[frozenset, int] = {}
    for flags in set(map(_FLAGS, ordered)):
        texts[flags] = len(texts)
    dates = array("d", (_NO_DATE if d is None else d for d in map(_DATE, ordered)))
    return (len(ordered),
            array("q", map(_UID, ordered)).tobytes(),
            array("q", map(_MODSEQ, ordered)).tobytes(),
            array("q", map(_SIZE, ordered)).tobytes(),
            dates.tobytes(),
            json.dumps([" ".join(sorted(f)) for f in texts]),
            array("I", map(texts.__getitem__, map(_FLAGS, ordered))).tobytes(),
            "\0".join(map(_GUID, ordered)))


def unpack(row, flagset) -> list | None:
    """The records view from ``pack``'s columns, flag sets made by ``flagset(text)``; None if
    the columns do not fit together."""
    try:
        count, uids, modseqs, sizes, dates, flag_texts, flag_index, guids = row
        columns = []
        for code, data in (("q", uids), ("q", modseqs), ("q", sizes), ("d", dates),
                           ("I", flag_index)):
            column = array(code)
            column.frombytes(data)
            if len(column) != count:
                return None
            columns.append(column)
        uid_col, modseq_col, size_col, date_col, index_col = columns
        flagsets = [flagset(text) for text in json.loads(flag_texts)]
        guid_col = guids.split("\0") if count else []
        if len(guid_col) != count:
            return None
        date_list = [None if d != d else d for d in date_col]      # NaN: not read yet
        return list(map(tuple.__new__, repeat(MessageRecord),
                        zip(uid_col, map(flagsets.__getitem__, index_col), modseq_col,
                            size_col, date_list, guid_col)))
    except (ValueError, TypeError, IndexError):
        return None


def load(db, generation, highest: int, flagset):
    """(modseq, records view) saved for ``generation`` at or below ``highest``, or None."""
    row = db.execute(f"SELECT modseq, {_COLUMNS} FROM snapshot WHERE id = 1 AND generation = ?",
                     (generation,)).fetchone()
    if row is None or row[0] > highest:
        return None
    ordered = unpack(row[1:], flagset)
    return None if ordered is None else (row[0], ordered)


def wanted(db, generation, modseq: int, count: int) -> bool:
    """Should a view of ``count`` messages at (``generation``, ``modseq``) be saved?  Yes when
    the index has none for this generation, or its snapshot is older by more than
    1/``STALE_SHARE`` of the messages changed."""
    if count < MIN_MESSAGES:
        return False
    row = db.execute("SELECT generation, modseq FROM snapshot WHERE id = 1").fetchone()
    if row is None or row[0] != generation:
        return True
    if row[1] >= modseq:
        return False
    changed = db.execute("SELECT (SELECT count(*) FROM records WHERE modseq > ?1) + "
                         "(SELECT count(*) FROM expunged WHERE modseq > ?1)",
                         (row[1],)).fetchone()[0]
    return changed * STALE_SHARE > count


def save(db, generation, modseq: int, columns: tuple) -> bool:
    """Store a view's ``pack``ed columns (inside a write transaction) if the index is still at
    ``generation``; True if stored."""
    current = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    if current is None or current[0] != generation:
        return False
    db.execute(f"INSERT OR REPLACE INTO snapshot (id, generation, modseq, {_COLUMNS}) "
               f"VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", (generation, modseq, *columns))
    return True
