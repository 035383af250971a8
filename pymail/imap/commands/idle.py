"""IDLE (RFC 2177): push EXISTS / EXPUNGE / FETCH while the client waits, until ``DONE``.

Changes made by other processes are learnt by the process-wide ``IdleHub``: every
``settings.idle_poll`` seconds one thread job runs ``Mailbox.sync()`` for all idling sessions
(a few stat() calls when nothing changed), so a delivery is seen within a second. Entering IDLE
re-arms the autologout timer like any command.
"""

from __future__ import annotations

from pymail.imap import serialize
from pymail.imap.session import AUTHED, bad, command


@command("IDLE", states=AUTHED)
async def idle(session, cmd):
    if cmd.args:
        raise bad("IDLE takes no arguments")
    session.send(serialize.continuation("idling"))
    hub = session.io.idle_hub
    hub.add(session)
    try:
        line = await session.io.next_line()
    finally:
        await hub.remove(session)
    if line is session.io.CLOSED:
        return None
    if line.strip().upper() == b"DONE":
        return "IDLE terminated"
    raise bad("Expected DONE")
