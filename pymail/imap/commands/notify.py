"""NOTIFY SET / NOTIFY NONE (RFC 5465): which events the client hears about without asking.

Supported events: MessageNew, MessageExpunge, FlagChange (as STATUS responses for mailboxes that
are not selected; as the usual EXISTS/EXPUNGE/FETCH for the selected one), MailboxName and
SubscriptionChange (as LIST responses). MessageNew with FETCH attributes, annotations and
metadata events are refused with ``NO [BADEVENT ...]``.
"""

from __future__ import annotations

from pymail.imap.commands.mailbox import mailbox_name
from pymail.imap.notify import EVENT_NAMES, MESSAGE_EVENTS, SUPPORTED, Filter, NotifyWatch
from pymail.imap.parser import Atom
from pymail.imap.session import AUTHED, ImapError, bad, command

FILTERS = {"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"}


def _parse_group(session, group) -> Filter:
    if not isinstance(group, list) or len(group) < 2 or not isinstance(group[0], Atom):
        raise bad("NOTIFY event group is (filter events)")
    kind = group[0].upper()
    if kind not in FILTERS:
        raise bad(f"Unknown NOTIFY filter {kind[:20]}")
    rest = group[1:]
    names: list[str] = []
    if kind in ("SUBTREE", "MAILBOXES"):
        target = rest.pop(0)
        for v in (target if isinstance(target, list) else [target]):
            names.append(mailbox_name(session, v))
        if not rest:
            raise bad("NOTIFY filter needs events")
    if len(rest) != 1:
        raise bad("NOTIFY filter takes one event list")
    events_arg = rest[0]
    if isinstance(events_arg, Atom) and events_arg.upper() == "NONE":
        return Filter(kind, names, set())
    if not isinstance(events_arg, list) or not events_arg:
        raise bad("NOTIFY events are a list or NONE")
    events: set[str] = set()
    for e in events_arg:
        if isinstance(e, list):  # FETCH attributes after MessageNew (RFC 5465 §5.2)
            raise ImapError("MessageNew with fetch attributes is not supported", f"BADEVENT ({EVENT_NAMES})")
        if not isinstance(e, Atom):
            raise bad("Bad NOTIFY event")
        name = e.upper()
        if name not in SUPPORTED:
            raise ImapError(f"Unsupported event {e[:30]}", f"BADEVENT ({EVENT_NAMES})")
        events.add(name)
    # RFC 5465 §5: MessageNew and MessageExpunge go together; FlagChange needs both
    if (("MESSAGENEW" in events) != ("MESSAGEEXPUNGE" in events)) or \
            ("FLAGCHANGE" in events and "MESSAGENEW" not in events):
        raise bad("MessageNew and MessageExpunge go together, and FlagChange needs them")
    if kind.startswith("SELECTED") and events - MESSAGE_EVENTS:
        raise bad("Only message events apply to the selected mailbox")
    return Filter(kind, names, events)


@command("NOTIFY", states=AUTHED)
async def notify(session, cmd):
    if not cmd.args or not isinstance(cmd.args[0], Atom):
        raise bad("NOTIFY SET ... or NOTIFY NONE")
    verb = cmd.args[0].upper()
    if verb == "NONE" and len(cmd.args) == 1:
        session.notify = None
        return "NOTIFY completed"
    if verb != "SET":
        raise bad("NOTIFY SET ... or NOTIFY NONE")
    args = list(cmd.args[1:])
    with_status = False
    if args and isinstance(args[0], Atom) and args[0].upper() == "STATUS":
        with_status = True
        args.pop(0)
    if not args:
        raise bad("NOTIFY SET needs event groups")
    filters = [_parse_group(session, g) for g in args]
    watch = NotifyWatch(session.account, filters, session.utf8)
    watch.selected_name = session.selected.name if session.selected is not None else None
    lines = await session.blocking(watch.initial, with_status)
    if lines:
        session.send(b"".join(lines))
    session.notify = watch
    session.io.watch_notify()
    return "NOTIFY completed"
