"""THREAD algorithms of RFC 5256: ORDEREDSUBJECT (§3 "ORDEREDSUBJECT") and REFERENCES (§4,
Jamie Zawinski's algorithm), and the thread-list response syntax (§5)."""

from __future__ import annotations

import re

from pymail.imap.sortkeys import Info, extract_subject, sent_time

_MSGID = re.compile(r"<[^<>\s]+>")


class Container:
    __slots__ = ("info", "parent", "children", "date")

    def __init__(self, info: Info | None = None):
        self.info = info
        self.parent: Container | None = None
        self.children: list[Container] = []
        self.date = 0.0

    def is_ancestor_of(self, other: "Container") -> bool:
        node = other
        while node is not None:
            if node is self:
                return True
            node = node.parent
        return False

    def add_child(self, child: "Container") -> None:
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)


def _date(info: Info) -> tuple[float, int]:
    return sent_time(info.text("date"), info.internal), info.seq


def _sort_tree(nodes: list[Container]) -> None:
    """Siblings by sent date; a dummy takes the date of its first child (§4 step 7)."""
    for n in nodes:
        _sort_tree(n.children)
        n.date = _date(n.info) if n.info is not None else (n.children[0].date if n.children else (0.0, 0))
    nodes.sort(key=lambda n: n.date)


def ordered_subject(infos: list[Info]) -> list[Container]:
    groups: dict[str, list[Info]] = {}
    for info in infos:
        groups.setdefault(extract_subject(info.text("subject"))[0], []).append(info)
    roots = []
    for members in groups.values():
        members.sort(key=_date)
        root = Container(members[0])
        for m in members[1:]:
            root.add_child(Container(m))
        root.date = _date(members[0])
        roots.append(root)
    roots.sort(key=lambda c: c.date)
    return roots


def _references(info: Info) -> list[str]:
    refs = _MSGID.findall(info.text("references") or "")
    if not refs:
        irt = _MSGID.findall(info.text("in-reply-to") or "")
        refs = irt[:1]
    return refs


def references(infos: list[Info]) -> list[Container]:
    table: dict[str, Container] = {}
    for info in infos:
        ids = _MSGID.findall(info.text("message-id") or "")
        msgid = ids[0] if ids else None
        if msgid is None or (msgid in table and table[msgid].info is not None):
            msgid = f"<unique-{info.uid}@pymail.invalid>"  # missing or duplicate (§4 step 1A)
        container = table.get(msgid)
        if container is None:
            container = table[msgid] = Container()
        container.info = info
        prev = None
        refs = [r for r in _references(info) if r != msgid]
        for ref in refs:  # (1B) link the references parent → child, never making a loop
            c = table.get(ref)
            if c is None:
                c = table[ref] = Container()
            if prev is not None and c.parent is None and not c.is_ancestor_of(prev) and c is not prev:
                prev.add_child(c)
            prev = c
        # (1C) the last reference becomes the message's parent
        if container.parent is not None:
            container.parent.children.remove(container)
            container.parent = None
        if prev is not None and not container.is_ancestor_of(prev):
            prev.add_child(container)
    roots = [c for c in table.values() if c.parent is None]
    roots = _prune(roots, top=True)
    _sort_tree(roots)
    roots = _group_by_subject(roots)
    _sort_tree(roots)
    return roots


def _prune(nodes: list[Container], top: bool) -> list[Container]:
    """(4) drop empty dummies; a dummy's children move up (to the root only if just one)."""
    out: list[Container] = []
    for n in nodes:
        n.children = _prune(n.children, top=False)
        for c in n.children:
            c.parent = n
        if n.info is None:
            if not n.children:
                continue
            if not top or len(n.children) == 1:
                for c in n.children:
                    c.parent = n.parent
                out.extend(n.children)
                continue
        out.append(n)
    return out


def _subject_of(c: Container) -> tuple[str, bool]:
    info = c.info if c.info is not None else (c.children[0].info if c.children else None)
    if info is None:
        return "", False
    return extract_subject(info.text("subject"))


def _group_by_subject(roots: list[Container]) -> list[Container]:
    """(5) threads whose roots share a base subject are merged."""
    table: dict[str, Container] = {}
    for c in roots:
        subject, reply = _subject_of(c)
        if not subject:
            continue
        old = table.get(subject)
        if old is None or (c.info is None and old.info is not None) or \
                (_subject_of(old)[1] and not reply and c.info is not None and old.info is not None):
            table[subject] = c
    out: list[Container] = []
    for c in roots:
        subject, reply = _subject_of(c)
        target = table.get(subject) if subject else None
        if target is None or target is c:
            out.append(c)
            continue
        if target.info is None and c.info is None:
            for child in list(c.children):
                target.add_child(child)
        elif target.info is None:
            target.add_child(c)
        elif reply and not _subject_of(target)[1]:
            target.add_child(c)
        else:
            dummy = Container()
            index = out.index(target) if target in out else None
            dummy.add_child(target)
            dummy.add_child(c)
            table[subject] = dummy
            if index is not None:
                out[index] = dummy
            else:
                out.append(dummy)
    return [c for c in out if c.parent is None]


def format_threads(roots: list[Container], by_uid: bool) -> str:
    def members(c: Container) -> str:
        parts = []
        node = c
        while True:
            if node.info is not None:
                parts.append(str(node.info.uid if by_uid else node.info.seq))
            if len(node.children) == 1 and node.info is not None:
                node = node.children[0]
                continue
            if node.children:
                parts.append("".join("(" + members(k) + ")" for k in node.children))
            break
        return " ".join(parts)

    return "".join("(" + members(r) + ")" for r in roots)
