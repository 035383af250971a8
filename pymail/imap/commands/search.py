"""SEARCH and UID SEARCH (RFC 3501 §6.4.4) with CHARSET UTF-8, ESEARCH (RFC 4731),
SEARCHRES (RFC 5182) and MODSEQ (RFC 7162 §3.1.5).

Matching is case-insensitive substring on decoded text (RFC 2047 headers, transfer-encoded
bodies), as Dovecot does. The search runs in a thread; the message text is read only when a key
needs it.
"""

from __future__ import annotations

import datetime
import time
import email
import email.errors
import email.header
import email.parser
import email.policy
import email.utils
import functools
import re

from pymail.imap import mime, serialize

from pymail.imap.searchspec import parse_search
from pymail.imap.sequence import compress, ordered_compress
from pymail.imap.context import UpdatingSearch, partial_text
from pymail.imap.parser import astring
from pymail.imap.session import SELECTED, ImapError, bad, command

CHARSETS = {"UTF-8", "US-ASCII"}
ADDRESS_HEADERS = {"FROM", "TO", "CC", "BCC", "SENDER", "REPLY-TO"}
NEEDS_TEXT = {"header", "body", "text"}

def _decode_header(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError, email.errors.HeaderParseError):
        return value

def _needle(raw: bytes) -> str:
    return _casefolded(bytes(raw))

@functools.lru_cache(maxsize=256)
def _casefolded(raw: bytes) -> str:  # once per search key, not once per message
    return raw.decode("utf-8", "replace").casefold()

@functools.lru_cache(maxsize=64)
def _field_lines(name: str) -> re.Pattern:
    """The lines of every field called ``name`` (any case, optional blanks before the colon)
    with their continuation lines: a superset of what the email parser files under ``name``."""
    return re.compile(rb"^" + re.escape(name.lower().encode("utf-8")) + rb"[ \t]*:[^\n]*\n(?:[ \t][^\n]*\n)*",
                      re.IGNORECASE | re.MULTILINE)


_FTEXT = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_WELL_FORMED = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]+:[^\n]*\n(?:[ \t][^\n]*\n)*)*\r?\n")


@functools.lru_cache(maxsize=64)
def _field_values(name: str) -> re.Pattern:
    """The text after ``name:`` (case as ``Message.get_all`` compares) with its continuation
    lines, in a header _WELL_FORMED matched."""
    return re.compile(rb"^" + re.escape(name.lower().encode("utf-8")) + rb":([^\n]*\n(?:[ \t][^\n]*\n)*)",
                      re.IGNORECASE | re.MULTILINE)


