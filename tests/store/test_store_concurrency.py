"""Several processes deliver, flag, expunge and read one mailbox at once: afterwards nothing is
lost, duplicated or re-numbered, and the index agrees with a rebuild from the maildir."""

from __future__ import annotations

import multiprocessing
import os
import random
import time

from pymail.store import Store
from pymail.store import uidlist as ul_mod

DELIVERERS = 3
PER_DELIVERER = 40
ADDRESS = "busy@example.org"


def _subject(raw: bytes) -> str:
    for line in raw.splitlines():
        if line.startswith(b"Subject: "):
            return line[9:].decode()
    return ""


def deliverer(mail_root: str, worker: int) -> dict[int, str]:
    acct = Store(mail_root).account(ADDRESS)
    got = {}
    for i in range(PER_DELIVERER):
        subject = f"d{worker}-{i}"
        flags = ["\\Seen"] if i % 5 == 0 else []
        r = acct.deliver(f"From: x@y.z\nSubject: {subject}\n\nbody {i}\n".encode(), flags=flags)
        got[r.uid] = subject
    return got


def flagger(mail_root: str, seconds: float) -> int:
    box = Store(mail_root).account(ADDRESS).mailbox("INBOX")
    rng = random.Random(os.getpid())
    changes = 0
    start = time.monotonic()
    # run for `seconds`, longer (up to 60 s) if no message had arrived yet on a slow machine
    while time.monotonic() < start + seconds or (changes == 0 and time.monotonic() < start + 60):
        box.sync()
        uids = box.uids()
        if uids:
            pick = rng.sample(uids, min(5, len(uids)))
            flag = rng.choice(["\\Flagged", "\\Answered", "Important", "$Label2"])
            updated, _ = box.store_flags(pick, [flag], rng.choice(["add", "remove"]))
            changes += len(updated)
        time.sleep(0.005)
    return changes


def expunger(mail_root: str, seconds: float) -> list[int]:
    """Expunge the messages of deliverer 0 whose number is divisible by 3."""
    box = Store(mail_root).account(ADDRESS).mailbox("INBOX")
    gone = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        box.sync()
        doomed = []
        for uid in box.uids():
            subject = box.envelope(uid)[1].decode()   # only this worker expunges
            w, _, i = subject[1:].partition("-")
            if w == "0" and int(i) % 3 == 0:
                doomed.append(uid)
        if doomed:
            box.store_flags(doomed, ["\\Deleted"], "add")
            gone += box.expunge(doomed)
        time.sleep(0.01)
    return gone


def reader(mail_root: str, seconds: float) -> list[int]:
    box = Store(mail_root).account(ADDRESS).mailbox("INBOX")
    recent = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        box.sync()
        recs = box.records()
        assert [r.uid for r in recs] == sorted({r.uid for r in recs})
        assert box.count() >= 0
        recent += box.claim_recent()
        time.sleep(0.005)
    return recent


def test_many_processes_one_mailbox(tmp_path):
    mail_root = str(tmp_path / "mail")
    Store(mail_root).account(ADDRESS).ensure()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(DELIVERERS + 4) as pool:
        deliveries = [pool.apply_async(deliverer, (mail_root, w)) for w in range(DELIVERERS)]
        flaggers = [pool.apply_async(flagger, (mail_root, 4.0)) for _ in range(1)]
        expungers = [pool.apply_async(expunger, (mail_root, 5.0))]
        readers = [pool.apply_async(reader, (mail_root, 4.0)) for _ in range(2)]
        delivered: dict[int, str] = {}
        for d in deliveries:
            got = d.get(timeout=90)
            assert not set(got) & set(delivered), "a UID was handed out twice"
            delivered.update(got)
        changes = sum(f.get(timeout=90) for f in flaggers)
        expunged = [u for e in expungers for u in e.get(timeout=90)]
        recent = [u for r in readers for u in r.get(timeout=90)]

    assert len(delivered) == DELIVERERS * PER_DELIVERER
    assert changes > 0
    assert len(expunged) == len(set(expunged))
    assert len(recent) == len(set(recent)), "a message was \\Recent in two sessions"

    acct = Store(mail_root).account(ADDRESS)
    box = acct.mailbox("INBOX")
    box.sync()
    # a final pass of the expunger rule, in case deliveries ended after it stopped
    late = [u for u in box.uids() if delivered[u].startswith("d0-")
            and int(delivered[u].split("-")[1]) % 3 == 0]
    box.store_flags(late, ["\\Deleted"], "add")
    expunged += box.expunge(late)
    should_be_gone = {u for u, s in delivered.items()
                      if s.startswith("d0-") and int(s.split("-")[1]) % 3 == 0}
    assert set(expunged) == should_be_gone

    # nothing lost, nothing duplicated, nothing re-numbered
    remaining = set(delivered) - should_be_gone
    assert set(box.uids()) == remaining
    for uid in remaining:
        with box.open_message(uid) as f:
            assert _subject(f.read()) == delivered[uid]
    files = os.listdir(os.path.join(acct.root, "new")) + os.listdir(os.path.join(acct.root, "cur"))
    assert len(files) == len(remaining)
    assert os.listdir(os.path.join(acct.root, "tmp")) == []
    ul = ul_mod.read(os.path.join(acct.root, "dovecot-uidlist"))
    listed = {e.uid for e in ul.entries}
    assert remaining <= listed and listed - remaining <= should_be_gone   # stale records only
    assert ul.effective_next_uid() == max(delivered) + 1
    assert box.count() == len(remaining)
    assert box.unseen_count() == sum(1 for r in box.records() if "\\Seen" not in r.flags)
    assert acct.quota()[0] == len(remaining)

    # the index agrees with one rebuilt from the maildir alone
    flags_before = {r.uid: r.flags for r in box.records()}
    box.rebuild_index()
    assert {r.uid: r.flags for r in box.records()} == flags_before
