"""``dovecot-uidlist``: the file that gives maildir messages their IMAP UIDs.

Version 3 format, as maildir-uidlist.c reads and writes it::

    3 V<uidvalidity> N<nextuid> G<mailbox guid, 32 hex> [other header fields]
    <uid> [<key><value> ...] :<base filename>

Per-message keys in use: ``S`` size, ``W`` vsize, ``P`` POP3 UIDL, ``O`` POP3 order,
``G`` message GUID.  Version 1 (``1 <uidvalidity> <nextuid>`` / ``<uid> <filename>``, Courier's
``courierimapuiddb`` layout) is read too and upgraded on the next rewrite.

Rules kept here (the same as Dovecot's):
- the file changes only while ``dovecot-uidlist.lock`` is held (see dotlock.py);
- new records are appended (readers see the file grow); anything else rewrites the whole file as
  ``dovecot-uidlist.tmp`` and renames it over the old one;
- the next UID is ``max(N header, last uid + 1)``; the header's ``N`` never goes down under the
  same UIDVALIDITY (Dovecot treats a lowered ``N`` as corruption);
- a last line without a newline is a write in progress (or a crash): it is ignored.
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass, field

from pymail.store.errors import CORRUPT, StoreError

NAME = "dovecot-uidlist"


@dataclass(slots=True)
class Entry:
    uid: int
    base: str
    fields: list[str] | tuple = ()   # raw "<key><value>" tokens, in order (read-only)

    def get(self, key: str) -> str | None:
        for f in self.fields:
            if f[:1] == key:
                return f[1:]
        return None

    def line(self) -> str:
        if not self.fields:
            return f"{self.uid} :{self.base}\n"
        extra = "".join(" " + f for f in self.fields)
        return f"{self.uid}{extra} :{self.base}\n"


@dataclass
class Uidlist:
    uidvalidity: int
    next_uid: int
    guid: str
    header_extra: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    version: int = 3
    size: int = 0                 # bytes read, i.e. the offset the next append starts at
    ends_with_newline: bool = True
    ino: int = 0                  # inode of the file read (0 when unknown)

    def entries_for(self, bases) -> dict[str, Entry]:
        """base → record for those of ``bases`` (a set or dict) this file has."""
        return {e.base: e for e in self.entries if e.base in bases}

    def header(self) -> str:
        extra = "".join(" " + f for f in self.header_extra)
        return f"3 V{self.uidvalidity} N{self.next_uid} G{self.guid}{extra}\n"

    def effective_next_uid(self) -> int:
        last = self.entries[-1].uid if self.entries else 0
        return max(self.next_uid, last + 1)


def new_guid() -> str:
    return uuid.uuid4().hex


def read(path: str) -> Uidlist | None:
    """Parse the file; None when it does not exist.  Raises StoreError(CORRUPT)."""
    try:
        with open(path, "rb") as f:
            ino = os.fstat(f.fileno()).st_ino
            data = f.read()
    except FileNotFoundError:
        return None
    ul = parse(data, path)
    ul.ino = ino
    return ul


def parse(data: bytes, path: str = NAME) -> Uidlist:
    text = data.decode("utf-8", "surrogateescape")
    ends_nl = text.endswith("\n")
    lines = text.split("\n")
    complete = lines[:-1]            # the last element is "" or a partial line
    if not complete:
        raise StoreError(CORRUPT, f"{path}: empty or truncated header")
    version, uidvalidity, next_uid, guid, extra = _parse_header(complete[0], path)
    entries = _parse_v3_records(complete) if version == 3 else None
    if entries is None:
        entries = _parse_records(complete, version, path)
    consumed = len("\n".join(complete).encode("utf-8", "surrogateescape")) + 1
    return Uidlist(uidvalidity, next_uid, guid or new_guid(), extra, entries, version,
                   consumed, ends_nl)


# "<uid> [<key><value> ...] :<base>[:...]": the fields end at the first colon, as in
# _parse_entry (which stays the reference: any line this does not take goes through it).
_V3_RECORD = re.compile(r"^([0-9]+) ([^:\n]*):([^:/\n]+)[^/\n]*$", re.M)


def _parse_v3_records(complete: list[str]) -> list[Entry] | None:
    """The records of a version 3 file in a few C calls (a 100,000-line uidlist took 0.25 s
    line by line); None when any line is not a plain record — then ``_parse_records`` says
    which one."""
    records = complete[1:]
    found = _V3_RECORD.findall("\n".join(records))
    if len(found) != len(records) - records.count(""):
        return None
    entries = []
    prev = 0
    for uid_text, fields, base in found:
        uid = int(uid_text)
        if uid <= prev or uid >= 2**32 - 1:
            return None
        prev = uid
        entries.append(Entry(uid, base, fields.split() if fields else ()))
    return entries


def _parse_records(complete: list[str], version: int, path: str) -> list[Entry]:
    entries: list[Entry] = []
    prev = 0
    for lineno, line in enumerate(complete[1:], start=2):
        if not line:
            continue
        entry = _parse_entry(line, version)
        if entry is None or entry.uid <= prev:
            raise StoreError(CORRUPT, f"{path}: line {lineno} is malformed or out of order")
        prev = entry.uid
        entries.append(entry)
    return entries


def _parse_header(line: str, path: str):
    head = line.split()
    if not head or not head[0].isdigit():
        raise StoreError(CORRUPT, f"{path}: invalid version number")
    version = int(head[0])
    uidvalidity = next_uid = 0
    guid = ""
    extra: list[str] = []
    if version == 1:
        if len(head) < 3 or not (head[1].isdigit() and head[2].isdigit()):
            raise StoreError(CORRUPT, f"{path}: bad version 1 header")
        uidvalidity, next_uid = int(head[1]), int(head[2])
    elif version == 3:
        for token in head[1:]:
            key, value = token[:1], token[1:]
            if key == "V" and value.isdigit():
                uidvalidity = int(value)
            elif key == "N" and value.isdigit():
                next_uid = int(value)
            elif key == "G":
                guid = value
            else:
                extra.append(token)
    else:
        raise StoreError(CORRUPT, f"{path}: unsupported version {version}")
    if uidvalidity == 0 or next_uid == 0:
        raise StoreError(CORRUPT, f"{path}: header lacks UIDVALIDITY or next UID")
    return version, uidvalidity, next_uid, guid, extra


@dataclass
class Summary:
    """The header and the last record of the file, without reading all of it."""
    uidvalidity: int
    next_uid: int
    guid: str
    last_uid: int
    size: int
    ino: int
    version: int = 3
    complete_size: int = 0     # offset just after the last complete line


    def effective_next_uid(self) -> int:
        return max(self.next_uid, self.last_uid + 1)


def read_summary(path: str) -> Summary | None:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    with f:
        st = os.fstat(f.fileno())
        first = f.readline(65536)
        if not first.endswith(b"\n"):
            raise StoreError(CORRUPT, f"{path}: empty or truncated header")
        version, uidvalidity, next_uid, guid, _ = _parse_header(
            first.decode("utf-8", "surrogateescape"), path)
        # Read a growing tail until it holds the whole last record line (or the whole file).
        window = 8192
        while True:
            start = max(len(first), st.st_size - window)
            f.seek(start)
            tail = f.read()
            end = tail.rfind(b"\n")              # end of the last complete line
            body = tail[:end].rstrip(b"\n") if end >= 0 else b""   # blank lines: no record
            cut = body.rfind(b"\n")
            if start == len(first) or cut >= 0:
                break
            window *= 4
    complete_size = start + end + 1 if end >= 0 else len(first)
    line = body[cut + 1:]
    last_uid = 0
    if line:
        uid = line.split(b" ", 1)[0]
        if not uid.isdigit():
            raise StoreError(CORRUPT, f"{path}: last record is malformed")
        last_uid = int(uid)
    return Summary(uidvalidity, next_uid, guid or "", last_uid, st.st_size, st.st_ino, version,
                   complete_size)


def append_records(path: str, summary: Summary, new_entries: list[Entry],
                   fsync: bool = True) -> None:
    """Append to a v3 file knowing only its summary (caller holds the dotlock) — delivery does
    not need to read a 100,000-line uidlist."""
    _append_at(path, summary.complete_size, _lines(new_entries), fsync)


def _lines(entries: list[Entry]) -> bytes:
    return "".join([e.line() for e in entries]).encode("utf-8", "surrogateescape")


def _append_at(path: str, offset: int, data: bytes, fsync: bool) -> None:
    """Write ``data`` at ``offset``, the end of the last complete line: a partial line a
    crashed writer left is cut first."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        os.write(fd, data)
        if fsync:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def read_tail(path: str, offset: int, ino: int | None):
    """Records appended since ``offset`` when the file is still the same inode:
    → (ino, [(line offset, Entry)], end offset of the last complete line), or None when the
    file was replaced or shrank (then read it all)."""
    if ino is None or offset <= 0:
        return None
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    with f:
        st = os.fstat(f.fileno())
        if st.st_ino != ino or st.st_size < offset:
            return None
        f.seek(offset)
        data = f.read()
    out = []
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl].decode("utf-8", "surrogateescape")
        if line:
            entry = _parse_entry(line, 3)
            if entry is None:
                return None
            out.append((offset + pos, entry))
        pos = nl + 1
    return st.st_ino, out, offset + pos


