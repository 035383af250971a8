"""SMTP load: S sessions, each sending messages until the count or the time runs out.

The figure that matters is the end-of-DATA reply: a server may only say 250 once the message is
safe on disk (RFC 5321 §4.1.1.4, §6.1), so its latency is the cost of accepting one message.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from pymail_loadtest.common import Bounds, ProtocolMismatch, SizeDistribution, Target, User, make_message
from pymail_loadtest.smtp_client import SmtpClient
from pymail_loadtest.stats import Recorder


@dataclass
class SmtpLoad:
    target: Target
    sessions: int
    bounds: Bounds
    sizes: SizeDistribution
    sender: str
    recipients: list[str]
    messages_per_session: int = 0  # 0: until the bounds; else reconnect after this many
    auth: list[User] | None = None  # session i authenticates as auth[i % len(auth)]
    seed: int = 1
    sender_is_user: bool = False  # MAIL FROM the authenticated address (submission rules)


async def run_smtp(load: SmtpLoad, rec: Recorder) -> None:
    rng = random.Random(load.seed)
    bodies = {size: make_message(size, rng, load.sender) for size in set(load.sizes.sizes)}
    rec.extra["messages_bytes"] = 0

    async def session(number: int) -> None:
        srng = random.Random(load.seed * 1000 + number)
        user = load.auth[number % len(load.auth)] if load.auth else None
        sender = user.name if (user and load.sender_is_user) else load.sender
        while not load.bounds.expired():
            client = SmtpClient(load.target)
            try:
                t0 = time.monotonic()
                await client.connect()
                if user is not None:
                    await client.auth_plain(user.name, user.password)
                rec.record("connect", time.monotonic() - t0)
                sent = 0
                while load.messages_per_session == 0 or sent < load.messages_per_session:
                    if not load.bounds.take():
                        break
                    size = load.sizes.pick(srng)
                    rcpt = load.recipients[srng.randrange(len(load.recipients))]
                    t1 = time.monotonic()
                    code, text = await client.end_of_data(sender, [rcpt], bodies[size])
                    if code != 250:
                        rec.error("message", f"end of DATA -> {code} {text}")
                        continue
                    rec.record("message", time.monotonic() - t1)
                    rec.extra["messages_bytes"] += size
                    sent += 1
                await client.quit()
            except (ProtocolMismatch, OSError, asyncio.TimeoutError, ConnectionError) as exc:
                rec.error("session", f"{type(exc).__name__}: {exc}")
                await client.close()
                await asyncio.sleep(0.05)  # do not spin on a refusing server

    await asyncio.gather(*(session(i) for i in range(load.sessions)))
