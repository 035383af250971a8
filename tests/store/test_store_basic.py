"""Basic behaviour of Store / Account / Mailbox against the seams.md contract."""

from __future__ import annotations

import os

import pytest

from pymail.store import StoreError
from tests.store.conftest import msg


def test_ensure_creates_special_use_folders_subscribed(account):
    infos = {i.name: i for i in account.list_mailboxes()}
    assert set(infos) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert infos["Sent"].special_use == "\\Sent"
    assert infos["Junk"].special_use == "\\Junk"
    assert infos["INBOX"].special_use is None
    assert all(i.subscribed for i in infos.values())
    assert os.path.isfile(os.path.join(account.root, ".Sent", "maildirfolder"))
    account.unsubscribe("Junk")
    account.ensure()   # idempotent, and keeps the user's choice
    infos = {i.name: i for i in account.list_mailboxes()}
    assert len(infos) == 6 and not infos["Junk"].subscribed


def test_deliver_assigns_increasing_uids_and_fsyncs_into_new(account):
    r1 = account.deliver(msg("one"))
    r2 = account.deliver(msg("two"))
    assert (r1.mailbox, r1.uid) == ("INBOX", 1)
    assert r2.uid == 2
    assert len(os.listdir(os.path.join(account.root, "new"))) == 2
    assert os.listdir(os.path.join(account.root, "tmp")) == []
    box = account.mailbox("INBOX")
    assert [r.uid for r in box.records()] == [1, 2]
    assert box.count() == 2 and box.unseen_count() == 2
    assert box.uidnext == 3
    assert box.first_unseen_uid() == 1


def test_size_is_rfc822_size_with_crlf(account):
    raw = b"Subject: x\n\nline1\nline2\n"
    r = account.deliver(raw)
    box = account.mailbox("INBOX")
    assert r.size == len(raw) + raw.count(b"\n")
    assert box.message_size(r.uid) == r.size
    assert box.records()[0].size == r.size
    with box.open_message(r.uid) as f:
        assert f.read() == raw


def test_deliver_with_flags_goes_to_cur(account):
    r = account.deliver(msg(), flags=["\\Seen", "$Label1"])
    names = os.listdir(os.path.join(account.root, "cur"))
    assert len(names) == 1 and names[0].endswith(":2,Sa")
    box = account.mailbox("INBOX")
    assert box.records()[0].flags == frozenset({"\\Seen", "$Label1"})
    assert box.unseen_count() == 0
    assert r.uid == 1


def test_internal_date_is_mtime(account):
    r = account.deliver(msg(), internal_date=1_000_000_000.0)
    box = account.mailbox("INBOX")
    # the first open fills the index in bulk: the date is read on first use, then kept
    assert box.records()[0].internal_date is None
    assert box.internal_dates([1]) == {1: pytest.approx(1_000_000_000.0)}
    assert box.records()[0].internal_date == pytest.approx(1_000_000_000.0)
    other = account.mailbox("INBOX")
    assert other.index.db.execute("SELECT mtime FROM records").fetchone()[0] \
        == pytest.approx(1_000_000_000.0)
    assert r.uid == 1


def test_internal_date_of_a_message_renamed_meanwhile(account):
    for i in range(2):
        account.deliver(msg(f"m{i}"), internal_date=1_100_000_000.0 + i)
    box = account.mailbox("INBOX")
    other = account.mailbox("INBOX")
    other.store_flags([2], ["\\Seen"], "add")          # renames the file under box's record
    assert box.internal_dates([1, 2]) == {1: pytest.approx(1_100_000_000.0),
                                          2: pytest.approx(1_100_000_001.0)}
    other.store_flags([1], ["\\Deleted"], "add")
    other.expunge()
    assert box.internal_dates([1, 2, 99]) == {2: pytest.approx(1_100_000_001.0)}


