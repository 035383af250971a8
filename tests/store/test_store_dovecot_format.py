"""Compatibility with maildirs in Dovecot's format, written here from Dovecot's documentation
(doc.dovecot.org "Maildir mailbox format": dovecot-uidlist v3 header/records, dovecot-keywords,
maildir file name flags) and maildir-uidlist.c's reading rules."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings, strategies as st

from pymail.store import Store, StoreError
from pymail.store import uidlist as ul_mod
from pymail.store.dotlock import DotLock

UIDVALIDITY = 1275660208
MAILBOX_GUID = "3085f01b7f11094c501100008c4a11c1"
MSG = b"From: a@example.com\nSubject: old\n\nhello\n"


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.fixture
def dovecot_maildir(tmp_path):
    """A user maildir as Dovecot 2.3 leaves it (plus one file Dovecot has not seen yet)."""
    root = tmp_path / "mail" / "example.org" / "carol" / "Maildir"
    for sub in ("tmp", "new", "cur"):
        os.makedirs(root / sub)
    _write(str(root / "dovecot-uidlist"), (
        f"3 V{UIDVALIDITY} N25022 G{MAILBOX_GUID}\n"
        "25006 :1276528487.M364837P9451.kurkku,S=40,W=44\n"
        "25017 W44 :1276533073.M242911P3632.kurkku\n"
        "25020 P0000abcd G5c1f0f0d2f7d4f8a9b0c1d2e3f405162 :1276533080.M1P77.kurkku,S=40,W=44\n"
    ).encode())
    _write(str(root / "dovecot-keywords"), b"0 $Forwarded\n1 Work\n3 $Junk\n")
    _write(str(root / "cur" / "1276528487.M364837P9451.kurkku,S=40,W=44:2,RSa"), MSG)
    _write(str(root / "cur" / "1276533073.M242911P3632.kurkku:2,FSbd"), MSG)
    _write(str(root / "new" / "1276533080.M1P77.kurkku,S=40,W=44"), MSG)
    _write(str(root / "new" / "1276533090.M5P78.kurkku,S=40,W=44"), MSG)   # not in uidlist
    os.utime(root / "cur" / "1276528487.M364837P9451.kurkku,S=40,W=44:2,RSa", (1276528487, 1276528487))
    _write(str(root / ".Sent" / "maildirfolder"), b"")
    for sub in ("tmp", "new", "cur"):
        os.makedirs(root / ".Sent" / sub)
    _write(str(root / "subscriptions"), b"INBOX\nSent\n")
    return tmp_path / "mail", root


def test_dovecot_maildir_served_as_is(dovecot_maildir):
    mail_root, root = dovecot_maildir
    acct = Store(mail_root, fsync=False).account("carol@example.org")
    box = acct.mailbox("INBOX")
    assert box.uidvalidity == UIDVALIDITY
    assert box.mailbox_guid == MAILBOX_GUID
    recs = {r.uid: r for r in box.records()}
    # the file Dovecot never saw gets the next UID from the header's N
    assert sorted(recs) == [25006, 25017, 25020, 25022]
    assert recs[25006].flags == frozenset({"\\Answered", "\\Seen", "$Forwarded"})
    # "d" = keyword 3; index 2 ("c") is unused
    assert recs[25017].flags == frozenset({"\\Flagged", "\\Seen", "Work", "$Junk"})
    assert recs[25020].flags == frozenset()
    assert box.internal_dates([25006])[25006] == pytest.approx(1276528487)
    assert recs[25006].size == 44 and recs[25017].size == 44   # W= in name / W field
    assert recs[25020].guid == "5c1f0f0d2f7d4f8a9b0c1d2e3f405162"   # the G field
    assert recs[25006].guid == "1276528487.M364837P9451.kurkku,S=40,W=44"
    assert box.uidnext == 25023
    assert box.pop3_uidl(25020, "%08Xu%08Xv") == "0000abcd"           # the P field wins
    assert box.pop3_uidl(25006, "%08Xu%08Xv") == f"{25006:08x}{UIDVALIDITY:08x}"
    assert box.pop3_uidls() == {u: box.pop3_uidl(u) for u in recs}
    assert box.pop3_uidls("%f")[25017] == "1276533073.M242911P3632.kurkku"
    # CONDSTORE: modseqs start far above anything Dovecot (counting from 1) showed
    assert box.highest_modseq > 10**15
    assert all(r.modseq > 10**15 for r in recs.values())
    infos = {i.name: i for i in acct.list_mailboxes()}
    assert infos["Sent"].subscribed and infos["INBOX"].subscribed


def test_uidlist_written_back_in_dovecot_format(dovecot_maildir):
    mail_root, root = dovecot_maildir
    acct = Store(mail_root, fsync=False).account("carol@example.org")
    box = acct.mailbox("INBOX")
    box.store_flags([25020], ["Work", "NewKw"], "add")
    r = acct.deliver(MSG)
    assert r.uid == 25023
    lines = (root / "dovecot-uidlist").read_text().splitlines()
    head = lines[0].split()
    assert head == ["3", f"V{UIDVALIDITY}", "N25022", f"G{MAILBOX_GUID}"]  # header untouched
    assert lines[1:4] == [
        "25006 :1276528487.M364837P9451.kurkku,S=40,W=44",
        "25017 W44 :1276533073.M242911P3632.kurkku",
        "25020 P0000abcd G5c1f0f0d2f7d4f8a9b0c1d2e3f405162 :1276533080.M1P77.kurkku,S=40,W=44"]
    assert lines[4] == "25022 :1276533090.M5P78.kurkku,S=40,W=44"
    assert lines[5].startswith("25023 :") and ":2," not in lines[5]
    kws = (root / "dovecot-keywords").read_text().splitlines()
    assert kws == ["0 $Forwarded", "1 Work", "2 NewKw", "3 $Junk"]
    names = os.listdir(root / "cur")
    assert any(n.startswith("1276533080.M1P77.kurkku,S=40,W=44:2,") and n.endswith(",bc")
               for n in names)
    # one expunge of five leaves the record (stale records are dropped past 25 %, as Dovecot)
    box.store_flags([25006], ["\\Deleted"], "add")
    assert box.expunge() == [25006]
    lines = (root / "dovecot-uidlist").read_text().splitlines()
    assert lines[1].startswith("25006 ") and len(lines) == 6
    # a second one passes 25 %: the file is rewritten; N never goes down, V and G stay
    box.store_flags([25017], ["\\Deleted"], "add")
    assert box.expunge() == [25017]
    lines = (root / "dovecot-uidlist").read_text().splitlines()
    assert lines[0].split()[:2] == ["3", f"V{UIDVALIDITY}"]
    assert lines[0].split()[2] == "N25024"
    assert lines[0].split()[3] == f"G{MAILBOX_GUID}"
    assert not any(line.startswith(("25006 ", "25017 ")) for line in lines)
    parsed = ul_mod.parse((root / "dovecot-uidlist").read_bytes())
    assert [e.uid for e in parsed.entries] == [25020, 25022, 25023]


def _maildir_with(tmp_path, user: str, uidlist: bytes, files: list[str]):
    """A user's maildir holding ``files`` in cur/ and the given ``dovecot-uidlist``."""
    root = tmp_path / "mail" / "example.org" / user / "Maildir"
    for sub in ("tmp", "new", "cur"):
        os.makedirs(root / sub)
    _write(str(root / "dovecot-uidlist"), uidlist)
    for name in files:
        _write(str(root / "cur" / name), MSG)
    return root


