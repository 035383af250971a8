"""Directory stamps: when a sync re-lists the maildir, and when it may trust the index.

See "Timestamp granularity" and "Own changes" in pymail/store/sync.py."""

from __future__ import annotations

import os
import time
import types

import pytest

from pymail.store import sync as sync_mod
from tests.store.conftest import msg


@pytest.fixture
def listings(monkeypatch):
    """Counts how often a sync lists the maildir folders."""
    calls = []
    real = sync_mod.IndexSync._listing

    def counting(self, dirs=("new", "cur")):
        calls.append(tuple(dirs))
        return real(self, dirs)

    monkeypatch.setattr(sync_mod.IndexSync, "_listing", counting)
    return calls


def test_probe_finds_this_filesystem_fine_grained_and_a_coarse_one_not(tmp_path, monkeypatch):
    # Linux >= 6.13 on ext4/tmpfs: multigrain timestamps (the CI machine runs 6.18)
    monkeypatch.setattr(sync_mod, "_fine_by_dev", {})
    monkeypatch.setattr(sync_mod, "_fine_by_path", {})
    assert sync_mod.fine_grained(str(tmp_path)) is True
    assert os.listdir(tmp_path) == []                      # the probe leaves nothing behind

    real_stat = os.stat

    class Coarse:                                          # whole-second mtimes
        def __init__(self, st):
            self.st_mtime_ns = st.st_mtime_ns // 1_000_000_000 * 1_000_000_000
            self.st_dev = st.st_dev

    def coarse_stat(path, *a, **kw):
        return Coarse(real_stat(path, *a, **kw))

    monkeypatch.setattr(sync_mod, "_fine_by_dev", {})
    monkeypatch.setattr(sync_mod, "_fine_by_path", {})
    monkeypatch.setattr(sync_mod.os, "stat", coarse_stat)
    assert sync_mod.fine_grained(str(tmp_path)) is False


def test_fine_grained_a_foreign_change_right_after_a_sync_is_seen_at_once(account):
    account.deliver(msg("a"), flags=["\\Seen"])
    box = account.mailbox("INBOX")
    assert box.sync() == ([], [], [])
    cur = os.path.join(account.root, "cur")
    name = os.listdir(cur)[0]
    os.rename(os.path.join(cur, name), os.path.join(cur, name.replace(":2,S", ":2,FS")))
    res = box.sync()                                       # same millisecond: no dirty window
    assert res.flag_changes == [1]
    assert box.record(1).flags == frozenset({"\\Seen", "\\Flagged"})


def test_unchanged_folder_is_not_listed_again(account, listings):
    for i in range(3):
        account.deliver(msg(str(i)), flags=["\\Seen"])
    box = account.mailbox("INBOX")
    listings.clear()
    for _ in range(5):
        assert box.sync() == ([], [], [])
    assert listings == []


def test_own_flag_change_and_expunge_need_no_listing_by_other_sessions(account, listings):
    for i in range(4):
        account.deliver(msg(str(i)))
    one = account.mailbox("INBOX")
    other = account.mailbox("INBOX")
    one.claim_recent()                                     # moves 1..4 to cur/ (own change)
    listings.clear()
    assert other.sync() == ([], [], [])
    one.store_flags([1, 2], ["\\Deleted"], "add")
    res = other.sync()
    assert res.flag_changes == [1, 2]
    assert one.expunge() == [1, 2]
    res = other.sync()
    assert res.expunged == [1, 2]
    assert [r.uid for r in other.records()] == [3, 4]
    assert listings == [], "a change the index already had made a session re-list the folder"
    # and the index still matches the maildir after all that
    other.refresh(force=True)
    assert [r.uid for r in other.records()] == [3, 4]


