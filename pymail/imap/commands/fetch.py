"""FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2; RFC 7162 CHANGEDSINCE / MODSEQ).

Messages are read and formatted in a thread, in batches, so a ``1:*`` fetch of a large mailbox
neither blocks the reactor nor holds every message in memory at once.
"""

from __future__ import annotations

import binascii
import functools
import re
import time

from pymail.imap import mime, serialize
from pymail.imap.fetchspec import FetchItem, parse_fetch_items
from pymail.imap.parser import Atom, number
from pymail.imap.sequence import compress, parse_sequence_set
from pymail.imap.session import SELECTED, ImapError, bad, command

BATCH = 500
BULK_BYTES = 1 << 20  # when message bodies are sent: about this much per batch


def _yield_to_reactor():
    """A Deferred that fires on the reactor's next turn (other connections get served)."""
    from twisted.internet import reactor, task

    return task.deferLater(reactor, 0, lambda: None)


def _batches(view, pairs, bulk: bool):
    """Slices of ``pairs``: BATCH messages, or about BULK_BYTES of message when bodies go out."""
    i = 0
    while i < len(pairs):
        if not bulk:
            yield pairs[i:i + BATCH]
            i += BATCH
            continue
        j, total = i, 0
        while j < len(pairs) and (j == i or (total < BULK_BYTES and j - i < BATCH)):
            rec = view.records.get(pairs[j][1])
            total += rec.size if rec is not None else 0
            j += 1
        yield pairs[i:j]
        i = j
ENVELOPE_KEY = (("DATE", "SUBJECT", "FROM", "SENDER", "REPLY-TO", "TO", "CC", "BCC", "IN-REPLY-TO",
                 "MESSAGE-ID"), False)
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def internal_date(t: float) -> bytes:
    """RFC 3501 date-time: ``"02-Jan-2024 10:00:00 +0000"`` (UTC)."""
    tm = time.gmtime(t)
    return b'"%2d-%s-%04d %02d:%02d:%02d +0000"' % (tm.tm_mday, MONTHS[tm.tm_mon - 1].encode(),
                                                     tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec)


def targets_for(session, value, by_uid: bool) -> list[tuple[int, int]]:
    """(seq, uid) pairs for a sequence set argument, ``$`` included (RFC 5182)."""
    view = session.selected
    seqset = parse_sequence_set(value)
    if seqset.saved:
        saved = set(session.saved_search)
        return [(view.seq_of(u), u) for u in sorted(saved) if view.seq_of(u) is not None]
    if not by_uid and not view.seq_set_valid(seqset):
        raise bad("Invalid sequence number: beyond the last message")
    return view.select(seqset, by_uid)


def _partial(data: bytes, item: FetchItem) -> bytes:
    if item.partial is None:
        return data
    origin, length = item.partial
    return data[origin:origin + length] if length is not None else data[origin:]


SIMPLE_ITEMS = {"UID", "FLAGS", "MODSEQ", "RFC822.SIZE", "INTERNALDATE"}


def _flags_text(view, uid: int) -> bytes:
    flags = sorted(view.flags.get(uid, ()))
    if uid in view.recent and not view.rev2:
        flags.append("\\Recent")
    return ("FLAGS (" + " ".join(flags) + ")").encode("utf-8")


def _simple_line(seq: int, uid: int, items, view, rec, add_flags: bool) -> bytes:
    """The common Thunderbird/mbsync sync line without the generic serializer (100k messages)."""
    parts = []
    for item in items:
        name = item.name
        if name == "UID":
            parts.append(b"UID %d" % uid)
        elif name == "FLAGS":
            parts.append(_flags_text(view, uid))
        elif name == "MODSEQ":
            parts.append(b"MODSEQ (%d)" % view.modseqs.get(uid, rec.modseq))
        elif name == "RFC822.SIZE":
            parts.append(b"RFC822.SIZE %d" % rec.size)
        else:
            parts.append(b"INTERNALDATE " + internal_date(rec.internal_date))
    if add_flags:
        parts.append(_flags_text(view, uid))
    return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"


