"""FETCH data items (RFC 3501 §6.4.5): parsed from the argument tree into ``FetchItem``s."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymail.imap.parser import Atom, ParseError, Reader, astring

MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
SIMPLE = {"FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY",
          "RFC822", "RFC822.HEADER", "RFC822.TEXT", "MODSEQ"}
SECTION_ITEM = re.compile(r"(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK|BINARY\.SIZE)\[(.*)\](?:<(\d+)(?:\.(\d+))?>)?\Z",
                          re.S | re.I)
PART = re.compile(r"[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8})*")


@dataclass(frozen=True)
class Section:
    part: tuple[int, ...] = ()
    spec: str = ""  # "", HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        pieces = [".".join(map(str, self.part))] if self.part else []
        if self.spec:
            pieces.append(self.spec)
        s = ".".join(pieces)
        if self.fields:
            s += " (" + " ".join(self.fields) + ")"
        return s


@dataclass(frozen=True)
class FetchItem:
    name: str  # FLAGS, UID, ..., or BODY[] / BINARY[] / BINARY.SIZE[] for sections
    section: Section | None = None
    peek: bool = False
    partial: tuple[int, int | None] | None = None  # (origin, length)

    @property
    def sets_seen(self) -> bool:
        """Fetching these sets \\Seen (RFC 3501 §6.4.5) unless the mailbox is read-only."""
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.section is not None and not self.peek and self.name != "BINARY.SIZE"

    def response_name(self) -> str:
        """The item name as the response shows it (``BODY[HEADER]<0>``, never ``.PEEK``)."""
        if self.section is None:
            return self.name
        base = {"BODY": "BODY", "BINARY": "BINARY", "BINARY.SIZE": "BINARY.SIZE"}[self.name]
        s = f"{base}[{self.section}]"
        if self.partial is not None and base != "BINARY.SIZE":
            s += f"<{self.partial[0]}>"
        return s


def parse_section(text: str, binary: bool) -> Section:
    if text == "":
        return Section()
    m = PART.match(text)
    part: tuple[int, ...] = ()
    rest = text
    if m:
        part = tuple(int(x) for x in m.group(0).split("."))
        rest = text[m.end():]
        if rest.startswith("."):
            rest = rest[1:]
        elif rest:
            raise ParseError("Bad section")
    if binary:
        if rest:
            raise ParseError("BINARY takes part numbers only (RFC 3516)")
        return Section(part)
    upper = rest.upper()
    if upper in ("", "HEADER", "TEXT", "MIME"):
        if upper == "" and not part and rest:
            raise ParseError("Bad section")
        if upper == "MIME" and not part:
            raise ParseError("MIME needs a part number")
        return Section(part, upper)
    m = re.match(r"(HEADER\.FIELDS(?:\.NOT)?) +\(", upper)
    if m is None:
        raise ParseError(f"Bad section: {text[:40]}")
    reader = Reader(rest[m.end() - 1:].encode("utf-8") + b"\r\n")
    names = reader.parenthesised(1)
    if not reader.at_end() or not names:
        raise ParseError("Bad header field list")
    fields = []
    for n in names:
        raw = astring(n, "header field name").decode("ascii", "replace")
        if not raw or any(c in raw for c in ": \t") or not raw.isascii():
            raise ParseError("Bad header field name")
        fields.append(raw.upper())
    return Section(part, m.group(1), tuple(fields))


def parse_fetch_items(value) -> list[FetchItem]:
    """The argument after the sequence set: a macro, one item or a list of items."""
    if isinstance(value, Atom) and value.upper() in MACROS:
        return [FetchItem(n) for n in MACROS[value.upper()]]
    raw = value if isinstance(value, list) else [value]
    if not raw:
        raise ParseError("Empty fetch item list")
    items = []
    for v in raw:
        if not isinstance(v, Atom):
            raise ParseError("Bad fetch item")
        items.append(parse_fetch_item(v))
    return items


def parse_fetch_item(atom: str) -> FetchItem:
    upper = atom.upper()
    if upper in SIMPLE:
        return FetchItem(upper)
    m = SECTION_ITEM.match(atom)
    if m is None:
        raise ParseError(f"Unknown fetch item: {atom[:40]}")
    kind = m.group(1).upper()
    binary = kind.startswith("BINARY")
    section = parse_section(m.group(2), binary)
    partial = None
    if m.group(3) is not None:
        if kind == "BINARY.SIZE":
            raise ParseError("BINARY.SIZE takes no partial")
        length = int(m.group(4)) if m.group(4) is not None else None
        if length is None:
            raise ParseError("Partial needs <origin.length>")
        partial = (int(m.group(3)), length)
    name = {"BODY": "BODY", "BODY.PEEK": "BODY", "BINARY": "BINARY",
            "BINARY.PEEK": "BINARY", "BINARY.SIZE": "BINARY.SIZE"}[kind]
    return FetchItem(name, section, kind.endswith(".PEEK"), partial)
