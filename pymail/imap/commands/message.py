"""EXPUNGE, UID EXPUNGE (RFC 4315 §2.1), COPY / UID COPY with COPYUID (RFC 4315 §3),
MOVE / UID MOVE (RFC 6851)."""

from __future__ import annotations

from pymail.imap.commands.fetch import targets_for
from pymail.imap.commands.mailbox import mailbox_name, open_destination
from pymail.imap.sequence import ordered_compress, parse_sequence_set
from pymail.imap.session import SELECTED, ImapError, bad, command


@command("EXPUNGE", states=(SELECTED,), uid=True)
async def expunge(session, cmd):
    view = session.selected
    if view.readonly:
        raise ImapError("Mailbox is read-only", "READ-ONLY")
    only = None
    if cmd.uid:
        if len(cmd.args) != 1:
            raise bad("UID EXPUNGE needs a UID set")
        seqset = parse_sequence_set(cmd.args[0])
        only = [u for _, u in view.select(seqset, True)]
    elif cmd.args:
        raise bad("EXPUNGE takes no arguments")
    if only is not None and not only:
        return "EXPUNGE completed"
    gone = await session.blocking(view.mailbox.expunge, only) if only is not None else \
        await session.blocking(view.mailbox.expunge)
    lines = view.announce_expunges(gone)
    if lines:
        session.send(b"".join(lines))
    return "EXPUNGE completed"


async def _copy_or_move(session, cmd, move: bool):
    if len(cmd.args) != 2:
        raise bad(f"{cmd.name} needs a sequence set and a mailbox name")
    view = session.selected
    if move and view.readonly:
        raise ImapError("Mailbox is read-only", "READ-ONLY")
    pairs = targets_for(session, cmd.args[0], cmd.uid)
    dest = mailbox_name(session, cmd.args[1])
    uids = [u for _, u in pairs if u not in view.gone]
    if not pairs:
        return f"{cmd.name} completed"
    if not uids:
        raise ImapError("The messages no longer exist", "EXPUNGEISSUED")
    account = session.account

    def run():
        with open_destination(account, dest) as dest_mb:
            uidvalidity = dest_mb.uidvalidity
        mapping = view.mailbox.move(uids, dest) if move else view.mailbox.copy(uids, dest)
        return uidvalidity, mapping

    uidvalidity, mapping = await session.blocking(run)
    code = ""
    if mapping:
        src = ordered_compress(s for s, _ in mapping)
        dst = ordered_compress(d for _, d in mapping)
        code = f"[COPYUID {uidvalidity} {src} {dst}] "
    if not move:
        return f"{code}COPY completed"
    # RFC 6851 §4.3: COPYUID goes in an untagged OK before the EXPUNGE responses.
    if code:
        session.untagged("OK", code.strip() + " Moved")
    lines = view.announce_expunges([s for s, _ in mapping])
    if lines:
        session.send(b"".join(lines))
    return "MOVE completed"


@command("COPY", states=(SELECTED,), uid=True, allow_expunge=False)
async def copy(session, cmd):
    return await _copy_or_move(session, cmd, move=False)


@command("MOVE", states=(SELECTED,), uid=True)
async def move(session, cmd):
    return await _copy_or_move(session, cmd, move=True)