def test_store_flags_modes_and_modseq(account):
    for i in range(3):
        account.deliver(msg(f"m{i}"))
    box = account.mailbox("INBOX")
    before = box.highest_modseq
    updated, failed = box.store_flags([1, 2], ["\\Seen", "\\Flagged"], "add")
    assert failed == [] and [r.uid for r in updated] == [1, 2]
    assert all(r.modseq > before for r in updated)
    assert box.unseen_count() == 1
    updated, _ = box.store_flags([1], ["\\Flagged"], "remove")
    assert updated[0].flags == frozenset({"\\Seen"})
    updated, _ = box.store_flags([2], ["Work"], "replace")
    assert updated[0].flags == frozenset({"Work"})
    # the file names carry the flags
    cur = sorted(os.listdir(os.path.join(account.root, "cur")))
    assert any(n.endswith(":2,S") for n in cur) and any(n.endswith(":2,a") for n in cur)
    # CONDSTORE UNCHANGEDSINCE: uid 1 changed after `before`
    updated, failed = box.store_flags([1, 3], ["\\Answered"], "add", unchanged_since=before)
    assert failed == [1] and [r.uid for r in updated] == [3]


def test_store_flags_no_change_keeps_modseq(account):
    account.deliver(msg(), flags=["\\Seen"])
    box = account.mailbox("INBOX")
    ms = box.records()[0].modseq
    updated, _ = box.store_flags([1], ["\\Seen"], "add")
    assert updated[0].modseq == ms


def test_system_flag_case_and_recent_and_bad_flags(account):
    account.deliver(msg())
    box = account.mailbox("INBOX")
    updated, _ = box.store_flags([1], ["\\seen", "\\Recent"], "add")
    assert updated[0].flags == frozenset({"\\Seen"})
    with pytest.raises(StoreError) as e:
        box.store_flags([1], ["\\Bogus"], "add")
    assert e.value.code == "BADNAME"
    with pytest.raises(StoreError):
        box.store_flags([1], ["bad(kw"], "add")


def test_expunge_only_deleted_and_restricted(account):
    for i in range(4):
        account.deliver(msg(f"m{i}"))
    box = account.mailbox("INBOX")
    box.store_flags([1, 2, 3], ["\\Deleted"], "add")
    assert box.expunge([1, 4]) == [1]
    assert box.expunge() == [2, 3]
    assert [r.uid for r in box.records()] == [4]
    assert box.count() == 1
    # uidlist keeps only uid 4 and next uid stays 5
    text = open(os.path.join(account.root, "dovecot-uidlist")).read().splitlines()
    assert text[0].split()[2] == "N5"
    assert [line.split()[0] for line in text[1:]] == ["4"]
    r = account.deliver(msg("again"))
    assert r.uid == 5


def test_sync_reports_other_sessions_changes(account):
    account.deliver(msg("a"))
    s1 = account.mailbox("INBOX")
    s2 = account.mailbox("INBOX")
    account.deliver(msg("b"))
    s2.store_flags([1], ["\\Seen"], "add")
    res = s1.sync()
    assert res.added == [2] and res.flag_changes == [1] and res.expunged == []
    assert s1.sync() == ([], [], [])
    s2.store_flags([1], ["\\Deleted"], "add")
    s2.expunge()
    res = s1.sync()
    assert res.expunged == [1]


def test_changes_since(account):
    account.deliver(msg("a"))
    box = account.mailbox("INBOX")
    m0 = box.highest_modseq
    account.deliver(msg("b"))
    box.sync()
    box.store_flags([1], ["\\Seen"], "add")
    box.store_flags([1], ["\\Deleted"], "add")
    box.expunge()
    changes = box.changes_since(m0)
    kinds = {(c.uid, c.kind) for c in changes}
    assert kinds == {(2, "append"), (1, "expunge")}
    assert all(c.modseq > m0 for c in changes)
    assert box.changes_since(box.highest_modseq) == []


def test_claim_recent_once(account):
    account.deliver(msg("a"))
    account.deliver(msg("b"))
    s1 = account.mailbox("INBOX")
    s2 = account.mailbox("INBOX")
    assert s2.peek_recent() == [1, 2] and s2.first_recent_uid == 1
    assert s1.claim_recent() == [1, 2]
    assert s2.peek_recent() == [] and s2.first_recent_uid == 3
    assert s2.claim_recent() == []
    account.deliver(msg("c"))
    assert s2.claim_recent() == [3]
    assert s1.claim_recent() == []
    # claimed messages moved from new/ to cur/
    assert len(os.listdir(os.path.join(account.root, "cur"))) == 3
    assert os.listdir(os.path.join(account.root, "new")) == []


