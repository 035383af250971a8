"""mbox import, index rebuild for the CLI, INBOX rename, quota recalculation."""

from __future__ import annotations

import os

import pytest

from pymail.store import StoreError

MBOX = (b"From alice@example.com Sat Jan  3 01:05:34 1996\n"
        b"From: alice@example.com\nSubject: first\nStatus: RO\nX-Status: AF\n\n"
        b"Hello\n>From the start of a line\n\n"
        b"From bob@example.com Mon Feb  5 10:00:00 2001\n"
        b"From: bob@example.com\nSubject: second\n\nBody two\n\n"
        b"From carol@example.com Tue Mar  6 11:00:00 2007\n"
        b"From: carol@example.com\nSubject: third\nStatus: O\n\nlast\n")


def test_import_mbox(account, tmp_path):
    path = tmp_path / "old.mbox"
    path.write_bytes(MBOX)
    assert account.import_mbox(str(path), "Imported/2007") == (3, ())
    box = account.mailbox("Imported/2007")
    recs = box.records()
    assert [r.uid for r in recs] == [1, 2, 3]
    assert recs[0].flags == frozenset({"\\Seen", "\\Answered", "\\Flagged"})
    assert recs[1].flags == frozenset() and recs[2].flags == frozenset()
    assert box.internal_dates([1])[1] == 820631134.0        # 1996-01-03 01:05:34 UTC
    with box.open_message(1) as f:
        raw = f.read()
    assert raw.endswith(b"Hello\nFrom the start of a line\n")   # >From unquoted, no separator
    assert box.envelope(2)[1] == b"second"
    assert account.quota()[0] == 3


def test_import_mbox_keeps_keywords(account, tmp_path):
    mbox = (b"From a@example.com Sat Jan  3 01:05:34 1996\n"
            b"Subject: dovecot\nStatus: RO\nX-Keywords: $Label1 Work,Later  bad\\word (x)\n\n"
            b"one\n\n"
            b"From b@example.com Sat Jan  3 01:05:35 1996\n"
            b"Subject: thunderbird\nX-Mozilla-Keys: $label1 junk                \n\ntwo\n")
    path = tmp_path / "kw.mbox"
    path.write_bytes(mbox)
    assert account.import_mbox(str(path), "Tagged") == (2, ())
    box = account.mailbox("Tagged")
    first, second = box.records()
    assert first.flags == frozenset({"\\Seen", "$Label1", "Work", "Later"})   # "bad\\word", "(x)"
    assert {f.lower() for f in second.flags} == {"$label1", "junk"}          # one $Label1


def test_import_mbox_keeps_26_keywords_per_folder_and_names_the_rest(account, tmp_path):
    account.deliver(b"Subject: x\n\nx\n", mailbox="INBOX", flags=["Old"])
    words = [f"k{n:02d}" for n in range(30)]
    mbox = b"".join(b"From a@example.com Sat Jan  3 01:05:34 1996\nSubject: %d\n"
                    b"X-Keywords: %s old\n\nbody\n\n" % (n, w.encode())
                    for n, w in enumerate(words))
    path = tmp_path / "many.mbox"
    path.write_bytes(mbox)
    result = account.import_mbox(str(path), "INBOX", batch=7)
    assert result == (30, tuple(words[25:]))        # "Old" was there: 25 more fit
    recs = account.mailbox("INBOX").records()[1:]
    assert [r.flags for r in recs[:25]] == [frozenset({w, "Old"}) for w in words[:25]]
    assert all(r.flags == frozenset({"Old"}) for r in recs[25:])

def test_import_mbox_respects_quota(store, tmp_path):
    acct = store.account("small@example.org", quota_messages=2)
    acct.ensure()
    path = tmp_path / "old.mbox"
    path.write_bytes(MBOX)
    with pytest.raises(StoreError) as e:
        acct.import_mbox(str(path), "INBOX", batch=10)
    assert e.value.code == "OVERQUOTA"
    assert acct.mailbox("INBOX").count() == 0
    assert os.listdir(os.path.join(acct.root, "tmp")) == []


def test_account_rebuild_index(account):
    account.deliver(b"Subject: a\n\nx\n", mailbox="Sent")
    account.deliver(b"Subject: b\n\nx\n")
    box = account.mailbox("INBOX")
    top = box.highest_modseq
    box.close()
    rebuilt = account.rebuild_index()
    assert set(rebuilt) == {"INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"}
    assert account.rebuild_index("Sent") == ["Sent"]
    box = account.mailbox("INBOX")
    assert box.highest_modseq > top and [r.uid for r in box.records()] == [1]


