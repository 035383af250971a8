"""Maildir file names as Dovecot writes and reads them.

``<sec>.M<usec>P<pid>[Q<n>].<host>,S=<size>,W=<vsize>:2,<flags>``

- base name = everything before ``:2,`` (the part ``dovecot-uidlist`` records);
- ``S=`` physical size, ``W=`` size with CRLF line ends (RFC 822 size), both optional;
- flags after ``:2,`` in ASCII order: D(raft) F(lagged) R(eplied=\\Answered) S(een)
  T(rashed=\\Deleted), and ``a``–``z`` = keyword index 0–25 of ``dovecot-keywords``.
  Unknown flag letters are kept when flags are rewritten (maildir-filename-flags.c does the same).
"""

from __future__ import annotations

import os
import re
import socket
import time

INFO_SEP = ":2,"

SYSTEM_TO_LETTER = {"\\Draft": "D", "\\Flagged": "F", "\\Answered": "R", "\\Seen": "S",
                    "\\Deleted": "T"}
LETTER_TO_SYSTEM = {v: k for k, v in SYSTEM_TO_LETTER.items()}
SYSTEM_FLAGS = frozenset(SYSTEM_TO_LETTER)
MAX_KEYWORDS = 26


def _host() -> str:
    # Dovecot escapes '/' and ':' in the host part the same way.
    return socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"


HOST = _host()


def new_basename(size: int, vsize: int, counter: int = 0, now: float | None = None) -> str:
    now = time.time() if now is None else now
    sec = int(now)
    usec = int((now - sec) * 1_000_000)
    q = f"Q{counter}" if counter else ""
    return f"{sec}.M{usec}P{os.getpid()}{q}.{HOST},S={size},W={vsize}"


def split(filename: str) -> tuple[str, str]:
    """filename → (base, info letters); info is "" when there is no ``:2,`` part."""
    pos = filename.find(INFO_SEP)
    if pos < 0:
        colon = filename.find(":")
        return (filename, "") if colon < 0 else (filename[:colon], "")
    return filename[:pos], filename[pos + 3:]


def base_of(filename: str) -> str:
    return split(filename)[0]


_SIZE_FIELD = re.compile(r",([SW])=([0-9]+)(?=,|$)")


def size_fields(base: str) -> tuple[int | None, int | None]:
    """(S=, W=) from a base name, None when absent (the last one wins, as in Dovecot)."""
    head, sep, w = base.rpartition(",W=")          # the usual "…,S=<n>,W=<n>" first
    if sep and w.isascii() and w.isdigit():
        _, sep, s = head.rpartition(",S=")
        if sep and s.isascii() and s.isdigit():
            return int(s), int(w)
    return scan_size_fields(base)


_USUAL_SIZES = re.compile(r",S=([0-9]+),W=([0-9]+)$", re.M)


def usual_size_fields(bases: list[str]) -> tuple[list[int], list[int]] | None:
    """``size_fields`` of every name at once — (S= list, W= list) — when every one ends in the
    usual ``,S=<n>,W=<n>`` (the fast path of ``size_fields``), else None.  One regex pass
    over the joined names: a quarter cheaper than a call per name on 10,000 names."""
    if not bases:
        return [], []
    joined = "\n".join(bases)
    if joined.count("\n") != len(bases) - 1:   # a name holding a newline: lines ≠ names
        return None
    found = _USUAL_SIZES.findall(joined)
    if len(found) != len(bases):
        return None
    sizes, vsizes = zip(*found)
    return list(map(int, sizes)), list(map(int, vsizes))


def scan_size_fields(base: str) -> tuple[int | None, int | None]:
    """``size_fields`` by looking at every ``,S=``/``,W=`` field (any order, any number)."""
    size = vsize = None
    for key, digits in _SIZE_FIELD.findall(base):
        if key == "S":
            size = int(digits)
        else:
            vsize = int(digits)
    return size, vsize


def flags_from_info(info: str, keyword_names: dict[int, str]) -> frozenset[str]:
    """Maildir info letters → IMAP flag set (system flags + keywords)."""
    flags = set()
    for ch in info:
        if ch in LETTER_TO_SYSTEM:
            flags.add(LETTER_TO_SYSTEM[ch])
        elif "a" <= ch <= "z":
            name = keyword_names.get(ord(ch) - 97)
            if name is not None:
                flags.add(name)
    return frozenset(flags)


def info_from_flags(flags, keyword_index: dict[str, int], old_info: str = "") -> str:
    """IMAP flags → sorted info letters; unknown letters of ``old_info`` are kept.

    ``keyword_index`` maps lower-cased keyword → index; every keyword must be present.
    """
    letters = set()
    for flag in flags:
        letter = SYSTEM_TO_LETTER.get(flag)
        if letter is None:
            letter = chr(97 + keyword_index[flag.lower()])
        letters.add(letter)
    for ch in old_info:
        if ch not in LETTER_TO_SYSTEM and not ("a" <= ch <= "z"):
            letters.add(ch)
    return "".join(sorted(letters))


def full_name(base: str, info: str) -> str:
    return f"{base}{INFO_SEP}{info}"