def test_coarse_timestamps_follow_dovecots_dirty_rule(account, monkeypatch, listings):
    """On a coarse filesystem a stamp younger than the window is trusted until the window ends
    and then looked at once more (Dovecot maildir-sync.c, MAILDIR_SYNC_SECS)."""
    monkeypatch.setattr(sync_mod, "fine_grained", lambda path: False)
    monkeypatch.setattr(sync_mod, "DIRTY_WINDOW_NS", 400_000_000)
    # the store's clock stands still (no file is older than it) until the test moves it: a
    # loaded machine cannot carry the test past the window
    clock = [time.time_ns()]
    monkeypatch.setattr(sync_mod, "time", types.SimpleNamespace(time_ns=lambda: clock[0]))
    account.deliver(msg("a"), flags=["\\Seen"])
    box = account.mailbox("INBOX")
    box.sync()
    cur = os.path.join(account.root, "cur")
    before = os.stat(cur)
    name = os.listdir(cur)[0]
    # a foreign rename in the same clock tick: cur/'s stamp does not change
    os.rename(os.path.join(cur, name), os.path.join(cur, name.replace(":2,S", ":2,FS")))
    os.utime(cur, ns=(before.st_atime_ns, before.st_mtime_ns))
    listings.clear()
    assert box.sync() == ([], [], [])                      # trusted inside the window
    assert listings == []
    clock[0] = time.time_ns() + sync_mod.DIRTY_WINDOW_NS
    assert box.sync().flag_changes == [1]                  # looked at once after it
    assert listings and all("cur" in dirs for dirs in listings)
    listings.clear()
    box.sync()
    box.sync()
    assert listings == []                                  # and then the stamp is clean


def test_a_first_build_saves_the_uidlist_it_wrote_and_still_sees_later_changes(account, listings):
    # A folder another program filled (no dovecot-uidlist): the first open numbers the files,
    # writing the uidlist under its lock; the stamp saved is that file as written, so the
    # next command (SELECT's \Recent claim, a sync) neither writes nor lists again.
    cur = os.path.join(account.root, "cur")
    for i in range(3):
        with open(os.path.join(cur, f"{1_600_000_000 + i}.M{i}P1.other:2,S"), "wb") as f:
            f.write(msg(str(i)))
    os.unlink(os.path.join(account.root, "dovecot-uidlist"))
    box = account.mailbox("INBOX")
    assert [r.uid for r in box.records()] == [1, 2, 3]
    writes = box.index._writes
    listings.clear()
    assert box.claim_recent() == [] and box.sync() == ([], [], [])
    assert box.index._writes == writes and listings == []
    account.deliver(msg("later"))                          # another process, say
    assert box.sync().added == [4]


def test_prepare_does_the_first_opens_one_time_work_before_serving(tmp_path, monkeypatch):
    from pymail.store import Store
    from pymail.store import index as index_mod

    monkeypatch.setattr(index_mod, "_empty_file", None)
    monkeypatch.setattr(sync_mod, "_fine_by_dev", {})
    monkeypatch.setattr(sync_mod, "_fine_by_path", {})
    (tmp_path / "mail").mkdir()
    Store(tmp_path / "mail", tmp_path / "no-index-root-yet").prepare()
    assert index_mod._empty_file is not None
    assert os.stat(tmp_path / "mail").st_dev in sync_mod._fine_by_dev
    assert os.listdir(tmp_path / "mail") == []              # the probe left nothing behind


def test_a_file_name_that_is_not_utf8_is_left_alone_not_fatal(account, caplog):
    # os.listdir gives such a name with surrogates, which SQLite text cannot hold: the folder
    # failed to open at all (first build and later scans alike)
    account.deliver(msg("fine"))
    cur = os.path.join(account.root, "cur").encode()
    odd = os.path.join(cur, b"1600000000.M1P1.h\xff,S=10,W=10:2,S")
    with open(odd, "wb") as f:
        f.write(msg("odd"))
    box = account.mailbox("INBOX")                         # scan of a changed folder
    assert [r.uid for r in box.records()] == [1]
    box.close()
    os.unlink(os.path.join(account.root, "pymail-index.sqlite"))
    fresh = account.mailbox("INBOX")                       # first build
    assert [r.uid for r in fresh.records()] == [1] and fresh.sync() == ([], [], [])
    account.deliver(msg("later"))
    assert fresh.sync().added == [2]                       # no UID spent on the odd file
    assert os.path.exists(odd)                             # never touched
    assert "is not UTF-8" in caplog.text