class Message:
    """Lazily parsed message for header and body keys.

    ``raw_head`` is the cached header block when the search fetched it up front
    (``Mailbox.raw_headers_many``); ``HEADER`` keys then rule out most messages without
    parsing them (``cannot_match``)."""

    def __init__(self, mailbox, uid: int, raw_head: bytes | None = None):
        self.mailbox = mailbox
        self.uid = uid
        self._msg = None
        self._head = None
        self._body = None
        self._raw_head = raw_head

    def _plain_raw(self, name: str, needle: str) -> bytes | None:
        """The raw header when the shortcuts below are exact for ``HEADER name needle``:
        plain ASCII, no encoded word (``=?``) and no bare CR in the header, so the email
        parser neither decodes nor re-splits anything and ``headers()`` gives raw field
        values; a non-empty needle without CR/LF; not an address header (those also match
        re-formatted addresses); a name that can be a field name (ASCII ftext, no colon)."""
        raw = self._raw_head
        if (raw is None or self._msg is not None or not needle or "\r" in needle or "\n" in needle
                or name.upper() in ADDRESS_HEADERS or _FTEXT.fullmatch(name) is None
                or not raw.isascii() or b"=?" in raw
                or raw.count(b"\r") != raw.count(b"\r\n")):
            return None
        return raw

    def cannot_match(self, name: str, needle: str) -> bool:
        """True only when ``HEADER name needle`` surely fails: every value ``headers()`` gives
        is then a substring of the field's raw lines, so a needle absent from those lines
        matches nothing. Anything else → False (parse as before)."""
        raw = self._plain_raw(name, needle)
        if raw is None:
            return False
        if raw[-1:] != b"\n":
            raw += b"\n"
        text = b"".join(_field_lines(name).findall(raw)).decode("ascii").casefold()
        return needle not in text

    def quick_header_match(self, name: str, needle: str) -> bool | None:
        """``HEADER name needle`` decided without the email parser, or None (parse it).

        Exact only for a header whose every line is ``field-name:`` (RFC 5322 ftext, colon
        right after) or a continuation after such a line, up to the blank line: the compat32
        parser then files exactly these fields, the value being the text after the colon
        (leading SP/TAB dropped) plus the continuation lines; a needle without CR/LF matches
        within one of those line pieces or not at all."""
        raw = self._plain_raw(name, needle)
        if raw is None:
            return None
        block = _WELL_FORMED.match(raw)  # the fields up to the blank line, or None
        if block is None:
            return None
        values = _field_values(name).findall(raw, 0, block.end())
        return any(needle in v.lstrip(b" \t").decode("ascii").casefold() for v in values)

    @property
    def msg(self):
        if self._msg is None:
            with self.mailbox.open_message(self.uid) as f:
                raw = mime.to_crlf(f.read())
            self._msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        return self._msg

    @property
    def head(self):
        """The header alone, from the store's parse cache (no message file read)."""
        if self._head is None:
            if self._msg is not None:
                return self._msg
            raw = self._raw_head if self._raw_head is not None else self.mailbox.raw_header(self.uid)
            self._head = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
        return self._head

    def headers(self, name: str) -> list[str]:
        values = [str(v) for v in self.head.get_all(name, [])]
        out = [_decode_header(v) for v in values]
        if name.upper() in ADDRESS_HEADERS:
            # also match the parsed addresses (comments and odd spacing removed)
            for v in values:
                for addr in mime.address_list(v.encode("utf-8", "surrogateescape")) or []:
                    name_, _route, mailbox, host = (x.decode("utf-8", "replace") if x else "" for x in addr)
                    out.append(f"{_decode_header(name_)} <{mailbox}@{host}>")
        return out

    def all_headers(self) -> str:
        return "\n".join(f"{k}: {_decode_header(str(v))}" for k, v in self.head.items())

    def body(self) -> str:
        if self._body is None:
            texts = []
            for part in self.msg.walk():
                if part.is_multipart():
                    continue
                main = part.get_content_maintype()
                if main not in ("text", "message"):
                    continue
                payload = part.get_payload(decode=True) or b""
                charset = part.get_content_charset() or "utf-8"
                try:
                    texts.append(payload.decode(charset, "replace"))
                except LookupError:
                    texts.append(payload.decode("utf-8", "replace"))
            self._body = "\n".join(texts).casefold()
        return self._body

    def sent_date(self) -> datetime.date | None:
        value = self.head.get("date")
        if value is None:
            return None
        try:
            return email.utils.parsedate_to_datetime(str(value)).date()
        except (TypeError, ValueError, IndexError):
            return None

