"""``dovecot-keywords``: which maildir flag letter (a–z) means which IMAP keyword.

Format (maildir-keywords.c): one ``<index> <name>`` line per keyword, index 0–25, letter =
``chr(ord('a') + index)``.  Names are matched case-insensitively.  The file is rewritten only
while ``dovecot-uidlist.lock`` is held, through ``dovecot-keywords.lock`` + rename, and its mtime
must grow on every write so readers that compare mtimes notice.
"""

from __future__ import annotations

import os
import time

from pymail.store.errors import LIMIT, StoreError
from pymail.store.filename import MAX_KEYWORDS

NAME = "dovecot-keywords"
# RFC 3501 §9: flag-keyword = atom; atom-specials are "(" ")" "{" SP CTL "%" "*" DQUOTE "\\" "]"
_ATOM_SPECIALS = frozenset('(){ %*"\\]') | {chr(i) for i in range(0x20)} | {"\x7f"}


def is_valid(name: str) -> bool:
    """Can ``name`` be an IMAP keyword (an atom of printable ASCII)?"""
    return bool(name) and not any(c in _ATOM_SPECIALS or ord(c) > 0x7E for c in name)


def read(path: str) -> dict[int, str]:
    """index → keyword name; {} when the file does not exist."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return {}
    names: dict[int, str] = {}
    for line in text.split("\n"):
        idx, sep, name = line.partition(" ")
        if not sep or not idx.isdigit() or not name:
            continue
        i = int(idx)
        if 0 <= i < MAX_KEYWORDS:
            names[i] = name
    return names


def index_map(names: dict[int, str]) -> dict[str, int]:
    """lower-cased name → index."""
    return {name.lower(): i for i, name in names.items()}


def add(path: str, names: dict[int, str], wanted, fsync: bool = True) -> dict[int, str]:
    """Give every keyword in ``wanted`` an index, writing the file if any was new.

    The caller holds the uidlist dotlock and passes ``names`` freshly read from ``path``.
    """
    known = index_map(names)
    missing = [k for k in wanted if k.lower() not in known]
    if not missing:
        return names
    names = dict(names)
    for kw in missing:
        if kw.lower() in index_map(names):
            continue
        free = next((i for i in range(MAX_KEYWORDS) if i not in names), None)
        if free is None:
            raise StoreError(LIMIT, f"a maildir folder holds at most {MAX_KEYWORDS} keywords")
        names[free] = kw
    _write(path, names, fsync)
    return names


def _write(path: str, names: dict[int, str], fsync: bool) -> None:
    old_mtime = 0.0
    try:
        old_mtime = os.stat(path).st_mtime
    except FileNotFoundError:
        pass
    lock = path + ".lock"
    data = "".join(f"{i} {names[i]}\n" for i in sorted(names)).encode("utf-8")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    now = time.time()
    if int(now) <= int(old_mtime):          # mtime (seconds) must grow on every write
        os.utime(lock, (now, int(old_mtime) + 1))
    os.rename(lock, path)