def needs_full_message(item: FetchItem) -> bool:
    """Items the store's parse cache cannot answer (everything but the top-level header)."""
    if item.name in ("RFC822", "RFC822.TEXT", "BINARY", "BINARY.SIZE"):
        return True
    if item.section is None:
        return False
    return bool(item.section.part) or item.section.spec not in ("HEADER", "HEADER.FIELDS",
                                                                "HEADER.FIELDS.NOT")


class Source:
    """One message's data for FETCH: the store's parse cache first, the raw message if needed."""

    def __init__(self, mb, uid: int, msg: mime.Part | None, header_cache: dict,
                 utf8: bool = False):
        self.mb = mb
        self.uid = uid
        self.msg = msg
        self.header_cache = header_cache
        self.utf8 = utf8

    def header(self) -> bytes:
        if self.msg is not None:
            return self.msg.header_bytes
        return mime.to_crlf(self.mb.raw_header(self.uid))

    def fields(self, section) -> bytes:
        key = (section.fields, section.spec == "HEADER.FIELDS.NOT")
        cached = self.header_cache.get(key, {}).get(self.uid)
        if cached is not None:
            return cached
        return self.mb.header_fields(self.uid, list(section.fields), key[1])


def envelope_wire(msg: mime.Part, utf8: bool) -> serialize.Raw:
    """``serialize.value(mime.envelope(msg), utf8)``, made directly: a FETCH ENVELOPE of
    10,000 messages spent half its time walking the nested lists in the generic serialiser,
    and address headers repeat (From, To), so each distinct one is serialised once."""
    h = mime.envelope_headers(msg)
    frm = _addresses_wire(h("from"), utf8)
    sender = _addresses_wire(h("sender"), utf8)
    reply_to = _addresses_wire(h("reply-to"), utf8)
    # RFC 3501 §7.4.2: a missing Sender or Reply-To is set to From
    return serialize.Raw(b"(" + b" ".join((
        _nstring_wire(h("date"), utf8), _nstring_wire(h("subject"), utf8), frm,
        frm if sender == b"NIL" else sender, frm if reply_to == b"NIL" else reply_to,
        _addresses_wire(h("to"), utf8), _addresses_wire(h("cc"), utf8),
        _addresses_wire(h("bcc"), utf8), _nstring_wire(h("in-reply-to"), utf8),
        _nstring_wire(h("message-id"), utf8))) + b")")


def _nstring_wire(value: bytes | None, utf8: bool) -> bytes:
    return b"NIL" if value is None else serialize.string(value, utf8)


@functools.lru_cache(maxsize=4096)
def _addresses_wire(raw: bytes | None, utf8: bool) -> bytes:
    return serialize.value(mime.address_list(raw), utf8)


def _item_value(item: FetchItem, src: Source, rec, view, uid: int) -> list:
    name = item.name
    msg = src.msg
    if name == "FLAGS":
        return [Atom("FLAGS"), view.flag_atoms(uid)]
    if name == "UID":
        return [Atom("UID"), uid]
    if name == "INTERNALDATE":
        return [Atom("INTERNALDATE"), Atom(internal_date(rec.internal_date).decode())]
    if name == "RFC822.SIZE":
        return [Atom("RFC822.SIZE"), len(msg.data) if msg is not None else rec.size]
    if name == "MODSEQ":
        return [Atom("MODSEQ"), [view.modseqs.get(uid, rec.modseq)]]
    if name == "ENVELOPE":
        if msg is None:
            cached = src.header_cache.get(ENVELOPE_KEY, {}).get(uid)
            msg = mime.parse_header(cached if cached is not None else src.header())
        return [Atom("ENVELOPE"), envelope_wire(msg, src.utf8)]
    if name == "BODYSTRUCTURE":
        return [Atom("BODYSTRUCTURE"), src.mb.bodystructure(uid, True)]
    if name == "BODY" and item.section is None:
        return [Atom("BODY"), src.mb.bodystructure(uid, False)]
    if name == "RFC822":
        return [Atom("RFC822"), serialize.Literal(msg.data)]
    if name == "RFC822.HEADER":
        return [Atom("RFC822.HEADER"), serialize.Literal(src.header())]
    if name == "RFC822.TEXT":
        return [Atom("RFC822.TEXT"), serialize.Literal(msg.body_bytes)]
    section = item.section
    if name in ("BINARY", "BINARY.SIZE"):
        data = binary_content(msg, section)
        if name == "BINARY.SIZE":
            return [Atom(item.response_name()), len(data)]
        kind = serialize.Literal8 if b"\0" in data else serialize.Literal
        return [Atom(item.response_name()), kind(_partial(data, item))]
    if msg is None and section.spec == "HEADER":
        data = src.header()
    elif msg is None:
        data = src.fields(section)
    else:
        data = mime.section_bytes(msg, section)
    return [Atom(item.response_name()), serialize.Literal(_partial(data, item))]


