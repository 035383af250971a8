"""QUOTA (RFC 9208): one quota root "" per user, STORAGE (KiB) and MESSAGE resources.

Usage comes from ``Account.quota()``; limits from the directory's user record (read at login).
SETQUOTA is an administrator's job (``pymail`` CLI), so it is refused here.
"""

from __future__ import annotations

from pymail.imap.commands.mailbox import mailbox_name, wire_name
from pymail.imap.parser import Atom, astring
from pymail.imap.session import AUTHED, ImapError, bad, command


async def quota_values(session) -> list:
    used_messages, used_bytes = await session.blocking(session.account.quota)
    limit_bytes, limit_messages = session.quota_limits
    out: list = []
    if limit_bytes is not None:  # RFC 9208 §5.1: STORAGE in units of 1024 octets
        out += [Atom("STORAGE"), (used_bytes + 1023) // 1024, (limit_bytes + 1023) // 1024]
    if limit_messages is not None:
        out += [Atom("MESSAGE"), used_messages, limit_messages]
    return out


@command("GETQUOTAROOT", states=AUTHED)
async def getquotaroot(session, cmd):
    if len(cmd.args) != 1:
        raise bad("GETQUOTAROOT needs a mailbox name")
    name = mailbox_name(session, cmd.args[0])
    infos = await session.blocking(session.account.list_mailboxes)
    if name not in {i.name for i in infos}:
        raise ImapError("No such mailbox", "NONEXISTENT")
    values = await quota_values(session)
    session.untagged("QUOTAROOT", wire_name(session, name), b"")
    session.untagged("QUOTA", b"", values)
    return "GETQUOTAROOT completed"


@command("GETQUOTA", states=AUTHED)
async def getquota(session, cmd):
    if len(cmd.args) != 1:
        raise bad("GETQUOTA needs a quota root")
    if astring(cmd.args[0], "quota root") != b"":
        raise ImapError("No such quota root", "NONEXISTENT")
    session.untagged("QUOTA", b"", await quota_values(session))
    return "GETQUOTA completed"


@command("SETQUOTA", states=AUTHED)
async def setquota(session, cmd):
    if len(cmd.args) != 2 or not isinstance(cmd.args[1], list):
        raise bad("SETQUOTA needs a quota root and a resource list")
    raise ImapError("Quotas are set by the administrator", "NOPERM")