def test_uidlist_version1_read_and_upgraded(tmp_path):
    root = _maildir_with(tmp_path, "dan", b"1 1111 7\n3 1000.M1P1.h:2,S\n5 1001.M1P1.h\n",
                         ["1000.M1P1.h:2,S", "1001.M1P1.h:2,"])
    acct = Store(tmp_path / "mail", fsync=False).account("dan@example.org")
    box = acct.mailbox("INBOX")
    assert [r.uid for r in box.records()] == [3, 5]
    assert box.uidvalidity == 1111 and box.uidnext == 7
    assert acct.deliver(MSG).uid == 7
    lines = (root / "dovecot-uidlist").read_text().splitlines()
    assert lines[0].split()[:3] == ["3", "V1111", "N7"]      # upgraded to version 3
    assert lines[-1].startswith("7 :")
    assert ul_mod.read(str(root / "dovecot-uidlist")).effective_next_uid() == 8


def test_version1_uidlist_numbers_unknown_files_on_first_open(tmp_path):
    # two files the uidlist lacks, listed out of delivery order: numbered in bulk, in order
    root = _maildir_with(tmp_path, "eve", b"1 1111 7\n3 1000.M1P1.h:2,S\n",
                         ["1000.M1P1.h:2,S", "1002.M5P1.h:2,", "1001.M9P1.h:2,"])
    box = Store(tmp_path / "mail", fsync=False).account("eve@example.org").mailbox("INBOX")
    assert [(r.uid, r.guid) for r in box.records()] == [
        (3, "1000.M1P1.h"), (7, "1001.M9P1.h"), (8, "1002.M5P1.h")]
    ul = ul_mod.read(str(root / "dovecot-uidlist"))
    assert ul.version == 3 and [(e.uid, e.base) for e in ul.entries] == [
        (3, "1000.M1P1.h"), (7, "1001.M9P1.h"), (8, "1002.M5P1.h")]
    assert box.uidnext == 9