def build_batch(session, view, pairs, items: list[FetchItem], changedsince: int | None) -> tuple[bytes, bool]:
    """The FETCH responses of some messages; (bytes, whether some were expunged)."""
    from pymail.store.errors import StoreError

    mb = view.mailbox
    sets_seen = not view.readonly and any(i.sets_seen for i in items)
    add_flags = set()
    if sets_seen:
        unseen = [u for _, u in pairs if "\\Seen" not in view.flags.get(u, ()) and u not in view.gone]
        if unseen:
            updated, _failed = mb.store_flags(unseen, ["\\Seen"], "add")
            view.apply_records(updated)
            add_flags = set(unseen)
    full = any(needs_full_message(i) for i in items)
    header_cache: dict = {}
    live = [u for _, u in pairs if u in view.records and u not in view.gone]
    if live and any(i.section is None and i.name in ("BODYSTRUCTURE", "BODY") for i in items):
        complete = getattr(mb, "complete_parsed", None)
        if complete is not None:  # parse the batch's uncached structures in one transaction
            complete(live)
    if not full and live:
        if any(i.name == "ENVELOPE" for i in items):  # one index query for the whole batch
            header_cache[ENVELOPE_KEY] = mb.header_fields_many(live, list(ENVELOPE_KEY[0]), False)
        for i in items:
            if i.section is not None and i.section.spec.startswith("HEADER.FIELDS"):
                key = (i.section.fields, i.section.spec == "HEADER.FIELDS.NOT")
                if key not in header_cache:
                    header_cache[key] = mb.header_fields_many(live, list(key[0]), key[1])
    out: list[bytes] = []
    expunged = False
    names = {i.name for i in items if i.section is None}
    simple = all(i.section is None and i.name in SIMPLE_ITEMS for i in items)
    for seq, uid in pairs:
        rec = view.records.get(uid)
        if rec is None or uid in view.gone:
            expunged = True
            continue
        if changedsince is not None and view.modseqs.get(uid, 0) <= changedsince:
            continue
        if simple:  # UID/FLAGS/MODSEQ/RFC822.SIZE/INTERNALDATE only: format directly
            out.append(_simple_line(seq, uid, items, view, rec, uid in add_flags and "FLAGS" not in names))
            continue
        try:
            msg = None
            if full:
                with mb.open_message(uid) as f:
                    msg = mime.parse_message(f.read())
            src = Source(mb, uid, msg, header_cache, session.utf8)
            values: list = []
            for item in items:
                values += _item_value(item, src, rec, view, uid)
        except StoreError as e:
            if e.code != "EXPUNGED":
                raise
            expunged = True
            continue
        if uid in add_flags and "FLAGS" not in names:
            values += [Atom("FLAGS"), view.flag_atoms(uid)]
        out.append(serialize.untagged(seq, "FETCH", values, utf8=session.utf8))
    return b"".join(out), expunged


class UnknownCte(Exception):
    pass


_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def decode_qp(body: bytes) -> bytes:
    """Quoted-printable (RFC 2045 §6.7): trailing white space dropped, ``=`` at a line end is
    a soft break, ``=XX`` an octet; anything else is kept as it is."""
    lines = body.split(b"\r\n")
    out = []
    for n, line in enumerate(lines):
        line = line.rstrip(b" \t")
        soft = line.endswith(b"=")
        if soft:
            line = line[:-1]
        out.append(_QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), line))
        if not soft and n < len(lines) - 1:
            out.append(b"\r\n")
    return b"".join(out)


