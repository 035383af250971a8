"""Mailbox management: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE (RFC 3501 §6.3), with
CREATE-SPECIAL-USE (RFC 6154), and the helpers every mailbox command shares (names are modified
UTF-7 on the wire and UTF-8 with "/" in the store; flag lists)."""

from __future__ import annotations

import re

from pymail.imap import serialize, utf7
from pymail.imap.parser import Atom, astring
from pymail.imap.session import AUTHED, AUTHENTICATED, ImapError, bad, command

SYSTEM_FLAGS = {"\\SEEN": "\\Seen", "\\ANSWERED": "\\Answered", "\\FLAGGED": "\\Flagged",
                "\\DELETED": "\\Deleted", "\\DRAFT": "\\Draft"}
SPECIAL_USES = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
_KEYWORD = re.compile(r"[^\x00-\x20\x7f(){%*\"\\\]]+\Z")


def mailbox_name(session, value, trailing_separator: bool = False) -> str:
    try:
        name = utf7.from_wire(astring(value, "mailbox name"), session.utf8)
    except utf7.NameError_ as e:
        raise ImapError(str(e), "CANNOT") from None
    if trailing_separator:  # RFC 3501 §6.3.3: "a/" creates "a" (as a future parent)
        name = name.rstrip("/")
    if not name or name.startswith("/") or name.endswith("/") or "//" in name:
        raise ImapError("Invalid mailbox name", "CANNOT")
    return name


def line_for(session, *parts) -> bytes:
    """An untagged response; 8-bit strings may be quoted once UTF8=ACCEPT is on (RFC 6855)."""
    return serialize.untagged(*parts, utf8=session.utf8)


def wire_name(session, name: str) -> bytes:
    return utf7.to_wire(name, session.utf8).encode("utf-8")


def parse_flags(value, allow_recent: bool = False) -> list[str]:
    """A flag list (or one flag) → canonical flag names; \\Recent dropped (RFC 3501 §2.3.2)."""
    items = value if isinstance(value, list) else [value]
    flags = []
    for f in items:
        if not isinstance(f, Atom):
            raise bad("Flags must be atoms")
        if f.startswith("\\"):
            canon = SYSTEM_FLAGS.get(f.upper())
            if canon is None:
                if f.upper() == "\\RECENT":
                    continue
                raise bad(f"Unknown system flag {f[:30]}")
            flags.append(canon)
        elif _KEYWORD.match(f):
            flags.append(str(f))
        else:
            raise bad(f"Bad keyword {f[:30]}")
    return flags

# --- CREATE / DELETE / RENAME / (UN)SUBSCRIBE -----------------------------------------------

@command("CREATE", states=AUTHED)
async def create(session, cmd):
    if not cmd.args or len(cmd.args) > 2:
        raise bad("CREATE needs a mailbox name")
    name = mailbox_name(session, cmd.args[0], trailing_separator=True)
    special = None
    if len(cmd.args) == 2:  # RFC 6154 §3: CREATE name (USE (\Sent))
        opts = cmd.args[1]
        if (not isinstance(opts, list) or len(opts) != 2 or str(opts[0]).upper() != "USE"
                or not isinstance(opts[1], list) or len(opts[1]) != 1):
            raise bad("CREATE takes (USE (\\attribute))")
        special = next((s for s in SPECIAL_USES if s.upper() == str(opts[1][0]).upper()), None)
        if special is None:
            raise ImapError("Unsupported special-use attribute", "USEATTR")
    if name == "INBOX":
        raise ImapError("INBOX always exists", "ALREADYEXISTS")
    account = session.account
    await session.blocking(account.create_mailbox, name, special) if special else \
        await session.blocking(account.create_mailbox, name)
    return "CREATE completed"


@command("DELETE", states=AUTHED)
async def delete(session, cmd):
    if len(cmd.args) != 1:
        raise bad("DELETE needs a mailbox name")
    name = mailbox_name(session, cmd.args[0])
    if name == "INBOX":
        raise ImapError("INBOX cannot be deleted", "CANNOT")
    if session.selected is not None and session.selected.name == name:
        session.selected = None
        session.state = AUTHENTICATED
    await session.blocking(session.account.delete_mailbox, name)
    return "DELETE completed"


@command("RENAME", states=AUTHED)
async def rename(session, cmd):
    if len(cmd.args) != 2:
        raise bad("RENAME needs two mailbox names")
    old, new = mailbox_name(session, cmd.args[0]), mailbox_name(session, cmd.args[1])
    if new == "INBOX":
        raise ImapError("Cannot rename to INBOX", "ALREADYEXISTS")
    await session.blocking(session.account.rename_mailbox, old, new)
    return "RENAME completed"


@command("SUBSCRIBE", "UNSUBSCRIBE", states=AUTHED)
async def subscribe(session, cmd):
    if len(cmd.args) != 1:
        raise bad(f"{cmd.name} needs a mailbox name")
    name = mailbox_name(session, cmd.args[0])
    fn = session.account.subscribe if cmd.name == "SUBSCRIBE" else session.account.unsubscribe
    await session.blocking(fn, name)
    return f"{cmd.name} completed"


def open_destination(account, name: str):
    """The target mailbox of APPEND, COPY or MOVE (blocking): a missing one is
    ``NO [TRYCREATE]`` (RFC 3501 §6.3.11, §6.4.7), so the client may CREATE it and retry."""
    from pymail.store.errors import StoreError

    try:
        return account.mailbox(name)
    except StoreError as e:
        if e.code == "NONEXISTENT":
            raise ImapError("No such mailbox", "TRYCREATE") from None
        raise