def test_append_copy_move(account):
    box = account.mailbox("INBOX")
    uid = box.append(msg("x"), flags=["\\Seen", "Important"], internal_date=1_500_000_000)
    account.deliver(msg("y"))
    box.sync()
    pairs = box.copy([uid, 2], "Archive")
    assert pairs == [(1, 1), (2, 2)]
    arch = account.mailbox("Archive")
    recs = arch.records()
    assert [r.uid for r in recs] == [1, 2]
    assert recs[0].flags == frozenset({"\\Seen", "Important"})
    assert arch.internal_dates([1])[1] == pytest.approx(1_500_000_000)   # the copy keeps it
    moved = box.move([2], "Trash")
    assert moved == [(2, 1)]
    box.sync()
    assert [r.uid for r in box.records()] == [1]
    with pytest.raises(StoreError) as e:
        box.copy([1], "Nope")
    assert e.value.code == "NONEXISTENT"


def test_open_message_after_expunge(account):
    account.deliver(msg())
    box = account.mailbox("INBOX")
    box.store_flags([1], ["\\Deleted"], "add")
    box.expunge()
    with pytest.raises(StoreError) as e:
        box.open_message(1)
    assert e.value.code == "EXPUNGED"


def test_pop3_uidl_default_and_formats(account):
    account.deliver(msg())
    box = account.mailbox("INBOX")
    uv = box.uidvalidity
    # Dovecot's %X is lower-case hex (checked against a live Dovecot in the live test)
    assert box.pop3_uidl(1, "%08Xu%08Xv") == f"{1:08x}{uv:08x}"
    assert box.pop3_uidl(1) == f"{1:08x}{uv:08x}"
    assert box.pop3_uidl(1, "%08xu%08xv") == f"{1:08x}{uv:08x}"
    assert box.pop3_uidl(1, "%08XUu-%Xv") == f"{1:08X}-{uv:x}"
    assert box.pop3_uidl(1, "%u-%v%%%q") == f"1-{uv}%%q"
    assert box.pop3_uidl(1, "%u-%v") == f"1-{uv}"
    base = os.listdir(os.path.join(account.root, "new"))[0]
    assert box.pop3_uidl(1, "%f") == base
    assert len(box.pop3_uidl(1, "%m")) == 32


def test_mailbox_management(account):
    account.create_mailbox("Work/2024")
    names = {i.name: i for i in account.list_mailboxes()}
    assert "Work/2024" in names
    assert os.path.isdir(os.path.join(account.root, ".Work.2024", "cur"))
    with pytest.raises(StoreError) as e:
        account.create_mailbox("Work/2024")
    assert e.value.code == "ALREADYEXISTS"
    account.create_mailbox("Work")
    assert {i.name: i for i in account.list_mailboxes()}["Work"].has_children
    account.deliver(msg(), mailbox="Work/2024")
    account.rename_mailbox("Work", "Jobs")
    names = {i.name for i in account.list_mailboxes()}
    assert {"Jobs", "Jobs/2024"} <= names and "Work" not in names
    assert account.mailbox("Jobs/2024").count() == 1
    account.delete_mailbox("Jobs/2024")
    with pytest.raises(StoreError) as e:
        account.mailbox("Jobs/2024")
    assert e.value.code == "NONEXISTENT"
    with pytest.raises(StoreError) as e:
        account.delete_mailbox("INBOX")
    assert e.value.code == "NOPERM"


def test_subscriptions(account):
    account.create_mailbox("Lists/Python")
    account.subscribe("Lists/Python")
    account.unsubscribe("Trash")
    subs = {i.name: i.subscribed for i in account.list_mailboxes()}
    assert subs["Lists/Python"] and not subs["Trash"]


def test_unicode_mailbox_names_stored_as_modified_utf7(account):
    account.create_mailbox("Entwürfe/日本")
    assert os.path.isdir(os.path.join(account.root, ".Entw&APw-rfe.&ZeVnLA-"))
    assert "Entwürfe/日本" in {i.name for i in account.list_mailboxes()}