def test_session_notices_index_rebuild(account):
    account.deliver(b"Subject: a\n\nx\n")
    account.deliver(b"Subject: b\n\nx\n")
    s1 = account.mailbox("INBOX")
    s2 = account.mailbox("INBOX")
    s2.store_flags([1], ["\\Deleted"], "add")
    s2.expunge()
    s2.rebuild_index()
    res = s1.sync()
    assert res.expunged == [1] and res.added == [] and res.flag_changes == [2]


def test_rename_inbox_moves_messages(account):
    account.deliver(b"Subject: a\n\nx\n", flags=["\\Seen"])
    account.rename_mailbox("INBOX", "Old")
    assert account.mailbox("INBOX").count() == 0
    old = account.mailbox("Old")
    assert [r.flags for r in old.records()] == [frozenset({"\\Seen"})]


def test_rename_refusals(account):
    account.create_mailbox("A")
    with pytest.raises(StoreError) as e:
        account.rename_mailbox("A", "Sent")
    assert e.value.code == "ALREADYEXISTS"
    with pytest.raises(StoreError) as e:
        account.rename_mailbox("A", "A/B")
    assert e.value.code == "BADNAME"
    with pytest.raises(StoreError) as e:
        account.rename_mailbox("Nope", "X")
    assert e.value.code == "NONEXISTENT"


def test_quota_recalculated_when_file_lost(account):
    account.deliver(b"x" * 10)
    account.deliver(b"y" * 20, mailbox="Sent")
    os.unlink(os.path.join(account.root, "maildirsize"))
    assert account.quota() == (2, 30)


def test_create_mailbox_special_use(account):
    account.create_mailbox("Everything", special_use="\\All")
    info = {i.name: i for i in account.list_mailboxes()}["Everything"]
    assert info.special_use == "\\All"
    with pytest.raises(StoreError):
        account.create_mailbox("Bad", special_use="\\Nope")
    account.rename_mailbox("Everything", "All Mail")
    assert {i.name: i for i in account.list_mailboxes()}["All Mail"].special_use == "\\All"


def test_mailbox_of_unensured_account(store):
    acct = store.account("nobody@example.org")
    with pytest.raises(StoreError) as e:
        acct.mailbox("INBOX")
    assert e.value.code == "NONEXISTENT"
    with pytest.raises(StoreError) as e:
        acct.deliver(b"x")
    assert e.value.code == "NONEXISTENT"


def test_deliver_from_file_object(account, tmp_path):
    p = tmp_path / "m.eml"
    p.write_bytes(b"Subject: file\r\n\r\n" + b"z" * 200_000 + b"\r\n")
    with open(p, "rb") as f:
        r = account.deliver(f)
    box = account.mailbox("INBOX")
    assert box.message_size(r.uid) == p.stat().st_size
    assert box.envelope(r.uid)[1] == b"file"


def test_damaged_index_is_rebuilt_with_same_uids(account):
    account.deliver(b"Subject: a\n\nx\n")
    account.deliver(b"Subject: b\n\nx\n", flags=["\\Seen"])
    box = account.mailbox("INBOX")
    before = box.records()
    box.close()
    path = os.path.join(account.root, "pymail-index.sqlite")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    with open(path, "wb") as f:
        f.write(b"this is not an SQLite database" * 100)
    box = account.mailbox("INBOX")
    after = box.records()
    assert [(r.uid, r.flags, r.guid) for r in after] == [(r.uid, r.flags, r.guid) for r in before]
    assert box.highest_modseq > max(r.modseq for r in before)


def test_index_root_follows_rename_and_delete(tmp_path):
    from pymail.store import Store
    store = Store(tmp_path / "mail", index_root=tmp_path / "idx", fsync=False)
    acct = store.account("ren@example.org")
    acct.ensure()
    acct.create_mailbox("Old")
    acct.deliver(b"Subject: a\n\nx\n", mailbox="Old")
    acct.mailbox("Old").close()
    acct.rename_mailbox("Old", "New")
    idx = tmp_path / "idx" / "example.org" / "ren"
    assert (idx / ".New" / "pymail-index.sqlite").exists() and not (idx / ".Old").exists()
    assert acct.mailbox("New").count() == 1
    acct.delete_mailbox("New")
    assert not (idx / ".New").exists()