class Evaluator:
    def __init__(self, session, view):
        self.view = view
        self.saved = set(session.saved_search)
        self.largest_uid = view.uids[-1] if view.uids else 0
        self.now = time.time()

    def match(self, node, seq: int, uid: int, msg: Message) -> bool:
        kind = node[0]
        view = self.view
        rec = view.records.get(uid)
        if kind == "all":
            return True
        if kind == "and":
            return all(self.match(n, seq, uid, msg) for n in node[1])
        if kind == "or":
            return self.match(node[1], seq, uid, msg) or self.match(node[2], seq, uid, msg)
        if kind == "not":
            return not self.match(node[1], seq, uid, msg)
        if kind == "flag":
            flags = {f.lower() for f in view.flags.get(uid, ())}
            return (node[1].lower() in flags) == node[2]
        if kind == "recent":
            return (uid in view.recent) == node[1]
        if kind == "new":
            return uid in view.recent and "\\Seen" not in view.flags.get(uid, ())
        if kind == "larger":
            return rec.size > node[1]
        if kind == "smaller":
            return rec.size < node[1]
        if kind == "modseq":
            return view.modseqs.get(uid, 0) >= node[1]
        if kind == "older":
            return rec.internal_date <= self.now - node[1]
        if kind == "younger":
            return rec.internal_date >= self.now - node[1]
        if kind == "seq":
            if node[1].saved:
                return uid in self.saved
            return node[1].contains(seq, len(view.uids))
        if kind == "uid":
            if node[1].saved:
                return uid in self.saved
            return node[1].contains(uid, self.largest_uid)
        if kind == "date":
            _, op, which, date = node
            day = None
            if which == "sent":
                day = msg.sent_date()
            if day is None:
                day = datetime.datetime.fromtimestamp(rec.internal_date, datetime.timezone.utc).date()
            return day < date if op == "before" else day == date if op == "on" else day >= date
        if kind == "header":
            needle = _needle(node[2])
            quick = msg.quick_header_match(node[1], needle)
            if quick is not None:
                return quick
            if msg.cannot_match(node[1], needle):
                return False
            values = msg.headers(node[1])
            if not needle:
                return bool(values)
            return any(needle in v.casefold() for v in values)
        if kind == "body":
            return _needle(node[1]) in msg.body()
        if kind == "text":
            needle = _needle(node[1])
            return needle in msg.all_headers().casefold() or needle in msg.body()
        raise ImapError("Unsupported search key")

def _uses(node, kinds: set) -> bool:
    """Does the search tree contain a key of one of ``kinds``?"""
    if node[0] in kinds:
        return True
    if node[0] == "and":
        return any(_uses(n, kinds) for n in node[1])
    if node[0] == "or":
        return _uses(node[1], kinds) or _uses(node[2], kinds)
    if node[0] == "not":
        return _uses(node[1], kinds)
    return False


DATE_KEYS = {"older", "younger", "date"}   # the internal date (SENT* falls back to it)


def run_search(session, view, tree) -> list[tuple[int, int]]:
    ev = Evaluator(session, view)
    out = []
    uids = list(view.uids)
    if _uses(tree, DATE_KEYS):
        view.fill_internal_dates(uids)
    heads: dict[int, bytes] = {}
    many = getattr(view.mailbox, "raw_headers_many", None)
    if many is not None and _uses(tree, {"header"}):
        heads = many(u for u in uids if u not in view.gone)  # one query, not one per message
    one_header = _one_header_key(tree) if heads else None
    for i, uid in enumerate(uids):
        if uid in view.gone:
            continue
        if one_header is not None:
            quick = one_header(heads.get(uid))
            if quick is not None:
                if quick:
                    out.append((i + 1, uid))
                continue
        if ev.match(tree, i + 1, uid, Message(view.mailbox, uid, heads.get(uid))):
            out.append((i + 1, uid))
    return out

def _one_header_key(tree):
    """For a search that is one ``HEADER name text`` key (SUBJECT, HEADER X-... too): a
    function raw header → the same answer as ``Message.quick_header_match`` (True, False or
    None), with the per-search checks done once and the text compared as ASCII bytes."""
    if tree[0] != "header":
        return None
    name, needle = tree[1], _needle(tree[2])
    if (not needle or not needle.isascii() or "\r" in needle or "\n" in needle
            or name.upper() in ADDRESS_HEADERS or _FTEXT.fullmatch(name) is None):
        return None
    find = _field_values(name).findall
    wanted = needle.encode("ascii")  # casefold of ASCII is lower()

    def answer(raw):
        if raw is None or not raw.isascii() or b"=?" in raw:
            return None
        if wanted not in raw.lower().replace(b"\r", b"").replace(b"\n", b""):
            # ASCII without encoded words: every field value, unfolded (RFC 5322 §2.2.3) and
            # lower-cased, is a substring of this, so no value can hold the text
            return False
        if raw.count(b"\r") != raw.count(b"\r\n"):
            return None
        block = _WELL_FORMED.match(raw)
        if block is None:
            return None
        return any(wanted in v.lstrip(b" \t").lower() for v in find(raw, 0, block.end()))
    return answer