def test_quota_counts_and_limits(store):
    acct = store.account("q@example.org", quota_bytes=300, quota_messages=10)
    acct.ensure()
    r = acct.deliver(b"x" * 100)
    assert acct.quota() == (1, 100)
    acct.deliver(b"y" * 150)
    with pytest.raises(StoreError) as e:
        acct.deliver(b"z" * 100)
    assert e.value.code == "OVERQUOTA"
    assert acct.quota() == (2, 250)
    box = acct.mailbox("INBOX")
    box.store_flags([r.uid], ["\\Deleted"], "add")
    box.expunge()
    assert acct.quota() == (1, 150)
    acct.deliver(b"z" * 100)
    assert acct.quota() == (2, 250)
    with open(os.path.join(acct.root, "maildirsize")) as f:
        assert f.readline().strip() == "300S,10C"


def test_bad_addresses_refused(store):
    for bad in ["../x@example.org", "a@../etc", "noat", "a/b@example.org", "a@b@c", ".x@example.org"]:
        with pytest.raises(StoreError) as e:
            store.account(bad)
        assert e.value.code == "BADNAME"


def test_keywords_are_case_insensitive(account):
    account.deliver(msg(), flags=["Work"])
    box = account.mailbox("INBOX")
    updated, _ = box.store_flags([1], ["WORK", "\\Seen"], "add")
    assert updated[0].flags == frozenset({"Work", "\\Seen"})
    updated, _ = box.store_flags([1], ["work"], "remove")
    assert updated[0].flags == frozenset({"\\Seen"})


def test_records_view_follows_other_sessions(account):
    for i in range(5):
        account.deliver(msg(f"m{i}"))
    s1 = account.mailbox("INBOX")
    s2 = account.mailbox("INBOX")
    assert len(s1.records()) == 5
    s2.store_flags([2], ["\\Seen"], "add")
    s2.store_flags([3], ["\\Deleted"], "add")
    s2.expunge()
    account.deliver(msg("late"))
    s1.sync()
    fresh = account.mailbox("INBOX")
    assert s1.records() == fresh.records()
    assert [r.uid for r in s1.records()] == [1, 2, 4, 5, 6]
    s2.rebuild_index()
    assert s1.records() == account.mailbox("INBOX").records()


def test_move_at_quota_limit_and_copy_over_it(store):
    acct = store.account("full@example.org", quota_messages=2)
    acct.ensure()
    acct.deliver(msg("a"))
    acct.deliver(msg("b"))
    box = acct.mailbox("INBOX")
    with pytest.raises(StoreError) as e:
        box.copy([1], "Archive")
    assert e.value.code == "OVERQUOTA"
    assert box.move([1], "Archive") == [(1, 1)]
    assert acct.quota()[0] == 2


def test_uidlist_compress_keeps_records_of_unscanned_deliveries(account):
    for i in range(3):
        account.deliver(msg(f"m{i}"))
    box = account.mailbox("INBOX")
    late = account.deliver(msg("late"))            # not yet seen by box's index
    box.store_flags([1, 2], ["\\Deleted"], "add")
    box._refresh = lambda force=False: False       # expunge without picking up "late"
    assert box._expunge([1, 2], require_deleted=True) == [1, 2]
    del box._refresh
    text = open(os.path.join(account.root, "dovecot-uidlist")).read().splitlines()
    assert [line.split()[0] for line in text[1:]] == ["3", str(late.uid)]
    assert box.sync().added == [late.uid]
    with box.open_message(late.uid) as f:
        assert b"Subject: late" in f.read()


def test_new_session_reuses_shared_view_and_stays_correct(account):
    from pymail.store import mailbox as mailbox_mod
    for i in range(4):
        account.deliver(msg(f"m{i}"))
    s1 = account.mailbox("INBOX")
    s1.records()                                   # publishes a view
    s2 = account.mailbox("INBOX")
    s2.store_flags([2], ["\\Seen"], "add")
    s2.store_flags([3], ["\\Deleted"], "add")
    s2.expunge()
    account.deliver(msg("late"))
    s3 = account.mailbox("INBOX")
    got = s3.records()                              # starts from s1's view + the delta
    mailbox_mod._shared.clear()
    s4 = account.mailbox("INBOX")
    assert got == s4.records()
    assert [r.uid for r in got] == [1, 2, 4, 5]
    assert got[1].flags == frozenset({"\\Seen"})
    assert s1.records() == got                      # s1's own copy was not changed under it


