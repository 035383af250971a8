"""Big-mailbox timings: the commands a client runs on a large folder, cold then warm.

One client, ``passes`` times: SELECT, ``UID FETCH 1:* (UID FLAGS)``, ``FETCH 1:* (ENVELOPE
INTERNALDATE RFC822.SIZE)``, ``FETCH 1:* (BODY.PEEK[HEADER.FIELDS (...)])``, ``UID SEARCH
HEADER``, ``STORE`` on 1000 messages. The first pass is "cold" when the server has never opened
the folder (no index yet: perf/compare starts every server on fresh data); later passes are
"warm". Every full-range FETCH must answer exactly EXISTS messages.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from pymail_loadtest.common import Bounds, LoadError, ProtocolMismatch, Target, User
from pymail_loadtest.imap_client import ImapClient
from pymail_loadtest.stats import Recorder


@dataclass
class MailboxLoad:
    target: Target
    user: User
    bounds: Bounds
    mailbox: str = "INBOX"
    passes: int = 2
    store_count: int = 1000
    search_text: str = "Message 5 of"


STEPS = (
    ("select", None),
    ("fetch_uid_flags", "UID FETCH 1:* (UID FLAGS)"),
    ("fetch_envelope", "FETCH 1:* (ENVELOPE INTERNALDATE RFC822.SIZE)"),
    ("fetch_headers", "FETCH 1:* (BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])"),
    ("search_header", None),
    ("store", None),
)


async def run_mailbox(load: MailboxLoad, rec: Recorder) -> None:
    if load.user is None:
        raise LoadError("the mailbox timings need a user (--user NAME:PASS)")
    passes = []
    for number in range(1, load.passes + 1):
        if load.bounds.expired():
            break
        label = "cold" if number == 1 else "warm"
        client = ImapClient(load.target)
        timings = {}
        try:
            await client.connect()
            await client.login(load.user.name, load.user.password)
            for step, command in STEPS:
                t0 = time.monotonic()
                if step == "select":
                    await client.select(load.mailbox)
                elif step == "search_header":
                    await client.command(f'UID SEARCH HEADER SUBJECT "{load.search_text}"')
                elif step == "store":
                    if client.box.exists == 0:
                        continue
                    last = min(load.store_count, client.box.exists)
                    sign = "+" if number % 2 else "-"
                    await client.command(f"STORE 1:{last} {sign}FLAGS.SILENT (\\Flagged)")
                else:
                    result = await client.command(command)
                    got = sum(1 for r in result.untagged if " FETCH " in r.text.upper())
                    if got < client.box.exists:
                        raise ProtocolMismatch(f"{command} answered {got} of {client.box.exists} messages")
                seconds = time.monotonic() - t0
                rec.record(f"{step}_{label}", seconds)
                timings[step] = round(seconds * 1000, 2)
            timings["exists"] = client.box.exists
            await client.logout()
        except (ProtocolMismatch, OSError, ConnectionError, asyncio.TimeoutError) as exc:
            rec.error(f"pass{number}", f"{type(exc).__name__}: {exc}")
            await client.close()
            break
        passes.append({"pass": number, "label": label, "ms": timings})
    rec.extra["passes"] = passes