def test_partial_last_line_ignored_and_repaired(account):
    account.deliver(MSG)
    path = os.path.join(account.root, "dovecot-uidlist")
    with open(path, "ab") as f:
        f.write(b"2 :half-written")          # a writer crashed mid-line
    assert ul_mod.read(path).effective_next_uid() == 2
    r = account.deliver(MSG)
    assert r.uid == 2
    lines = open(path).read().splitlines()
    assert len(lines) == 3 and lines[2].startswith("2 :") and "half" not in lines[2]


def test_corrupt_uidlist_is_an_error_not_a_crash(account):
    path = os.path.join(account.root, "dovecot-uidlist")
    with open(path, "wb") as f:
        f.write(b"garbage\n")
    with pytest.raises(StoreError) as e:
        account.mailbox("INBOX")
    assert e.value.code == "CORRUPT"


def test_index_loss_keeps_uids_and_raises_modseq(dovecot_maildir, tmp_path):
    mail_root, root = dovecot_maildir
    store = Store(mail_root, fsync=False)
    box = store.account("carol@example.org").mailbox("INBOX")
    before = {r.uid: r.flags for r in box.records()}
    box.store_flags([25006], ["\\Flagged"], "add")
    top = box.highest_modseq
    box.close()
    for suffix in ("", "-wal", "-shm"):
        p = root / ("pymail-index.sqlite" + suffix)
        if p.exists():
            p.unlink()
    box = store.account("carol@example.org").mailbox("INBOX")
    assert {r.uid for r in box.records()} == set(before)
    assert box.uidvalidity == UIDVALIDITY
    assert box.highest_modseq > top
    assert "\\Flagged" in box.record(25006).flags
    # rebuild_index gives the same answer and again a higher modseq
    top = box.highest_modseq
    box.rebuild_index()
    assert {r.uid for r in box.records()} == set(before)
    assert box.highest_modseq > top


def test_modseq_floor_survives_clock_going_back(account, monkeypatch):
    account.deliver(MSG)
    box = account.mailbox("INBOX")
    top = box.highest_modseq
    box.close()
    monkeypatch.setattr(time, "time_ns", lambda: 1_000_000_000)    # clock far in the past
    box = account.mailbox("INBOX")
    box.rebuild_index()
    assert box.highest_modseq > top


def test_index_root_keeps_index_out_of_maildir(tmp_path):
    store = Store(tmp_path / "mail", index_root=tmp_path / "idx", fsync=False)
    acct = store.account("eve@example.org")
    acct.ensure()
    acct.deliver(MSG, mailbox="Sent")
    assert acct.mailbox("Sent").count() == 1
    assert acct.mailbox("INBOX").count() == 0
    assert os.path.exists(tmp_path / "idx" / "example.org" / "eve" / ".Sent" / "pymail-index.sqlite")
    assert os.path.exists(tmp_path / "idx" / "example.org" / "eve" / "INBOX" / "pymail-index.sqlite")
    assert not os.path.exists(os.path.join(acct.root, "pymail-index.sqlite"))


def test_stale_dotlock_is_broken(account):
    lock = os.path.join(account.root, "dovecot-uidlist.lock")
    with open(lock, "w") as f:
        f.write("999999:otherhost")
    old = time.time() - 200
    os.utime(lock, (old, old))
    assert account.deliver(MSG).uid == 1
    assert not os.path.exists(lock)


def test_fresh_dotlock_of_another_host_is_respected(account):
    path = os.path.join(account.root, "dovecot-uidlist")
    with open(path + ".lock", "w") as f:
        f.write("1:otherhost")
    with pytest.raises(StoreError) as e:
        DotLock(path, timeout=0.3).acquire()
    assert e.value.code == "INUSE"
    os.unlink(path + ".lock")
    with DotLock(path, timeout=0.3):
        assert os.path.exists(path + ".lock")
    assert not os.path.exists(path + ".lock")


def test_dotlock_of_dead_local_process_is_broken(account):
    import subprocess
    import sys
    from pymail.store.filename import HOST
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(proc.stdout)
    path = os.path.join(account.root, "dovecot-uidlist")
    with open(path + ".lock", "w") as f:
        f.write(f"{dead_pid}:{HOST}")
    with DotLock(path, timeout=2):
        pass