def test_readers_do_not_wait_for_a_writer(account, monkeypatch):
    import threading
    from pymail.store import sync as sync_mod
    monkeypatch.setattr(sync_mod, "DIRTY_WINDOW_NS", 0)
    account.deliver(msg("a"))
    writer = account.mailbox("INBOX")
    writer.sync()
    writer.envelope(1)
    writer.index.db.execute("BEGIN IMMEDIATE")      # a long write transaction elsewhere
    done = {}

    def read():
        reader = account.mailbox("INBOX")
        done["records"] = [r.uid for r in reader.records()]
        done["counts"] = (reader.count(), reader.unseen_count(), reader.uidnext)
        done["envelope"] = reader.envelope(1)[1]
        done["sync"] = reader.sync()
        reader.close()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout=5)
    writer.index.db.execute("ROLLBACK")
    assert not t.is_alive(), "a reader waited for the writer"
    assert done["records"] == [1] and done["counts"] == (1, 1, 2)
    assert done["envelope"] == b"a" and done["sync"] == ([], [], [])


def test_threads_delivering_to_one_account_with_quota(store):
    """Deliveries from several threads of one process keep the quota file consistent and never
    fail after the message is stored (their temporary control files used to collide)."""
    import threading

    acct = store.account("t@example.org", quota_bytes=10_000_000, quota_messages=1000)
    acct.ensure()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(15):
                acct.deliver(msg(f"thread {n} message {i}"))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    box = acct.mailbox("INBOX")
    box.sync()
    assert box.count() == 90
    assert acct.quota()[0] == 90


def test_store_flags_rows_follow_the_files(account):
    """Index rows after a STORE that moves some files out of new/ and changes \\Seen on some:
    each column as the file name says, and the counts kept by the trigger right."""
    for i in range(4):
        account.deliver(msg(f"m{i}"))
    box = account.mailbox("INBOX")             # nobody claimed \\Recent: all still in new/
    box.store_flags([1, 2], ["\\Seen"], "add")
    box.store_flags([2, 3], ["\\Flagged"], "add")
    box.store_flags([1, 4], ["\\Seen", "\\Draft"], "replace")
    rows = box.index.db.execute("SELECT uid, subdir, info, flags, seen FROM records "
                                "ORDER BY uid").fetchall()
    assert rows == [(1, "cur", "DS", "\\Draft \\Seen", 1), (2, "cur", "FS", "\\Flagged \\Seen", 1),
                    (3, "cur", "F", "\\Flagged", 0), (4, "cur", "DS", "\\Draft \\Seen", 1)]
    on_disk = sorted(os.listdir(os.path.join(box.folder.path, "cur")))
    assert [n.rsplit(":2,", 1)[1] for n in on_disk] == ["DS", "FS", "F", "DS"]
    assert box.unseen_count() == 1
    box.store_flags([2], ["\\Seen"], "remove")
    assert box.unseen_count() == 2


def test_own_flag_change_not_reported_back_unless_others_changed_too(account):
    for i in range(3):
        account.deliver(msg(f"m{i}"))
    box = account.mailbox("INBOX")
    other = account.mailbox("INBOX")
    box.store_flags([1], ["\\Seen"], "add")
    assert box.sync() == ([], [], [])          # nothing new to this session
    assert other.sync().flag_changes == [1]
    other.store_flags([2], ["\\Flagged"], "add")
    box.store_flags([3], ["\\Seen"], "add")     # box had not seen other's change yet
    assert box.sync().flag_changes == [2, 3]
    assert other.sync().flag_changes == [3]


