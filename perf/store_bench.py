"""Store benchmark: a 100,000-message maildir, its first index build and warm scans.

    .venv/bin/python perf/store_bench.py [DIR] [--messages N] [--keep]

Builds DIR/bench@example.org's INBOX (default DIR: perf/data/) the way a Dovecot maildir
looks when pymail takes it over: message files in cur/ and new/ with ``S=``/``W=`` sizes and
flags in their names, a ``dovecot-uidlist`` and ``dovecot-keywords``.  Then it times

1. cold index build: open the mailbox with no index (list cur/ and new/, read the uidlist,
   insert every record; no file is looked at when its name carries S= and W=);
2. cold parse-cache fill: parse every message once (ENVELOPE, BODYSTRUCTURE, header);
3. warm UID+FLAGS scan: ``Mailbox.records()`` over all messages (what SELECT + FETCH 1:*
   (UID FLAGS) needs);
4. warm header-field scan: ``header_fields_many(all, [From, Subject, Date])`` from the cache;
5. warm ``sync()`` when nothing changed;
and prints the index file's size.  Counts how many times message files were read during the
cold build (target: each exactly once).
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pymail.store import Store  # noqa: E402
from pymail.store import mailbox as mailbox_mod  # noqa: E402
from pymail.store import sync as sync_mod  # noqa: E402

ADDRESS = "bench@example.org"
WORDS = ("meeting report budget quarterly invoice project deadline update review draft "
         "team lunch release notes server backup security patch weekend travel").split()
NAMES = ["Alice Martin", "Bob Chen", "Carol Diaz", "Dan Novak", "Eve Okafor", "Frank Ito"]


def make_message(i: int, rng: random.Random) -> bytes:
    sender = rng.choice(NAMES)
    local = sender.split()[0].lower()
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7)))
    day = 1 + i % 28
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12)))
             for _ in range(rng.randint(3, 30))]
    head = (f"Return-Path: <{local}@example.net>\n"
            f"Received: from mx.example.net (mx.example.net [192.0.2.{i % 250}])\n"
            f"\tby mail.example.org with ESMTPS id {i:08x}; Mon, {day} Nov 2026 10:00:00 +0000\n"
            f"From: {sender} <{local}@example.net>\n"
            f"To: Bench User <{ADDRESS}>\n"
            f"Subject: {subject} #{i}\n"
            f"Date: Mon, {day} Nov 2026 10:{i % 60:02d}:00 +0000\n"
            f"Message-ID: <{i}.{rng.getrandbits(32):x}@example.net>\n"
            f"MIME-Version: 1.0\n")
    body = "\n".join(lines) + "\n"
    if i % 10 == 0:
        att = "QUJD" * rng.randint(50, 400)
        wrapped = "\n".join(att[k:k + 76] for k in range(0, len(att), 76))
        return (head + 'Content-Type: multipart/mixed; boundary="b1"\n\n'
                "--b1\nContent-Type: text/plain; charset=utf-8\n\n" + body +
                '--b1\nContent-Type: application/pdf; name="r.pdf"\n'
                'Content-Disposition: attachment; filename="r.pdf"\n'
                "Content-Transfer-Encoding: base64\n\n" + wrapped + "\n--b1--\n").encode()
    return (head + "Content-Type: text/plain; charset=utf-8\n\n" + body).encode()


def build_maildir(root: str, n: int) -> None:
    rng = random.Random(42)
    for sub in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    uidvalidity = 1_700_000_000
    t0 = uidvalidity
    uidlist = [f"3 V{uidvalidity} N{n + 1} G{'0' * 31}1\n"]
    for i in range(n):
        raw = make_message(i, rng)
        size = len(raw)
        vsize = size + raw.count(b"\n")
        base = f"{t0 + i // 10}.M{(i % 10) * 1000}P4242.bench,S={size},W={vsize}"
        if i >= n - n // 100:                     # the newest 1 % not yet seen: new/
            path = os.path.join(root, "new", base)
        else:
            letters = ""
            r = rng.random()
            if r < 0.05:
                letters += "F"
            if r < 0.3:
                letters += "R"
            if r < 0.8:
                letters += "S"
            if rng.random() < 0.1:
                letters += "a"
            path = os.path.join(root, "cur", f"{base}:2,{''.join(sorted(letters))}")
        with open(path, "wb") as f:
            f.write(raw)
        mtime = t0 + i * 60
        os.utime(path, (mtime, mtime))
        uidlist.append(f"{i + 1} :{base}\n")
    with open(os.path.join(root, "dovecot-uidlist"), "w") as f:
        f.writelines(uidlist)
    with open(os.path.join(root, "dovecot-keywords"), "w") as f:
        f.write("0 $Important\n")


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", nargs="?", default=os.path.join(os.path.dirname(__file__), "data"))
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--keep", action="store_true", help="reuse an existing maildir in DIR")
    args = ap.parse_args(argv)

    mail_root = os.path.abspath(args.dir)
    store = Store(mail_root, fsync=False)
    acct = store.account(ADDRESS)
    root = acct.root
    if not args.keep or not os.path.isdir(os.path.join(root, "cur")):
        shutil.rmtree(os.path.join(mail_root, "example.org"), ignore_errors=True)
        t_gen, _ = timed(lambda: build_maildir(root, args.messages))
        print(f"generated {args.messages} messages in {t_gen:.1f} s", flush=True)
    for suffix in ("", "-wal", "-shm"):
        p = os.path.join(root, "pymail-index.sqlite" + suffix)
        if os.path.exists(p):
            os.unlink(p)
    for p in ("pymail-modseq",):
        if os.path.exists(os.path.join(root, p)):
            os.unlink(os.path.join(root, p))

    reads = {"count": 0, "uids": set()}
    original_open = mailbox_mod.Mailbox.open_message

    def counting_open(self, uid):
        reads["count"] += 1
        reads["uids"].add(uid)
        return original_open(self, uid)

    mailbox_mod.Mailbox.open_message = counting_open
    vsize_calls = {"n": 0}
    original_vsize = sync_mod._count_vsize

    def counting_vsize(path):
        vsize_calls["n"] += 1
        return original_vsize(path)

    sync_mod._count_vsize = counting_vsize

    t_build, box = timed(lambda: acct.mailbox("INBOX"))
    n = box.count()
    t_parse, parsed = timed(box.cache_all)
    mailbox_mod.Mailbox.open_message = original_open
    sync_mod._count_vsize = original_vsize
    reads_during_build = reads["count"] + vsize_calls["n"]
    box.close()

    box = acct.mailbox("INBOX")             # a new session: warm index
    time.sleep(sync_mod.DIRTY_WINDOW_NS / 1e9 + 0.1)   # let the directory stamps settle
    box.sync()
    t_sync, _ = timed(box.sync)
    box.close()
    mailbox_mod._shared.clear()                      # as in a new process: no view to share
    t_flags_first, box = timed(lambda: acct.mailbox("INBOX"))   # opening reads every row
    t_flags, recs = timed(box.records)               # the session's view, revalidated
    second = acct.mailbox("INBOX")                   # another session in this process
    t_flags_shared, _ = timed(second.records)
    second.close()
    other = acct.mailbox("INBOX")                    # another session changes 100 messages
    toggle = "remove" if "\\Flagged" in recs[0].flags else "add"   # a change on every run
    other.store_flags([r.uid for r in recs[:100]], ["\\Flagged"], toggle)
    other.close()
    box.sync()
    t_flags2, recs = timed(box.records)
    t_status, status = timed(lambda: (box.count(), box.unseen_count(), box.uidnext,
                                      box.highest_modseq))
    uids = [r.uid for r in recs]
    t_headers, headers = timed(lambda: box.header_fields_many(uids, ["From", "Subject", "Date"]))
    t_env, _ = timed(lambda: [box.envelope(u) for u in uids[:10_000]])
    if os.path.exists(os.path.join(root, "maildirsize")):
        os.unlink(os.path.join(root, "maildirsize"))
    t_quota, used = timed(acct.quota)                 # recalculated from the file names
    assert used[0] == n
    t_deliver, delivered = timed(lambda: acct.deliver(make_message(n + 1, random.Random(1))))
    t_sync_new, res = timed(box.sync)
    assert res.added == [delivered.uid]
    other = acct.mailbox("INBOX")
    target = recs[n // 2]
    other.store_flags([target.uid], ["\\Answered"],
                      "remove" if "\\Answered" in target.flags else "add")
    other.close()
    t_sync_flag, res = timed(box.sync)
    assert res.flag_changes == [target.uid]
    box.store_flags([delivered.uid], ["\\Deleted"], "add")
    t_expunge, gone = timed(lambda: box.expunge([delivered.uid]))
    assert gone == [delivered.uid]
    time.sleep(sync_mod.DIRTY_WINDOW_NS / 1e9 + 0.1)   # outside the mtime "dirty" window
    box.sync()
    later = acct.deliver(make_message(n + 2, random.Random(2)))
    t_sync_quiet, res = timed(box.sync)
    assert res.added == [later.uid]
    box.store_flags([later.uid], ["\\Deleted"], "add")
    box.expunge([later.uid])
    box.index.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    index_bytes = sum(os.path.getsize(os.path.join(root, f)) for f in os.listdir(root)
                      if f.startswith("pymail-index.sqlite"))
    uidlist_bytes = os.path.getsize(os.path.join(root, "dovecot-uidlist"))

    rows = [
        ("messages in INBOX", f"{n}"),
        ("cold index build (list, uidlist, insert; no stat)", f"{t_build:.2f} s"),
        ("cold parse-cache fill (ENVELOPE/BODYSTRUCTURE/header)", f"{t_parse:.2f} s"),
        ("message files read during cold build", f"{reads_during_build} "
         f"({len(reads['uids'])} distinct, {parsed} parsed)"),
        ("warm sync() with nothing changed", f"{t_sync * 1000:.1f} ms"),
        ("open + UID+FLAGS, a new process's first session (SQLite)", f"{t_flags_first:.3f} s"),
        ("warm UID+FLAGS scan (records(), all)", f"{t_flags * 1000:.2f} ms"),
        ("UID+FLAGS scan, first in a 2nd session, same process", f"{t_flags_shared * 1000:.2f} ms"),
        ("warm UID+FLAGS scan after 100 flag changes", f"{t_flags2 * 1000:.2f} ms"),
        ("warm STATUS counts (count/unseen/uidnext/modseq)", f"{t_status * 1000:.2f} ms"),
        ("warm header-field scan (From/Subject/Date, all)", f"{t_headers:.2f} s"),
        ("warm ENVELOPE fetch, 10,000 messages", f"{t_env:.2f} s"),
        ("quota recalculation from file names (maildirsize)", f"{t_quota:.2f} s"),
        ("deliver one message (no fsync) into that INBOX", f"{t_deliver * 1000:.1f} ms"),
        ("sync() seeing that delivery (< 1 s after a cur/ change)", f"{t_sync_new * 1000:.1f} ms"),
        ("sync() seeing a delivery, cur/ quiet for > 1 s", f"{t_sync_quiet * 1000:.1f} ms"),
        ("sync() seeing one flag change by another session", f"{t_sync_flag * 1000:.1f} ms"),
        ("expunge one message", f"{t_expunge * 1000:.1f} ms"),
        ("index size on disk", f"{index_bytes / 1e6:.1f} MB"),
        ("dovecot-uidlist size", f"{uidlist_bytes / 1e6:.1f} MB"),
    ]
    assert len(headers) == n and status[0] == n
    width = max(len(a) for a, _ in rows)
    print(f"{'measure'.ljust(width)} | result")
    print(f"{'-' * width}-|-------")
    for a, b in rows:
        print(f"{a.ljust(width)} | {b}")
    print(f"\nmachine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"Python {platform.python_version()}, SQLite "
          f"{__import__('sqlite3').sqlite_version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