def binary_content(msg: mime.Part, section) -> bytes:
    """BINARY[part] (RFC 3516 §4.2): the part's body with its transfer encoding undone."""
    if not section.part:
        return msg.data[msg.start:msg.end]
    part = mime.find_part(msg, section.part)
    if part is None:
        return b""
    body = part.body_bytes
    if part.children or part.message is not None:
        return body
    cte = (part.header("content-transfer-encoding") or b"7bit").strip().lower()
    if cte in (b"7bit", b"8bit", b"binary"):
        return body
    if cte == b"base64":
        try:
            return binascii.a2b_base64(re.sub(rb"[^A-Za-z0-9+/=]", b"", body))
        except binascii.Error:
            raise UnknownCte("Corrupt base64") from None
    if cte == b"quoted-printable":
        return decode_qp(body)
    raise UnknownCte(f"Unknown Content-Transfer-Encoding {cte[:30].decode('ascii', 'replace')}")


@command("FETCH", states=(SELECTED,), uid=True, allow_expunge=False)
async def fetch(session, cmd):
    if len(cmd.args) not in (2, 3):
        raise bad("FETCH needs a sequence set and data items")
    view = session.selected
    pairs = targets_for(session, cmd.args[0], cmd.uid)
    items = parse_fetch_items(cmd.args[1])
    changedsince = None
    vanished = False
    if len(cmd.args) == 3:  # RFC 7162 §3.1.4.1: (CHANGEDSINCE modseq [VANISHED])
        mods = cmd.args[2]
        if not isinstance(mods, list) or len(mods) not in (2, 3) or str(mods[0]).upper() != "CHANGEDSINCE":
            raise bad("Unknown FETCH modifier")
        changedsince = number(mods[1], "CHANGEDSINCE")
        if len(mods) == 3:
            if str(mods[2]).upper() != "VANISHED" or not cmd.uid or "QRESYNC" not in session.enabled:
                raise bad("VANISHED needs UID FETCH and ENABLE QRESYNC (RFC 7162 §3.2.6)")
            vanished = True
    if changedsince is not None or any(i.name == "MODSEQ" for i in items):
        await session.enable_condstore()
    if cmd.uid and not any(i.name == "UID" for i in items):
        items.insert(0, FetchItem("UID"))  # RFC 3501 §6.4.8: UID FETCH always returns UID
    if changedsince is not None and not any(i.name == "MODSEQ" for i in items):
        items.append(FetchItem("MODSEQ"))
    if vanished:
        seqset = parse_sequence_set(cmd.args[0])
        gone = await session.blocking(view.vanished_since, changedsince, seqset)
        gone = [u for u in gone if view.seq_of(u) is None]
        if gone:
            session.untagged("VANISHED", "(EARLIER)", Atom(compress(gone)))
    if any(i.name == "INTERNALDATE" for i in items):   # read on first use (bulk-built index)
        missing = view.missing_dates(u for _, u in pairs)  # a thread hop only when some are
        if missing:
            await session.blocking(view.fill_internal_dates, missing)
    expunged = False
    # Message bodies go out in small batches, each after the client took the previous ones:
    # a whole-mailbox BODY[] download never sits in memory (transport back-pressure).
    bulk = any(needs_full_message(i) for i in items)
    if bulk:
        session.io.begin_bulk()
    try:
        # UID/FLAGS/MODSEQ/RFC822.SIZE/INTERNALDATE come from the session's view alone: no
        # store access, so they are formatted here, a batch at a time with the reactor free
        # in between, instead of a thread hop per batch.
        inline = all(i.section is None and i.name in SIMPLE_ITEMS for i in items)
        for n, chunk in enumerate(_batches(view, pairs, bulk)):
            try:
                if inline:
                    if n:
                        await _yield_to_reactor()
                    data, gone = build_batch(session, view, chunk, items, changedsince)
                else:
                    data, gone = await session.blocking(build_batch, session, view, chunk, items,
                                                        changedsince)
            except UnknownCte as e:  # RFC 3516 §4.2
                raise ImapError(str(e), "UNKNOWN-CTE") from None
            expunged = expunged or gone
            if data:
                session.send(data)
            if bulk:
                await session.io.drained()
    finally:
        if bulk:
            session.io.end_bulk()
    if expunged:
        raise ImapError("Some of the requested messages no longer exist", "EXPUNGEISSUED")
    return "FETCH completed"

