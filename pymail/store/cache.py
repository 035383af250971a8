"""The parse cache part of Mailbox: BODYSTRUCTURE and the header block kept in the index
(``parsed`` table) so a message is parsed once, at delivery or first access.  ENVELOPE is
made from the cached header block when asked (it needs nothing else)."""

from __future__ import annotations

import json

from pymail.store import parse
from pymail.store.errors import StoreError
from pymail.store.index import SCAN_THRESHOLD, select_in


def parsed_row(raw: bytes) -> tuple[None, None, str, bytes]:
    """(None, None, bodystructure JSON, header bytes) for the parse cache's (envelope, body,
    bodystructure, header) columns.  BODY is derived from BODYSTRUCTURE and ENVELOPE from the
    header when asked, so neither is stored: a stored ENVELOPE was 40 % of this function's
    time, at every delivery, and IMAP makes its own from the header (older files may still
    hold one in the column; it is not read)."""
    header, _ = parse.split_message(raw)
    return None, None, _dump(parse.bodystructure(raw, extended=True)), header


def _dump(value) -> str:
    return json.dumps(parse.to_json(value), separators=(",", ":"))


HEADER_CHUNK = 16384   # a header-only fill reads the file this much at a time


def read_header(f) -> bytes:
    """The header block of the message in ``f`` (as ``parse.split_message`` gives it), read only
    as far as the first blank line.  A separator found in a prefix is the one the whole file
    has: ``\r?\n\r?\n`` ends with its last character, so a match cannot grow with more data."""
    data = b""
    while True:
        chunk = f.read(HEADER_CHUNK)
        data += chunk
        if data.startswith(b"\r\n") or data.startswith(b"\n") or not chunk \
                or parse.HEADER_SPLIT.search(data):
            return parse.split_message(data)[0]


class ParseCache:
    """Mixin of Mailbox: needs self.index, self.open_message.

    A row of the parse cache is either complete (BODYSTRUCTURE, header) or header-only
    (bodystructure NULL): ``cache_all`` — what FETCH of headers or ENVELOPE and SEARCH HEADER
    use on many messages — reads each file only up to its blank line and skips the MIME parse;
    the first ``bodystructure()`` of such a message parses it whole and completes the row."""

    def envelope(self, uid: int) -> list:
        """ENVELOPE (RFC 3501 §7.4.2) from the cached header block."""
        return parse.envelope(bytes(self._parsed(uid)[3]))

    def bodystructure(self, uid: int, extended: bool = True) -> list:
        """BODYSTRUCTURE (``extended``) or BODY shape of RFC 3501 §7.4.2."""
        structure = parse.from_json(json.loads(self._parsed(uid, full=True)[2]))
        return structure if extended else parse.bodystructure_strip(structure)

    def raw_header(self, uid: int) -> bytes:
        """The header block as stored, with its closing blank line."""
        return bytes(self._parsed(uid)[3])

    def header_fields(self, uid: int, names, negate: bool = False) -> bytes:
        """BODY[HEADER.FIELDS (names)] (or .NOT with ``negate``): CRLF lines + blank line."""
        return parse.select_fields(bytes(self._parsed(uid)[3]), names, negate)

    def header_fields_many(self, uids, names, negate: bool = False) -> dict[int, bytes]:
        """header_fields for many messages with one index query (FETCH 1:* BODY[HEADER...])."""
        wanted = set(uids)
        self.cache_all(wanted)
        select = parse.field_selector(names, negate)
        return {uid: select(header) for uid, header in self._cached_headers(wanted)}

    def raw_headers_many(self, uids) -> dict[int, bytes]:
        """raw_header for many messages with one index query (SEARCH HEADER over a mailbox).
        Only what the parse cache already holds: messages not parsed yet (or expunged) are left
        out, so the caller decides whether to parse them (``raw_header``, ``cache_all``)."""
        return {uid: bytes(header) for uid, header in self._cached_headers(set(uids))}

    def _cached_headers(self, wanted: set[int]):
        """(uid, header block) rows of the parse cache for ``wanted``, in as few queries as fit."""
        if len(wanted) > SCAN_THRESHOLD:   # most of a big mailbox: one table scan is cheapest
            for uid, header in self.index.db.execute("SELECT uid, header FROM parsed"):
                if uid in wanted:
                    yield uid, header
            return
        yield from select_in(self.index.db, "SELECT uid, header FROM parsed WHERE uid IN "
                             "({marks})", sorted(wanted))

    def complete_parsed(self, uids) -> int:
        """Parse whole (BODYSTRUCTURE) the messages among ``uids`` whose cache row is
        missing or header-only, with one write transaction for all of them (FETCH
        BODYSTRUCTURE over a folder filled header-only).  → how many were parsed."""
        wanted = sorted(set(uids))
        done = {r[0] for r in select_in(self.index.db, "SELECT uid FROM parsed WHERE uid IN "
                                        "({marks}) AND bodystructure IS NOT NULL", wanted)}
        todo = [u for u in wanted if u not in done]
        rows = []
        for uid in todo:
            try:
                with self.open_message(uid) as f:
                    rows.append((uid, *parsed_row(f.read())))
            except StoreError:
                continue
        self._store_parsed_rows(rows)
        return len(rows)

    def _store_parsed_rows(self, rows) -> None:
        """(uid, envelope, body, bodystructure, header) rows into the cache, in one
        transaction; rows of messages expunged meanwhile are dropped."""
        if not rows:
            return
        with self.index.write() as db:
            db.executemany("INSERT OR REPLACE INTO parsed (uid, envelope, body, bodystructure,"
                           " header) SELECT ?,?,?,?,? WHERE EXISTS "
                           "(SELECT 1 FROM records WHERE uid=?)",
                           [(*row, row[0]) for row in rows])

    def _parsed(self, uid: int, full: bool = False):
        row = self.index.db.execute(
            "SELECT envelope, body, bodystructure, header FROM parsed WHERE uid=?",
            (uid,)).fetchone()
        if row is not None and (not full or row[2] is not None):
            return row
        with self.open_message(uid) as f:
            raw = f.read()
        row = parsed_row(raw)
        with self.index.write() as db:
            if db.execute("SELECT 1 FROM records WHERE uid=?", (uid,)).fetchone():
                db.execute("INSERT OR REPLACE INTO parsed (uid, envelope, body, bodystructure, "
                           "header) VALUES (?,?,?,?,?)", (uid, *row))
        return row

    def cache_all(self, uids=None) -> int:
        """Cache the header block of every message not yet in the parse cache (each file read
        once, up to its blank line).  → how many were added."""
        if uids is not None and len(uids) <= SCAN_THRESHOLD:
            wanted = sorted(set(uids))
            have = {r[0] for r in select_in(self.index.db,
                                            "SELECT uid FROM parsed WHERE uid IN ({marks})", wanted)}
            todo = [u for u in wanted if u not in have]
        else:
            todo = [r[0] for r in self.index.db.execute(
                "SELECT uid FROM records WHERE uid NOT IN (SELECT uid FROM parsed) ORDER BY uid")]
            if uids is not None:
                wanted_set = set(uids)
                todo = [u for u in todo if u in wanted_set]
        done = 0
        for i in range(0, len(todo), 500):
            batch = []
            for uid in todo[i:i + 500]:
                try:
                    with self.open_message(uid) as f:
                        batch.append((uid, None, None, None, read_header(f)))
                except StoreError:
                    continue
            self._store_parsed_rows(batch)
            done += len(batch)
        return done
