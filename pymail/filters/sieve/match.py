"""Comparators (RFC 4790 / RFC 5228 §2.7.3), match types (§2.7.1) and relational (RFC 5231)."""

from __future__ import annotations

import re
from functools import lru_cache

_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def casemap(value: str) -> str:
    """i;ascii-casemap: only ASCII letters fold (RFC 4790 §9.2)."""
    return value.translate(_ASCII_UPPER)


def numeric(value: str) -> float:
    """i;ascii-numeric (RFC 4790 §9.1): the leading digits; none means positive infinity."""
    m = re.match(r"[0-9]+", value)
    return float(int(m.group())) if m else float("inf")


def _ordered(comparator: str, value: str):
    if comparator == "i;ascii-numeric":
        return numeric(value)
    if comparator == "i;octet":
        return value.encode("utf-8", "surrogateescape")
    return casemap(value)


def relational(op: str, left, right) -> bool:
    op = op.lower()
    return {"gt": left > right, "ge": left >= right, "lt": left < right, "le": left <= right,
            "eq": left == right, "ne": left != right}[op]


_ANY = object()  # "?" in a compiled pattern


def wildcard_match(value: str, pattern: str) -> bool:
    """Does ``pattern`` (``*``, ``?``, ``\\`` escapes) match all of ``value``? O(len*len), no
    backtracking blow-up whatever the header holds (a regex with many ``*`` could take forever)."""
    tokens: list = []  # None = "*", _ANY = "?", else a literal character
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i + 1])
            i += 2
            continue
        tokens.append(None if c == "*" else _ANY if c == "?" else c)
        i += 1
    v = t = 0
    star_t, star_v = -1, 0
    while v < len(value):
        if t < len(tokens) and tokens[t] is not None and (tokens[t] == _ANY or tokens[t] == value[v]):
            v += 1
            t += 1
        elif t < len(tokens) and tokens[t] is None:
            star_t, star_v = t, v
            t += 1
        elif star_t >= 0:
            star_v += 1
            v, t = star_v, star_t + 1
        else:
            return False
    while t < len(tokens) and tokens[t] is None:
        t += 1
    return t == len(tokens)


@lru_cache(maxsize=256)
def wildcard_regex(pattern: str, casefold: bool) -> re.Pattern:
    """``*`` and ``?`` with ``\\`` escapes (§2.7.1), each wildcard a capture group (RFC 5229 §3.2)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append("(.*?)" if c == "*" else "(.)" if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


class Matcher:
    """One test's comparator and match type, applied to values and keys."""

    def __init__(self, tags: dict[str, object]):
        self.comparator = str(tags.get("comparator", "i;ascii-casemap"))
        if "count" in tags:
            self.kind, self.op = "count", str(tags["count"])
        elif "value" in tags:
            self.kind, self.op = "value", str(tags["value"])
        else:
            self.kind = next((k for k in ("contains", "matches") if k in tags), "is")
            self.op = ""
        self.captures: list[str] | None = None  # ${0}..${n} of the last successful :matches
        self.want_captures = False  # only scripts that require "variables" use them

    def _fold(self, value: str) -> str:
        return casemap(value) if self.comparator == "i;ascii-casemap" else value

    def one(self, value: str, key: str) -> bool:
        if self.kind == "is":
            if self.comparator == "i;ascii-numeric":
                return numeric(value) == numeric(key)
            return self._fold(value) == self._fold(key)
        if self.kind == "contains":
            return self._fold(key) in self._fold(value)
        if self.kind == "matches":
            folded_key, folded_value = self._fold(key), self._fold(value)
            if not wildcard_match(folded_value, folded_key):
                return False
            if not self.want_captures:
                return True
            m = wildcard_regex(folded_key, False).match(folded_value)
            if m:
                # Captures are taken from the original value, not the folded one.
                spans = [m.span(i) for i in range(1, (m.lastindex or 0) + 1)]
                self.captures = [value] + [value[a:b] for a, b in spans]
                return True
            return False
        return relational(self.op, _ordered(self.comparator, value), _ordered(self.comparator, key))

    def test(self, values: list[str], keys: list[str]) -> bool:
        """True when any value matches any key (§2.7.1); :count compares the number of values."""
        if self.kind == "count":
            count = str(len(values))
            return any(relational(self.op, _ordered(self.comparator, count), _ordered(self.comparator, k))
                       for k in keys)
        return any(self.one(v, k) for v in values for k in keys)