def test_maildir_changes_by_another_program_are_picked_up(account):
    account.deliver(MSG)
    account.deliver(MSG)
    box = account.mailbox("INBOX")
    box.claim_recent()
    cur = os.path.join(account.root, "cur")
    name = sorted(os.listdir(cur))[0]
    os.rename(os.path.join(cur, name), os.path.join(cur, name.split(":2,")[0] + ":2,ST"))
    other = sorted(os.listdir(cur))[1]
    os.unlink(os.path.join(cur, other))
    box.refresh(force=True)
    res = box.sync()
    assert res.flag_changes == [1] and res.expunged == [2]
    assert box.record(1).flags == frozenset({"\\Seen", "\\Deleted"})


def _bump_mtime(path, seconds):
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + int(seconds * 1e9)))


def test_external_changes_seen_through_directory_stamps(account, monkeypatch):
    from pymail.store import sync as sync_mod
    monkeypatch.setattr(sync_mod, "DIRTY_WINDOW_NS", 0)
    for _ in range(3):
        account.deliver(MSG)
    box = account.mailbox("INBOX")
    box.claim_recent()                              # 1..3 now in cur/
    account.deliver(MSG)                            # 4 in new/
    assert box.sync().added == [4]
    assert box.sync() == ([], [], [])               # stamps saved, nothing to do
    cur, new = os.path.join(account.root, "cur"), os.path.join(account.root, "new")
    # another program flags 1 (rename in cur/) and deletes 4 (from new/)
    one = sorted(os.listdir(cur))[0]
    os.rename(os.path.join(cur, one), os.path.join(cur, one.split(":2,")[0] + ":2,F"))
    os.unlink(os.path.join(new, os.listdir(new)[0]))
    _bump_mtime(cur, 5)
    _bump_mtime(new, 5)
    res = box.sync()
    assert res.flag_changes == [1] and res.expunged == [4]
    # only new/ changes: a file moved from new/ to cur/ elsewhere is not an expunge
    account.deliver(MSG)                            # 5 in new/
    box.sync()
    five = os.listdir(new)[0]
    before = os.stat(cur)
    os.rename(os.path.join(new, five), os.path.join(cur, five + ":2,S"))
    _bump_mtime(new, 10)
    os.utime(cur, ns=(before.st_atime_ns, before.st_mtime_ns))   # cur/ looks unchanged
    res = box.sync()
    assert res.expunged == [] and res.flag_changes == [5]
    assert box.record(5).flags == frozenset({"\\Seen"})


@pytest.mark.parametrize("tail_bytes", [0, 1, 8191, 8192, 8193, 40000])
def test_uidlist_summary_finds_the_last_record(tmp_path, tail_bytes):
    """Delivery reads only the header and the last record; long lines, an empty list and a
    partial last line must not make it lose the last UID."""
    path = str(tmp_path / "dovecot-uidlist")
    long_field = "P" + "x" * tail_bytes if tail_bytes else ""
    lines = ["3 V7 N3 G" + "0" * 32 + "\n", "1 :a\n",
             f"9 {long_field} :b\n".replace("  ", " ")]
    with open(path, "w") as f:
        f.write("".join(lines) + "10 :partial")
    summary = ul_mod.read_summary(path)
    assert summary.last_uid == 9 and summary.effective_next_uid() == 10
    assert summary.complete_size == len("".join(lines).encode())
    with open(path, "w") as f:
        f.write(lines[0])
    summary = ul_mod.read_summary(path)
    assert summary.last_uid == 0 and summary.effective_next_uid() == 3


_LINE = st.one_of(
    st.builds(lambda u, f, b: f"{u} {f}:{b}", st.integers(0, 40),
              st.sampled_from(["", "G0a1", "W44 P12", " ", "S1:x"]),
              st.sampled_from(["1.M1P1.h", "2.M3.h:2,S", "", ":x", "a/b", "x\r", "٣.h"])),
    st.sampled_from(["", "garbage", "7", "٣ :x.h", "5 :ok.h"]),
)


@given(st.lists(_LINE, max_size=12))
@settings(max_examples=400, deadline=None)
def test_fast_record_parse_agrees_with_the_line_parser(lines):
    data = ("3 V1 N1 G00\n" + "".join(line + "\n" for line in lines)).encode()
    try:
        fast = ul_mod.parse(data)
    except StoreError as exc:
        fast = ("error", str(exc))
    complete = data.decode().split("\n")[:-1]
    try:
        slow = ul_mod._parse_records(complete, 3, ul_mod.NAME)
    except StoreError as exc:
        slow = ("error", str(exc))
    if isinstance(slow, tuple):
        assert fast == slow
    else:
        assert [(e.uid, e.base, list(e.fields)) for e in fast.entries] == \
            [(e.uid, e.base, list(e.fields)) for e in slow]
