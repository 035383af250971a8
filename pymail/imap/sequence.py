"""Sequence sets (RFC 3501 §9 ``sequence-set``): ``1,3:5,7:*``, and ``$`` (RFC 5182 SEARCHRES)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymail.imap.parser import Atom, ParseError

_NUMBER = re.compile(r"[1-9][0-9]{0,9}|\*")


@dataclass(frozen=True)
class SequenceSet:
    """Ranges of ``(low, high)`` where ``None`` stands for ``*`` (the largest number in use)."""

    ranges: tuple[tuple[int | None, int | None], ...]
    saved: bool = False  # "$": the saved search result (RFC 5182)

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Ranges with ``*`` replaced by ``largest``, each ordered low..high."""
        out = []
        for low, high in self.ranges:
            a = largest if low is None else low
            b = largest if high is None else high
            out.append((min(a, b), max(a, b)))
        return out

    def contains(self, n: int, largest: int) -> bool:
        return any(a <= n <= b for a, b in self.resolve(largest))

    def __str__(self) -> str:
        if self.saved:
            return "$"
        return ",".join(_range_text(r) for r in self.ranges)


def _range_text(r: tuple[int | None, int | None]) -> str:
    low, high = ("*" if x is None else str(x) for x in r)
    return low if r[0] == r[1] else f"{low}:{high}"


def parse_sequence_set(value) -> SequenceSet:
    if not isinstance(value, Atom):
        raise ParseError("Expected a sequence set")
    if value == "$":
        return SequenceSet((), saved=True)
    ranges = []
    for part in value.split(","):
        ends = part.split(":")
        if len(ends) > 2 or not all(_NUMBER.fullmatch(e) for e in ends):
            raise ParseError(f"Bad sequence set: {value[:50]}")
        nums = [None if e == "*" else int(e) for e in ends]
        if any(n is not None and n > 0xFFFFFFFF for n in nums):
            raise ParseError("Number out of range in sequence set")
        ranges.append((nums[0], nums[-1]))
    return SequenceSet(tuple(ranges))


def compress(numbers) -> str:
    """``[1,2,3,5]`` → ``"1:3,5"`` (for COPYUID, APPENDUID, ESEARCH)."""
    return ordered_compress(sorted(set(numbers)))


def ordered_compress(numbers) -> str:
    """Keeps the order given (COPYUID source and destination sets must line up, RFC 4315 §3)."""
    nums = list(numbers)
    if not nums:
        return ""
    out, start, prev = [], nums[0], nums[0]
    for n in nums[1:]:
        if n == prev + 1:
            prev = n
            continue
        out.append(f"{start}" if start == prev else f"{start}:{prev}")
        start = prev = n
    out.append(f"{start}" if start == prev else f"{start}:{prev}")
    return ",".join(out)