def test_store_hands_its_records_to_the_next_session_of_the_process(account):
    from pymail.store import mailbox as mailbox_mod

    for i in range(4):
        account.deliver(msg(f"m{i}"))
    box = account.mailbox("INBOX")
    box.records()
    box.store_flags([1, 2], ["\\Flagged"], "add")
    shared = mailbox_mod._shared_view(box.index.path)
    assert shared[1] == box.highest_modseq           # the view already has the change
    assert {u for u, r in shared[2].items() if "\\Flagged" in r.flags} == {1, 2}
    # another process's change first: no shortcut, and the next session is still right
    other = account.mailbox("INBOX")
    other.index.db.execute("BEGIN IMMEDIATE")
    other.index.db.execute("UPDATE meta SET value = value + 1 WHERE key = 'highest_modseq'")
    other.index.db.execute("UPDATE records SET flags = '\\Answered', "
                           "modseq = (SELECT value FROM meta WHERE key = 'highest_modseq') "
                           "WHERE uid = 4")
    other.index.db.execute("COMMIT")
    box.store_flags([3], ["\\Flagged"], "add")
    assert mailbox_mod._shared_view(box.index.path)[1] < box.highest_modseq
    fresh = account.mailbox("INBOX")
    flags = {r.uid: r.flags for r in fresh.records()}
    assert flags == {1: {"\\Flagged"}, 2: {"\\Flagged"}, 3: {"\\Flagged"}, 4: {"\\Answered"}}


def test_a_delivery_writes_its_uidlist_record_before_the_slow_fsyncs(tmp_path, monkeypatch):
    """A session that lists new/ while a delivery commits must find the record of the new file
    (else it reads the whole uidlist twice and waits for the lock); both the directory and the
    uidlist are made durable before the delivery returns."""
    from pymail.store import Store, folder as folder_mod
    account = Store(tmp_path / "mail", fsync=True).account("dur@example.org")
    account.ensure()
    events = []
    real_dir, real_sync = folder_mod.Folder._fsync_dir, folder_mod.sync_path

    def fsync_dir(self, path):
        with open(self.uidlist_path) as f:
            records = [line.split(" :", 1)[1].strip() for line in f.readlines()[1:]]
        in_dir = sorted(n for n in os.listdir(path) if not n.startswith("."))
        events.append(("dir", in_dir, records))
        real_dir(self, path)

    def sync_path(path, data_only=False):
        if os.path.basename(path) == "dovecot-uidlist":
            events.append(("uidlist",))
        real_sync(path, data_only)

    monkeypatch.setattr(folder_mod.Folder, "_fsync_dir", fsync_dir)
    monkeypatch.setattr(folder_mod, "sync_path", sync_path)
    result = account.deliver(msg("one"))
    dir_events = [e for e in events if e[0] == "dir"]
    assert dir_events and events[-1] == ("uidlist",)
    _, files, records = dir_events[-1]
    assert len(files) == 1 and files[0] in records       # the record was there already
    assert result.uid == 1


def test_store_finds_a_file_another_program_moved_meanwhile(account, monkeypatch):
    """Between reading the rows and renaming, one file was moved to cur/ by another program and
    one removed: the first is found by listing the folder (once) and renamed from where it is,
    the second is skipped."""
    for i in range(3):
        account.deliver(msg(f"m{i}"))
    box = account.mailbox("INBOX")
    new = os.path.join(box.folder.path, "new")
    cur = os.path.join(box.folder.path, "cur")
    names = {r[0]: r[1] for r in box.index.db.execute("SELECT uid, base FROM records")}
    real_rows = box._rows_for
    listings = []
    real_list = box._list_dir

    def rows_then_race(db, uids):
        rows = real_rows(db, uids)
        os.rename(os.path.join(new, names[1]), os.path.join(cur, names[1] + ":2,S"))
        os.unlink(os.path.join(new, names[2]))
        return rows

    monkeypatch.setattr(box, "_rows_for", rows_then_race)
    monkeypatch.setattr(box, "_list_dir", lambda: listings.append(1) or real_list())
    updated, failed = box.store_flags([1, 2, 3], ["\\Flagged"], "add")
    assert [r.uid for r in updated] == [1, 3] and failed == [] and listings == [1]
    assert sorted(os.listdir(cur)) == sorted(names[u] + ":2,F" for u in (1, 3))
    assert os.listdir(new) == []
