"""Many IDLE sessions, the server's memory while they wait, and delivery-to-IDLE latency.

N clients log in, SELECT INBOX and enter IDLE (RFC 2177). With an SMTP port, messages are then
sent to the idling users one at a time per user; the latency of a delivery is the time from the
end-of-DATA 250 to the untagged ``* n EXISTS`` each idling session of that user receives. The
server's memory is sampled (RSS and PSS summed over the process and its children) before the
sessions open, once they all idle, and at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymail_loadtest.common import (Bounds, LoadError, ProtocolMismatch, Target, User,
                                    make_message)
from pymail_loadtest.imap_client import ImapClient
from pymail_loadtest.smtp_client import SmtpClient
from pymail_loadtest.stats import Recorder, percentile


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def memory_of(pid: int) -> dict[str, int]:
    """RSS and PSS in KiB summed over ``pid`` and its descendants (Dovecot forks per session)."""
    rss = pss = count = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
            count += 1
        except OSError:
            continue
    return {"rss_kib": rss, "pss_kib": pss, "processes": count}


@dataclass
class IdleLoad:
    target: Target
    connections: int
    users: list[User]
    bounds: Bounds  # bounds the hold time; count = deliveries
    hold: float = 5.0
    connect_concurrency: int = 100
    pid: int | None = None
    smtp: Target | None = None
    deliveries: int = 0
    delivery_concurrency: int = 4
    notify_timeout: float = 10.0
    sender: str = "loadtest@example.test"
    seed: int = 1


@dataclass
class Watcher:
    user: User
    client: ImapClient | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    exists_at: list[tuple[int, float]] = field(default_factory=list)  # (EXISTS n, time seen)
    alive: bool = False


async def run_idle(load: IdleLoad, rec: Recorder) -> None:
    if not load.users:
        raise LoadError("IDLE load needs at least one user (--users FILE or --user NAME:PASS)")
    mem: dict[str, object] = {}
    if load.pid is not None:
        if not Path(f"/proc/{load.pid}").exists():
            raise LoadError(f"no process {load.pid} to measure")
        mem["before"] = memory_of(load.pid)
    watchers = [Watcher(load.users[i % len(load.users)]) for i in range(load.connections)]
    gate = asyncio.Semaphore(load.connect_concurrency)
    opened = asyncio.Event()
    pending = [len(watchers)]

    async def watch(w: Watcher) -> None:
        try:
            async with gate:
                w.client = ImapClient(load.target)
                t0 = time.monotonic()
                await w.client.connect()
                await w.client.login(w.user.name, w.user.password)
                await w.client.select("INBOX")
                await w.client.idle_start()
                rec.record("open_idle", time.monotonic() - t0)
                w.alive = True
        except (ProtocolMismatch, OSError, asyncio.TimeoutError, ConnectionError,
                asyncio.IncompleteReadError) as exc:
            rec.error("open_idle", f"{type(exc).__name__}: {exc}")
            if w.client:
                await w.client.close()
            return
        finally:
            pending[0] -= 1
            rec.extra["progress"] = f"idling={sum(x.alive for x in watchers)}"
            if pending[0] == 0:
                opened.set()
        try:
            while True:
                resp = await w.client.idle_wait(3600)
                if resp is None:
                    continue
                if resp.text.upper().endswith(" EXISTS"):
                    w.exists_at.append((w.client.box.exists, time.monotonic()))
                    w.changed.set()
        except (ProtocolMismatch, OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
            w.alive = False
            rec.error("idle", f"{type(exc).__name__}: {exc}")

    tasks = [asyncio.create_task(watch(w)) for w in watchers]
    try:
        await asyncio.wait_for(opened.wait(), load.bounds.remaining() or 0.001)
    except asyncio.TimeoutError:
        rec.error("open_idle", f"only {sum(w.alive for w in watchers)} of {len(watchers)} sessions idle "
                  "before the time ran out")
    alive = sum(w.alive for w in watchers)
    rec.extra["connections"] = {"wanted": load.connections, "idling": alive}
    if load.pid is not None:
        await asyncio.sleep(min(1.0, load.bounds.remaining()))  # let the server settle
        mem["idling"] = memory_of(load.pid)
    if load.smtp is not None and load.deliveries and alive:
        await deliver_and_time(load, rec, watchers)
    end = time.monotonic() + min(load.hold, load.bounds.remaining())
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(left, 1.0))
    if load.pid is not None:
        mem["end"] = memory_of(load.pid)
        before, idling = mem["before"]["rss_kib"], mem["idling"]["rss_kib"]
        mem["per_connection_kib"] = round((idling - before) / alive, 2) if alive else None
        mem["per_connection_pss_kib"] = (round((mem["idling"]["pss_kib"] - mem["before"]["pss_kib"]) / alive, 2)
                                         if alive else None)
        rec.extra["rss"] = mem
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(w.client.close() for w in watchers if w.client), return_exceptions=True)


async def deliver_and_time(load: IdleLoad, rec: Recorder, watchers: list[Watcher]) -> None:
    by_user: dict[str, list[Watcher]] = {}
    for w in watchers:
        if w.alive:
            by_user.setdefault(w.user.name, []).append(w)
    names = sorted(by_user)
    rng = random.Random(load.seed)
    body = make_message(2048, rng, load.sender)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for i in range(load.deliveries):
        queue.put_nowait(names[i % len(names)])
    locks = {n: asyncio.Lock() for n in names}
    latencies: list[float] = []
    early = [0]

    async def sender() -> None:
        client = SmtpClient(load.smtp)
        try:
            await client.connect()
            while not queue.empty() and load.bounds.remaining() > 0:
                name = queue.get_nowait()
                async with locks[name]:  # one message in flight per user: EXISTS maps to it
                    group = [w for w in by_user[name] if w.alive]
                    base = {id(w): w.client.box.exists for w in group}
                    for w in group:
                        w.changed.clear()
                    t0 = time.monotonic()
                    await client.send(load.sender, [name], body)
                    t250 = time.monotonic()
                    rec.record("smtp_accept", t250 - t0)
                    deadline = t250 + load.notify_timeout
                    for w in group:
                        while w.alive and w.client.box.exists <= base[id(w)]:
                            left = deadline - time.monotonic()
                            if left <= 0:
                                break
                            try:
                                await asyncio.wait_for(w.changed.wait(), left)
                            except asyncio.TimeoutError:
                                break
                            w.changed.clear()
                        seen = [t for n, t in w.exists_at if n > base[id(w)]]
                        if not seen:
                            rec.error("notify", f"no EXISTS for {name} within {load.notify_timeout}s")
                            continue
                        if seen[0] < t250:
                            early[0] += 1
                        latencies.append(max(0.0, seen[0] - t250))
                        rec.record("notify", max(0.0, seen[0] - t250))
            await client.quit()
        except (ProtocolMismatch, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            rec.error("smtp", f"{type(exc).__name__}: {exc}")
            await client.close()

    await asyncio.gather(*(sender() for _ in range(max(1, min(load.delivery_concurrency, len(names))))))
    latencies.sort()
    rec.extra["delivery"] = {
        "notified": len(latencies),
        "before_250": early[0],
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
    }


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)
