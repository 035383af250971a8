"""SELECT, EXAMINE (RFC 3501 §6.3.1-2, RFC 7162 CONDSTORE/QRESYNC parameters), UNSELECT
(RFC 3691) and CLOSE (RFC 3501 §6.4.2)."""

from __future__ import annotations

from pymail.imap.commands.mailbox import line_for, mailbox_name, wire_name
from pymail.imap.parser import Atom, number
from pymail.imap.selected import SelectedMailbox
from pymail.imap.sequence import parse_sequence_set
from pymail.imap.session import AUTHED, AUTHENTICATED, SELECTED, bad, command


@command("SELECT", "EXAMINE", states=AUTHED)
async def select(session, cmd):
    if not cmd.args:
        raise bad(f"{cmd.name} needs a mailbox name")
    readonly = cmd.name == "EXAMINE"
    condstore = False
    qresync = None
    if len(cmd.args) == 2 and isinstance(cmd.args[1], list):
        params = cmd.args[1]
        i = 0
        while i < len(params):
            p = str(params[i]).upper() if isinstance(params[i], Atom) else ""
            if p == "CONDSTORE":
                condstore = True
            elif p == "QRESYNC" and i + 1 < len(params):
                if "QRESYNC" not in session.enabled:  # RFC 7162 §3.2.5
                    raise bad("ENABLE QRESYNC first")
                qresync = _qresync_params(params[i + 1])
                i += 1
            else:
                raise bad("Unknown SELECT parameter")
            i += 1
    elif len(cmd.args) != 1:
        raise bad(f"{cmd.name} takes one mailbox name")
    name = mailbox_name(session, cmd.args[0])
    # RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected; RFC 7162 §3.2.11: say so.
    if session.selected is not None and ("QRESYNC" in session.enabled or session.rev2):
        session.send(line_for(session, "OK", "[CLOSED] Previous mailbox closed"))
    session.selected = None
    session.state = AUTHENTICATED
    account = session.account

    def open_view():
        view = SelectedMailbox(name, account.mailbox(name), readonly)
        try:
            view.open()
            resync = []
            if qresync is not None and qresync[0] == view.mailbox.uidvalidity:
                resync = view.resync_lines(qresync[1], qresync[2])
            return view, view.mailbox.uidvalidity, view.mailbox.highest_modseq, resync
        except BaseException:
            view.mailbox.close()
            raise

    view, uidvalidity, highest, resync = await session.blocking(open_view)
    if condstore:
        session.enabled.add("CONDSTORE")
    view.condstore = "CONDSTORE" in session.enabled
    view.qresync = "QRESYNC" in session.enabled
    view.contexts = session.contexts
    view.rev2 = session.rev2
    lines = [line_for(session, "FLAGS", [Atom(f) for f in view.flag_names()]),
             line_for(session, "OK", "[PERMANENTFLAGS (" + ("" if readonly else
                                " ".join(view.flag_names() + ["\\*"])) + ")] Flags permitted"),
             line_for(session, view.exists, "EXISTS")]
    if session.rev2:
        # RFC 9051 §6.3.2: a LIST response names the mailbox; no RECENT, no [UNSEEN n]
        lines.append(line_for(session, "LIST", [], b"/", wire_name(session, name)))
    else:
        lines.append(line_for(session, len(view.recent), "RECENT"))
        unseen = view.first_unseen_seq()
        if unseen is not None:
            lines.append(line_for(session, "OK", f"[UNSEEN {unseen}] First unseen"))
    lines += [line_for(session, "OK", f"[UIDVALIDITY {uidvalidity}] UIDs valid"),
              line_for(session, "OK", f"[UIDNEXT {view.uidnext}] Predicted next UID"),
              line_for(session, "OK", f"[HIGHESTMODSEQ {highest}] Highest")]
    session.send(b"".join(lines + resync))
    session.selected = view
    session.state = SELECTED
    return f"[{'READ-ONLY' if readonly else 'READ-WRITE'}] {cmd.name} completed"


def _qresync_params(value) -> tuple[int, int, object]:
    """``(uidvalidity modseq [known-uids [seq-match]])`` of SELECT (QRESYNC ...), RFC 7162 §3.2.5."""
    if not isinstance(value, list) or len(value) < 2:
        raise bad("QRESYNC needs (uidvalidity modseq ...)")
    uidvalidity, modseq = number(value[0], "UIDVALIDITY"), number(value[1], "MODSEQ")
    known = parse_sequence_set(value[2]) if len(value) > 2 else None
    return uidvalidity, modseq, known


@command("UNSELECT", "CLOSE", states=(SELECTED,))
async def unselect(session, cmd):
    if cmd.args:
        raise bad(f"{cmd.name} takes no arguments")
    view = session.selected
    if cmd.name == "CLOSE" and not view.readonly:
        # RFC 3501 §6.4.2: expunge silently, no untagged EXPUNGE responses.
        await session.blocking(view.mailbox.expunge)
    session.selected = None
    session.state = AUTHENTICATED
    return f"{cmd.name} completed"
