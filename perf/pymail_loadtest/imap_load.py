"""IMAP load: N clients behaving like mail users, with every reply checked against a model.

Each client logs in, selects INBOX and runs a weighted mix of operations, logging out and in
again every ``session_ops`` operations. Clients that share a mailbox split its messages by UID
(``uid % group == position``, plus what they append) so that each one can check the flags it
set itself, as imaptest's ``own_flags`` does: a \\Flagged it set must still read back, a message
it owns must not vanish unless it expunged it, and every UID/EXISTS/EXPUNGE must fit the
sequence-number map (see imap_client.MailboxModel).
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from dataclasses import dataclass, field

from pymail_loadtest.common import (Bounds, LoadError, ProtocolMismatch, SizeDistribution, Target,
                                    User, make_message)
from pymail_loadtest.imap_client import ImapClient, ImapNo, MailboxModel
from pymail_loadtest.stats import Recorder

DEFAULT_MIX = ("fetch_flags=20,fetch_headers=15,fetch_body=20,store=15,append=8,expunge=5,"
               "idle=5,noop=5,select=5,search=2")
OPERATIONS = ("fetch_flags", "fetch_headers", "fetch_body", "store", "append", "expunge",
              "idle", "noop", "select", "search")
_APPENDUID = re.compile(r"\[APPENDUID (\d+) (\d+)\]", re.I)
_SIZE = re.compile(r"\bRFC822\.SIZE (\d+)", re.I)
_SEARCH = re.compile(r"^\* SEARCH\b(.*)$", re.I)


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        name, _, weight = part.strip().partition("=")
        if name not in OPERATIONS:
            raise LoadError(f"unknown IMAP operation {name!r} (known: {', '.join(OPERATIONS)})")
        try:
            mix[name] = float(weight or 1)
        except ValueError:
            raise LoadError(f"bad weight for {name}: {weight!r}") from None
    if sum(mix.values()) <= 0:
        raise LoadError("the IMAP mix has no operation with a weight above 0")
    return mix


@dataclass
class ImapLoad:
    target: Target
    clients: int
    users: list[User]
    bounds: Bounds
    mix: dict[str, float]
    sizes: SizeDistribution
    mailbox: str = "INBOX"
    session_ops: int = 20  # operations between LOGIN and LOGOUT
    window: int = 50  # messages per FETCH of flags / headers
    idle_time: float = 0.2
    seed: int = 1
    auth: str = "login"  # login | plain (AUTHENTICATE PLAIN)
    # user → the UIDNEXT below which messages existed before any of its clients appended
    first_uidnext: dict = field(default_factory=dict)


def fetches_of(untagged, uid: int) -> list:
    """The untagged FETCH responses about ``uid``: "UID 31" is not "UID 310" (a substring test
    could take another client's flag update for the STORE's own answer, and report a false
    "reply shows \\Flagged=..." mismatch)."""
    about = re.compile(rf"\bUID {uid}(?!\d)", re.IGNORECASE)
    return [r for r in untagged if " FETCH " in r.text.upper() and about.search(r.text)]


class OwnedModel(MailboxModel):
    """The mailbox model plus the checks on messages this client owns."""

    def __init__(self, group: int, position: int):
        super().__init__()
        self.group, self.position = group, position
        self.appended: set[int] = set()
        self.flagged: dict[int, bool] = {}  # uid -> \Flagged as this client last set it
        self.deleting: set[int] = set()
        self.first_uidnext = 0  # messages below it existed before the run and are split by UID

    def owns(self, uid: int) -> bool:
        if uid in self.appended:
            return True
        return uid < self.first_uidnext and uid % self.group == self.position

    def on_expunge(self, seq: int) -> None:
        uid = self.uids[seq - 1] if 1 <= seq <= len(self.uids) else None
        super().on_expunge(seq)
        if uid is not None and self.owns(uid) and uid not in self.deleting:
            raise ProtocolMismatch(f"UID {uid} (mine, not \\Deleted by me) was expunged")
        self.flagged.pop(uid, None)

    def on_fetch(self, seq: int, text: str) -> int | None:
        uid = super().on_fetch(seq, text)
        if uid is not None and uid in self.flagged and uid in self.flags:
            has = "\\FLAGGED" in {f.upper() for f in self.flags[uid]}
            if has != self.flagged[uid]:
                raise ProtocolMismatch(f"UID {uid}: \\Flagged is {has}, I set it to {self.flagged[uid]}")
        return uid

    def own_known(self, rng: random.Random) -> int | None:
        known = [u for u in self.uids if u is not None and self.owns(u) and u not in self.deleting]
        return rng.choice(known) if known else None


def first_uidnext(shared: dict, user: str, uidnext: int) -> int:
    """The clients of one user split the messages that existed before any of them appended,
    so they must agree where that ends: the UIDNEXT of the first SELECT answered for the user
    (a client appends only after its own SELECT was answered, so no append precedes it).  Each
    client taking its own first UIDNEXT made a late one claim a message another had appended
    meanwhile, and report its expunge as a lost message, against Dovecot as against pymail."""
    return shared.setdefault(user, uidnext or 1)


class ImapUser:
    def __init__(self, load: ImapLoad, rec: Recorder, number: int):
        self.load, self.rec, self.number = load, rec, number
        self.user = load.users[number % len(load.users)]
        self.group = len(range(number % len(load.users), load.clients, len(load.users)))
        self.position = number // len(load.users)
        self.rng = random.Random(load.seed * 7919 + number)
        self.client: ImapClient | None = None
        self.body = make_message(load.sizes.sizes[0], self.rng, subject=f"append by client {number}")
        # Flags this client set survive its own reconnects: they are facts about the mailbox.
        self.model = OwnedModel(self.group, self.position)

    async def timed(self, op: str, coro) -> object:
        t0 = time.monotonic()
        result = await coro
        self.rec.record(op, time.monotonic() - t0)
        return result

    async def run(self) -> None:
        while not self.load.bounds.expired():
            self.client = ImapClient(self.load.target)
            try:
                await self.timed("login", self.login())
                await self.timed("select", self.select())
                for _ in range(self.load.session_ops):
                    if not self.load.bounds.take():
                        break
                    await self.one_op()
                await self.timed("logout", self.client.logout())
            except (ProtocolMismatch, OSError, asyncio.TimeoutError, ConnectionError,
                    asyncio.IncompleteReadError) as exc:
                self.rec.error(getattr(self, "current", "session"), f"{type(exc).__name__}: {exc}")
                await self.client.close()
                await asyncio.sleep(0.05)

    async def login(self) -> None:
        await self.client.connect()
        await self.client.login(self.user.name, self.user.password, self.load.auth)

    async def select(self) -> None:
        await self.client.select(self.load.mailbox)
        # Keep what this client owns across SELECTs; the sequence map starts afresh.
        fresh = self.client.box
        self.model.uids = fresh.uids
        self.model.uidvalidity, self.model.uidnext = fresh.uidvalidity, fresh.uidnext
        if not self.model.first_uidnext:
            self.model.first_uidnext = first_uidnext(self.load.first_uidnext, self.user.name,
                                                     fresh.uidnext)
        self.model.flags = {}
        self.client.box = self.model

    async def one_op(self) -> None:
        ops, weights = zip(*self.load.mix.items())
        op = self.rng.choices(ops, weights)[0]
        self.current = op
        if op == "idle":  # records its own time: the wait in IDLE is the client's choice
            await self.op_idle()
        else:
            await self.timed(op, getattr(self, "op_" + op)())
        self.current = "session"

    # -- the operations ------------------------------------------------------------------------
    def window(self, size: int) -> str:
        n = self.model.exists
        lo = self.rng.randint(1, max(1, n - size + 1))
        return f"{lo}:{min(n, lo + size - 1)}"

    async def op_select(self) -> None:
        await self.select()

    async def op_noop(self) -> None:
        await self.client.command("NOOP")

    async def fetch(self, command: str):
        """A FETCH/STORE by sequence number. Another session may have expunged some of the
        messages without this one being told yet: RFC 2180 §4.1 lets the server answer NO
        [EXPUNGEISSUED] (RFC 5530) or leave them out, so neither is an error."""
        result = await self.client.command(command, ok_only=False)
        if result.status == "OK":
            return result
        if result.status == "NO" and result.code("EXPUNGEISSUED") is not None:
            self.rec.extra["expungeissued"] = self.rec.extra.get("expungeissued", 0) + 1
            return None
        raise ImapNo(command.split(" ")[0], result)

    async def op_fetch_flags(self) -> None:
        if self.model.exists == 0:
            return
        rng = self.window(self.load.window)
        result = await self.fetch(f"FETCH {rng} (UID FLAGS)")
        if result is None or self.group > 1:
            return  # shared mailbox: a message expunged elsewhere may be left out
        lo, hi = (int(x) for x in rng.split(":"))
        got = sum(1 for r in result.untagged if " FETCH " in r.text.upper())
        if got < hi - lo + 1:
            raise ProtocolMismatch(f"FETCH {rng} answered {got} messages")

    async def op_fetch_headers(self) -> None:
        if self.model.exists == 0:
            return
        await self.fetch(f"FETCH {self.window(self.load.window)} (UID RFC822.SIZE INTERNALDATE "
                         "BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)])")

    async def op_fetch_body(self) -> None:
        if self.model.exists == 0:
            return
        seq = self.rng.randint(1, self.model.exists)
        result = await self.fetch(f"FETCH {seq} (UID RFC822.SIZE BODY.PEEK[])")
        for resp in (result.untagged if result else ()):
            size = _SIZE.search(resp.text)
            if size and resp.literals and len(resp.literals[-1]) != int(size.group(1)):
                raise ProtocolMismatch(f"BODY[] of {seq} is {len(resp.literals[-1])} bytes, "
                                       f"RFC822.SIZE says {size.group(1)}")

    async def own_uid(self) -> int | None:
        uid = self.model.own_known(self.rng)
        if uid is None and self.model.exists:
            await self.op_fetch_flags()
            uid = self.model.own_known(self.rng)
        return uid

    async def op_store(self) -> None:
        uid = await self.own_uid()
        if uid is None:
            return
        want = not self.model.flagged.get(uid, "\\FLAGGED" in {f.upper() for f in self.model.flags.get(uid, ())})
        self.model.flagged.pop(uid, None)  # not checked until the server answered
        result = await self.client.command(f"UID STORE {uid} {'+' if want else '-'}FLAGS (\\Flagged)")
        self.model.flagged[uid] = want
        seen = fetches_of(result.untagged, uid)
        if seen and self.model.seq_of(uid) is not None:
            has = "\\FLAGGED" in {f.upper() for f in self.model.flags.get(uid, ())}
            if has != want:
                raise ProtocolMismatch(f"UID STORE {uid}: reply shows \\Flagged={has}")

    async def op_append(self) -> None:
        size = self.load.sizes.pick(self.rng)
        body = self.body if size == self.load.sizes.sizes[0] else make_message(size, self.rng)
        result = await self.client.command(f"APPEND {self.load.mailbox} (\\Seen)", literal=body)
        m = _APPENDUID.search(result.text)
        if m:  # RFC 4315 §3
            if int(m.group(1)) != self.model.uidvalidity:
                raise ProtocolMismatch(f"APPENDUID validity {m.group(1)} != {self.model.uidvalidity}")
            uid = int(m.group(2))
            if uid < self.model.uidnext:
                raise ProtocolMismatch(f"APPENDUID {uid} below UIDNEXT {self.model.uidnext} at SELECT")
            self.model.appended.add(uid)

    async def op_expunge(self) -> None:
        uid = await self.own_uid()
        if uid is None:
            return
        self.model.deleting.add(uid)
        await self.client.command(f"UID STORE {uid} +FLAGS.SILENT (\\Deleted)")
        await self.client.command("EXPUNGE")
        if self.model.seq_of(uid) is not None:
            raise ProtocolMismatch(f"UID {uid} is \\Deleted but still there after EXPUNGE")

    async def op_search(self) -> None:
        result = await self.client.command("UID SEARCH FLAGGED")
        for resp in result.untagged:
            m = _SEARCH.match(resp.text)
            if not m:
                continue
            for uid in (int(x) for x in m.group(1).split()):
                if self.model.flagged.get(uid) is False:
                    raise ProtocolMismatch(f"SEARCH FLAGGED found UID {uid}, which I unflagged")

    async def op_idle(self) -> None:
        if "IDLE" not in self.client.capabilities:
            raise ProtocolMismatch("server does not advertise IDLE")
        t0 = time.monotonic()
        await self.client.idle_start()
        t1 = time.monotonic()
        deadline = t1 + self.load.idle_time
        while (left := deadline - time.monotonic()) > 0:
            if await self.client.idle_wait(left) is None:
                break
        t2 = time.monotonic()
        await self.client.idle_done()
        # Counted as the server's part only: IDLE to "+", and DONE to the tagged OK.
        self.rec.record("idle", (t1 - t0) + (time.monotonic() - t2))


async def run_imap(load: ImapLoad, rec: Recorder) -> None:
    if not load.users:
        raise LoadError("IMAP load needs at least one user (--users FILE or --user NAME:PASS)")
    clients = [ImapUser(load, rec, i) for i in range(load.clients)]
    await asyncio.gather(*(c.run() for c in clients))