def _parse_entry(line: str, version: int) -> Entry | None:
    uid_str, sep, rest = line.partition(" ")
    if not sep or not uid_str.isdigit() or int(uid_str) == 0 or int(uid_str) >= 2**32 - 1:
        return None
    uid = int(uid_str)
    if version == 1:
        base = rest.strip()
        fields: list[str] = []
    else:
        colon = rest.find(":")
        if colon < 0:
            return None
        fields = rest[:colon].split()
        base = rest[colon + 1:]
    if not base or "/" in base:
        return None
    return Entry(uid, base.split(":", 1)[0], fields)


def write(path: str, ul: Uidlist, fsync: bool = True) -> None:
    """Rewrite the whole file (caller holds the dotlock): ``.tmp`` then rename()."""
    ul.next_uid = ul.effective_next_uid()
    ul.version = 3
    body = ul.header() + "".join(e.line() for e in ul.entries)
    data = body.encode("utf-8", "surrogateescape")
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        if fsync:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    ul.ino = os.stat(tmp).st_ino
    os.rename(tmp, path)
    ul.size = len(data)
    ul.ends_with_newline = True


def append(path: str, ul: Uidlist, new_entries: list[Entry], fsync: bool = True) -> None:
    """Append records (caller holds the dotlock and has just read ``ul`` from ``path``)."""
    if ul.version != 3:
        ul.entries.extend(new_entries)
        write(path, ul, fsync)
        return
    data = _lines(new_entries)
    _append_at(path, ul.size, data, fsync)
    ul.entries.extend(new_entries)
    ul.size += len(data)


def append_new(path: str, ul: Uidlist, bases: list[str], fsync: bool = True) -> int:
    """Give ``bases`` the next UIDs, in order, and append their records (caller holds the
    dotlock and has just read ``ul``) → the first UID given.  The lines are written straight
    from the names (no ``Entry`` each: 100,000 of them on a first SELECT); ``ul`` is left
    with the new size and next UID but without the new entries."""
    first = ul.effective_next_uid()
    if ul.version != 3:
        append(path, ul, [Entry(first + i, b) for i, b in enumerate(bases)], fsync)
        return first
    data = "".join([f"{first + i} :{b}\n" for i, b in enumerate(bases)]).encode(
        "utf-8", "surrogateescape")
    _append_at(path, ul.size, data, fsync)
    ul.size += len(data)
    ul.next_uid = first + len(bases)
    return first