def esearch_line(tag: str, uid: bool, opts: set, numbers: list[int], sort_order: bool = False,
                 modseq: int | None = None, partial: tuple | None = None) -> str:
    """``ESEARCH (TAG "t") [UID] MIN MAX ALL COUNT [MODSEQ]`` (RFC 4731 §3.1; RFC 5267 §3.2 for
    SORT, where ALL keeps the sort order)."""
    parts = ["ESEARCH", f"(TAG {serialize.string(tag).decode()})"]
    if uid:
        parts.append("UID")
    if numbers:
        if "MIN" in opts:
            parts.append(f"MIN {min(numbers)}")
        if "MAX" in opts:
            parts.append(f"MAX {max(numbers)}")
        if "ALL" in opts:
            parts.append(f"ALL {ordered_compress(numbers) if sort_order else compress(numbers)}")
    if "COUNT" in opts:
        parts.append(f"COUNT {len(numbers)}")
    if partial is not None:
        parts.append(partial_text(numbers, partial[1], partial[2], sort_order))
    if modseq is not None:
        parts.append(f"MODSEQ {modseq}")
    return " ".join(parts)


@command("SEARCH", states=(SELECTED,), uid=True, allow_expunge=False)
async def search(session, cmd):
    charset, returns, tree = parse_search(cmd.args)
    if charset is not None and charset not in CHARSETS:
        raise ImapError("Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")
    view = session.selected
    found = await session.blocking(run_search, session, view, tree)
    numbers = [u if cmd.uid else s for s, u in found]
    modseq = None
    uses_modseq = _uses(tree, {"modseq"})
    if uses_modseq:
        await session.enable_condstore()
    if uses_modseq and found:
        modseq = max(view.modseqs.get(u, 0) for _, u in found)
    if returns is None and session.rev2:
        returns = []  # RFC 9051 §6.4.4: IMAP4rev2 answers SEARCH with ESEARCH (ALL)
    if returns is None:
        text = "SEARCH" + "".join(f" {n}" for n in numbers)
        if modseq is not None:
            text += f" (MODSEQ {modseq})"
        session.untagged(text)
        return "SEARCH completed"
    opts = {r for r in returns if isinstance(r, str)}
    partial = next((r for r in returns if isinstance(r, tuple)), None)
    if not opts and partial is None:
        opts = {"ALL"}  # RETURN () means ALL (RFC 4731 §3.1)
    if "UPDATE" in opts:
        if opts & {"MIN", "MAX"}:  # RFC 5267 §4.2: MIN/MAX with UPDATE are not kept current
            raise ImapError("UPDATE cannot be combined with MIN or MAX", "NOUPDATE")
        session.contexts[cmd.tag] = UpdatingSearch(cmd.tag, cmd.uid,
                                                   lambda v: run_search(session, v, tree), found)
    if opts == {"SAVE"} and partial is None:
        session.saved_search = [u for _, u in found]
        return "SEARCH completed"
    if "SAVE" in opts:
        if opts & {"MIN", "MAX"} and not opts & {"ALL", "COUNT"}:
            keep = set()
            if found and "MIN" in opts:
                keep.add(found[0][1])
            if found and "MAX" in opts:
                keep.add(found[-1][1])
            session.saved_search = sorted(keep)
        else:
            session.saved_search = [u for _, u in found]
    if modseq is not None and not opts & {"ALL", "COUNT"}:
        # RFC 7162 §3.1.5 with RFC 4731: the highest modseq of the messages returned
        shown = ([found[0][1]] if "MIN" in opts else []) + ([found[-1][1]] if "MAX" in opts else [])
        modseq = max((view.modseqs.get(u, 0) for u in shown), default=modseq)
    session.untagged(esearch_line(cmd.tag, cmd.uid, opts, numbers, modseq=modseq, partial=partial))
    return "SEARCH completed"


@command("CANCELUPDATE", states=(SELECTED,))
async def cancelupdate(session, cmd):
    """RFC 5267 §4.3: stop the updates of the searches started by these tags."""
    if not cmd.args:
        raise bad("CANCELUPDATE needs the tags of updating searches")
    for value in cmd.args:
        tag = astring(value, "tag").decode("utf-8", "replace")
        if session.contexts.pop(tag, None) is None:
            raise ImapError(f"No updating search with tag {tag[:30]}")
    return "CANCELUPDATE completed"

