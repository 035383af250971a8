"""STORE and UID STORE (RFC 3501 §6.4.6; RFC 7162 §3.1.3 UNCHANGEDSINCE / MODIFIED)."""

from __future__ import annotations

from pymail.imap.commands.fetch import targets_for
from pymail.imap.commands.mailbox import parse_flags
from pymail.imap.parser import Atom, number
from pymail.imap.sequence import compress
from pymail.imap.session import SELECTED, ImapError, bad, command

MODES = {"FLAGS": "replace", "+FLAGS": "add", "-FLAGS": "remove"}


@command("STORE", states=(SELECTED,), uid=True, allow_expunge=False)
async def store(session, cmd):
    args = list(cmd.args)
    if len(args) < 3:
        raise bad("STORE needs a sequence set, an action and flags")
    view = session.selected
    if view.readonly:
        raise ImapError("Mailbox is read-only", "READ-ONLY")
    pairs = targets_for(session, args.pop(0), cmd.uid)
    unchanged_since = None
    if isinstance(args[0], list):
        mods = args.pop(0)
        if len(mods) != 2 or str(mods[0]).upper() != "UNCHANGEDSINCE":
            raise bad("Unknown STORE modifier")
        unchanged_since = number(mods[1], "UNCHANGEDSINCE")
        await session.enable_condstore()
    if len(args) < 2 or not isinstance(args[0], Atom):
        raise bad("STORE needs an action and flags")
    action = args.pop(0).upper()
    silent = action.endswith(".SILENT")
    mode = MODES.get(action[:-7] if silent else action)
    if mode is None:
        raise bad(f"Unknown STORE action {action[:30]}")
    flags = parse_flags(args if len(args) > 1 else args[0])
    uids = [u for _, u in pairs if u not in view.gone]
    mb = view.mailbox

    def apply():
        if not uids:
            return [], []
        updated, failed = mb.store_flags(uids, flags, mode, unchanged_since) if unchanged_since is not None \
            else mb.store_flags(uids, flags, mode)
        view.apply_records(updated)
        return updated, failed

    updated, failed = await session.blocking(apply)
    failed_set = set(failed)
    changed = {r.uid for r in updated}
    lines = view.keyword_lines()
    for _seq, uid in pairs:
        if uid in failed_set or uid in view.gone:
            continue
        # RFC 7162 §3.1.3: with UNCHANGEDSINCE, also report (with MODSEQ) when .SILENT.
        if silent and not (view.condstore and uid in changed):
            continue
        line = view.fetch_line(uid, cmd.uid)
        if line:
            lines.append(line)
    if lines:
        session.send(b"".join(lines))
    if failed_set:
        if cmd.uid:
            return f"[MODIFIED {compress(failed_set)}] Conditional STORE failed"
        seqs = [view.seq_of(u) for u in failed_set if view.seq_of(u)]
        return f"[MODIFIED {compress(seqs)}] Conditional STORE failed"
    return "STORE completed"
