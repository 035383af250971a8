"""SORT and THREAD (RFC 5256), SORT=DISPLAY (RFC 5957).

The messages are chosen with the SEARCH engine, then their header fields come in one query from
the store's parse cache (no message file is read).
"""

from __future__ import annotations

from pymail.imap import sortkeys, threads
from pymail.imap.commands.search import CHARSETS, esearch_line, run_search
from pymail.imap.parser import Atom, astring
from pymail.imap.context import UpdatingSearch
from pymail.imap.searchspec import parse_returns, parse_search
from pymail.imap.session import SELECTED, ImapError, bad, command

CRITERIA = {"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"}
ALGORITHMS = {"ORDEREDSUBJECT": threads.ordered_subject, "REFERENCES": threads.references}


def _charset(value) -> None:
    name = astring(value, "charset").decode("ascii", "replace").upper()
    if name not in CHARSETS:
        raise ImapError("Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)")


def _infos(view, found) -> list[sortkeys.Info]:
    mb = view.mailbox
    uids = [u for _, u in found]
    view.fill_internal_dates(uids)   # ARRIVAL, and DATE without a Date: header (§3)
    headers = mb.header_fields_many(uids, sortkeys.HEADER_NAMES) if uids else {}
    return [sortkeys.info_for(seq, uid, view.records[uid], headers.get(uid, b"\r\n"))
            for seq, uid in found if uid in view.records]


def _parse_criteria(value) -> list[tuple[str, bool]]:
    if not isinstance(value, list) or not value:
        raise bad("SORT needs a list of criteria")
    out, reverse = [], False
    for v in value:
        if not isinstance(v, Atom):
            raise bad("Bad sort criterion")
        name = v.upper()
        if name == "REVERSE":
            if reverse:
                raise bad("REVERSE twice")
            reverse = True
            continue
        if name not in CRITERIA:
            raise bad(f"Unknown sort criterion {name[:20]}")
        out.append((name, reverse))
        reverse = False
    if reverse or not out:
        raise bad("REVERSE must precede a criterion")
    return out


@command("SORT", states=(SELECTED,), uid=True, allow_expunge=False)
async def sort(session, cmd):
    args = list(cmd.args)
    returns = None
    if args and isinstance(args[0], Atom) and args[0].upper() == "RETURN":  # RFC 5267 ESORT
        if len(args) < 2 or not isinstance(args[1], list):
            raise bad("RETURN needs a list")
        returns = parse_returns(args[1])
        if "SAVE" in returns:
            raise bad("SAVE is not a SORT return option")
        args = args[2:]
    if len(args) < 3:
        raise bad("SORT needs criteria, a charset and search keys")
    criteria = _parse_criteria(args[0])
    _charset(args[1])
    _c, _r, tree = parse_search(args[2:])
    view = session.selected

    def run(v=view):
        found = run_search(session, v, tree)
        infos = _infos(v, found)
        # stable sorts from the last criterion to the first; ties keep sequence order (§3)
        infos.sort(key=lambda i: i.seq)
        for name, reverse in reversed(criteria):
            infos.sort(key=lambda i, n=name: sortkeys.sort_key(i, n), reverse=reverse)
        return infos

    infos = await session.blocking(run)
    numbers = [i.uid if cmd.uid else i.seq for i in infos]
    if returns is not None:
        opts = {r for r in returns if isinstance(r, str)}
        partial = next((r for r in returns if isinstance(r, tuple)), None)
        if not opts and partial is None:
            opts = {"ALL"}
        if "UPDATE" in opts:  # CONTEXT=SORT (RFC 5267 §4.2)
            if opts & {"MIN", "MAX"}:
                raise ImapError("UPDATE cannot be combined with MIN or MAX", "NOUPDATE")
            session.contexts[cmd.tag] = UpdatingSearch(
                cmd.tag, cmd.uid, lambda v: [(i.seq, i.uid) for i in run(v)],
                [(i.seq, i.uid) for i in infos])
        session.untagged(esearch_line(cmd.tag, cmd.uid, opts, numbers, sort_order=True, partial=partial))
        return "SORT completed"
    session.untagged("SORT" + "".join(f" {n}" for n in numbers))
    return "SORT completed"


@command("THREAD", states=(SELECTED,), uid=True, allow_expunge=False)
async def thread(session, cmd):
    if len(cmd.args) < 3 or not isinstance(cmd.args[0], Atom):
        raise bad("THREAD needs an algorithm, a charset and search keys")
    algorithm = ALGORITHMS.get(cmd.args[0].upper())
    if algorithm is None:
        raise bad("Unknown threading algorithm")
    _charset(cmd.args[1])
    _c, _r, tree = parse_search(cmd.args[2:])
    view = session.selected

    def run():
        return threads.format_threads(algorithm(_infos(view, run_search(session, view, tree))), cmd.uid)

    text = await session.blocking(run)
    session.untagged("THREAD" + (" " + text if text else ""))
    return "THREAD completed"
