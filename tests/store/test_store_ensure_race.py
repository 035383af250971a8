"""A new user's first logins arrive at once (Thunderbird opens several connections, and behind
a load balancer they land on different workers or hosts): ``Account.ensure()`` run by several
processes, each with several threads, on one new account creates every folder once, with its
subscription and special use, and raises nowhere."""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback

from pymail.store import Store
from pymail.store.account import SPECIAL_USE

ROUNDS = 6
PROCESSES = 3
THREADS = 3


def ensure_together(mail_root: str, starts: list[float]) -> list[str]:
    """For each round, at its start time, THREADS threads ensure() the round's new account.
    → the tracebacks (none expected)."""
    errors: list[str] = []
    for round_, start in enumerate(starts):
        address = f"new{round_}@example.org"

        def one():
            try:
                Store(mail_root, fsync=False).account(address).ensure()
            except Exception:
                errors.append(traceback.format_exc())

        time.sleep(max(0.0, start - time.time()))
        threads = [threading.Thread(target=one) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    return errors


def test_first_logins_everywhere_at_once_make_one_whole_account(tmp_path):
    mail_root = str(tmp_path / "mail")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PROCESSES) as pool:
        pool.map(time.sleep, [0.1] * PROCESSES)          # every worker started
        first = time.time() + 0.5
        starts = [first + 0.3 * n for n in range(ROUNDS)]
        results = [pool.apply_async(ensure_together, (mail_root, starts))
                   for _ in range(PROCESSES)]
        errors = [e for r in results for e in r.get(timeout=90)]
    assert errors == []
    for round_ in range(ROUNDS):
        acct = Store(mail_root, fsync=False).account(f"new{round_}@example.org")
        infos = {i.name: i for i in acct.list_mailboxes()}
        assert sorted(infos) == sorted(["INBOX", *SPECIAL_USE])
        assert all(i.subscribed for i in infos.values())
        assert {n: i.special_use for n, i in infos.items() if n != "INBOX"} == SPECIAL_USE
        for name in infos:
            with acct.mailbox(name) as box:
                assert box.uidvalidity > 0 and box.count() == 0
