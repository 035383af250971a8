"""SEARCH keys (RFC 3501 §6.4.4, RFC 7162 MODSEQ) parsed into a small tree of tuples.

Nodes: ``("and", [nodes])``, ``("or", a, b)``, ``("not", n)``, ``("all",)``,
``("flag", name, wanted)``, ``("recent", wanted)``, ``("new",)``, ``("old",)``,
``("header", field, bytes)``, ``("body", bytes)``, ``("text", bytes)``, ``("larger", n)``,
``("smaller", n)``, ``("date", op, "internal"|"sent", date)``, ``("seq", SequenceSet)``,
``("uid", SequenceSet)``, ``("modseq", n)``, ``("older", seconds)``, ``("younger", seconds)``.
"""

from __future__ import annotations

import datetime
import re

from pymail.imap.parser import Atom, ParseError, astring, number
from pymail.imap.sequence import parse_sequence_set

MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DATE = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})\Z")

FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True), "FLAGGED": ("\\Flagged", True), "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False), "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False), "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
HEADER_KEYS = {"BCC", "CC", "FROM", "SUBJECT", "TO"}
DATE_KEYS = {
    "BEFORE": ("before", "internal"), "ON": ("on", "internal"), "SINCE": ("since", "internal"),
    "SENTBEFORE": ("before", "sent"), "SENTON": ("on", "sent"), "SENTSINCE": ("since", "sent"),
}


def parse_date(value) -> datetime.date:
    raw = astring(value, "date").decode("ascii", "replace")
    m = DATE.match(raw)
    if m is None or m.group(2).upper() not in MONTHS:
        raise ParseError(f"Bad date: {raw[:30]}")
    try:
        return datetime.date(int(m.group(3)), MONTHS.index(m.group(2).upper()) + 1, int(m.group(1)))
    except ValueError:
        raise ParseError(f"Bad date: {raw[:30]}") from None


class _Keys:
    def __init__(self, args: list):
        self.args = args
        self.i = 0

    def next(self, what: str):
        if self.i >= len(self.args):
            raise ParseError(f"Missing {what} in SEARCH")
        v = self.args[self.i]
        self.i += 1
        return v

    def key(self, depth: int = 0):
        if depth > 64:
            raise ParseError("[LIMIT] Search too deeply nested")
        v = self.next("search key")
        if isinstance(v, list):
            if not v:
                raise ParseError("Empty search list")
            inner = _Keys(v)
            nodes = []
            while inner.i < len(v):
                nodes.append(inner.key(depth + 1))
            return nodes[0] if len(nodes) == 1 else ("and", nodes)
        if not isinstance(v, Atom):
            raise ParseError("Expected a search key")
        k = v.upper()
        if k == "ALL":
            return ("all",)
        if k in FLAG_KEYS:
            return ("flag",) + FLAG_KEYS[k]
        if k in ("KEYWORD", "UNKEYWORD"):
            flag = self.next("keyword")
            if not isinstance(flag, Atom):
                raise ParseError("Bad keyword")
            return ("flag", str(flag), k == "KEYWORD")
        if k == "RECENT":
            return ("recent", True)
        if k == "NEW":
            return ("new",)
        if k == "OLD":
            return ("recent", False)
        if k in HEADER_KEYS:
            return ("header", k, astring(self.next("string"), k))
        if k == "HEADER":
            name = astring(self.next("header name"), "HEADER").decode("ascii", "replace")
            return ("header", name.upper(), astring(self.next("string"), "HEADER"))
        if k in ("BODY", "TEXT"):
            return (k.lower(), astring(self.next("string"), k))
        if k in ("LARGER", "SMALLER"):
            return (k.lower(), number(self.next("size"), k))
        if k in ("OLDER", "YOUNGER"):  # RFC 5032 WITHIN: seconds before now (internal date)
            return (k.lower(), number(self.next("interval"), k))
        if k in DATE_KEYS:
            op, which = DATE_KEYS[k]
            return ("date", op, which, parse_date(self.next("date")))
        if k == "NOT":
            return ("not", self.key(depth + 1))
        if k == "OR":
            return ("or", self.key(depth + 1), self.key(depth + 1))
        if k == "UID":
            return ("uid", parse_sequence_set(self.next("UID set")))
        if k == "MODSEQ":
            first = self.next("mod-sequence")
            if isinstance(first, bytes):  # entry name and type (RFC 7162 §3.1.5) are ignored
                self.next("entry type")
                first = self.next("mod-sequence")
            return ("modseq", number(first, "MODSEQ"))
        if k[:1].isdigit() or k[:1] in ("*", "$"):
            return ("seq", parse_sequence_set(v))
        raise ParseError(f"Unknown search key: {k[:30]}")


RETURN_OPTIONS = ("MIN", "MAX", "ALL", "COUNT", "SAVE", "UPDATE")
_PARTIAL = re.compile(r"([1-9][0-9]{0,9}):([1-9][0-9]{0,9})\Z")


def parse_returns(values: list) -> list:
    """RETURN options (RFC 4731, RFC 5182, RFC 5267): names, and ("PARTIAL", low, high)."""
    out: list = []
    i = 0
    while i < len(values):
        name = str(values[i]).upper() if isinstance(values[i], Atom) else ""
        if name == "PARTIAL":  # RFC 5267 §4.4: PARTIAL n:m (either order)
            m = _PARTIAL.match(str(values[i + 1])) if i + 1 < len(values) and isinstance(values[i + 1], Atom) else None
            if m is None:
                raise ParseError("PARTIAL needs a range n:m")
            a, b = int(m.group(1)), int(m.group(2))
            out.append(("PARTIAL", min(a, b), max(a, b)))
            i += 2
            continue
        if name not in RETURN_OPTIONS:
            raise ParseError(f"Unknown RETURN option {name[:20]}")
        out.append(name)
        i += 1
    return out


def parse_search(args: list) -> tuple[str | None, list | None, tuple]:
    """``[RETURN (...)] [CHARSET x] keys...`` → (charset, return options or None, tree)."""
    i = 0
    charset = None
    returns = None
    if i < len(args) and isinstance(args[i], Atom) and args[i].upper() == "RETURN":
        if i + 1 >= len(args) or not isinstance(args[i + 1], list):
            raise ParseError("RETURN needs a list")
        returns = parse_returns(args[i + 1])
        i += 2
    if i < len(args) and isinstance(args[i], Atom) and args[i].upper() == "CHARSET":
        if i + 1 >= len(args):
            raise ParseError("CHARSET needs a name")
        charset = astring(args[i + 1], "charset").decode("ascii", "replace").upper()
        i += 2
    keys = _Keys(args[i:])
    nodes = []
    while keys.i < len(keys.args):
        nodes.append(keys.key())
    if not nodes:
        raise ParseError("SEARCH needs a key")
    return charset, returns, nodes[0] if len(nodes) == 1 else ("and", nodes)
