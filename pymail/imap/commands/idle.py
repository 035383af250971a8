"""IDLE (RFC 2177): push EXISTS / EXPUNGE / FETCH while the client waits, until ``DONE``.

Changes made by other processes are learnt by polling ``Mailbox.sync()`` in a thread every
``settings.idle_poll`` seconds (cheap when nothing changed), so a delivery is seen within a
second. Entering IDLE re-arms the autologout timer like any command.
"""

from __future__ import annotations

from pymail.imap import serialize
from pymail.imap.session import AUTHED, bad, command


@command("IDLE", states=AUTHED)
async def idle(session, cmd):
    if cmd.args:
        raise bad("IDLE takes no arguments")
    session.send(serialize.continuation("idling"))
    while True:
        line = await session.io.next_line(session.settings.idle_poll)
        if line is session.io.CLOSED:
            return None
        if line is not None:
            if line.strip().upper() == b"DONE":
                return "IDLE terminated"
            raise bad("Expected DONE")
        if session.selected is not None:
            await session.flush_updates(allow_expunge=True)
