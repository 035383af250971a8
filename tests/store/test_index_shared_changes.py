"""Index connections that are given back and reopened; one change set read for many sessions
(pymail.store.changeset) gives each exactly what its own Mailbox.sync() would."""

import pytest

from pymail.store import Store
from pymail.store.changeset import read_changes, seen_modseq, sync_from

USER = "carol@example.org"


def msg(i):
    return f"From: a@example.net\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode()


@pytest.fixture
def acct(tmp_path):
    a = Store(tmp_path / "mail", fsync=False).account(USER)
    a.ensure()
    for i in range(5):
        a.deliver(msg(i))
    return a


def test_release_closes_and_next_use_reopens(acct):
    with acct.mailbox("INBOX") as mb:
        assert mb.index.is_open
        assert mb.index.release() is True
        assert not mb.index.is_open and mb.index.release() is False
        assert mb.count() == 5 and mb.index.is_open
        acct.deliver(msg(9))
        mb.index.release()
        assert mb.sync().added == [6]
        assert [r.uid for r in mb.records()] == [1, 2, 3, 4, 5, 6]


def test_release_keeps_a_connection_inside_a_transaction(acct):
    with acct.mailbox("INBOX") as mb:
        with mb.index.read():
            assert mb.index.release() is False
            assert mb.index.is_open
        assert mb.index.release() is True


def test_closed_mailbox_can_close_twice(acct):
    mb = acct.mailbox("INBOX")
    mb.close()
    mb.close()
    assert not mb.index.is_open


def _change_everything(acct):
    with acct.mailbox("INBOX") as other:
        other.store_flags([2], ["\\Flagged", "todo"], "add")
        other.store_flags([3], ["\\Deleted"], "add")
        other.expunge()
    acct.deliver(msg(7))
    acct.deliver(msg(8))


def test_shared_change_set_equals_each_sessions_own_sync(acct):
    own = acct.mailbox("INBOX")
    shared = [acct.mailbox("INBOX") for _ in range(3)]
    _change_everything(acct)
    leader = shared[0]
    leader.refresh()
    low = min(seen_modseq(mb) for mb in shared)
    changes = read_changes(leader, low)
    expected = own.sync()
    assert expected.added == [6, 7] and expected.expunged == [3] and expected.flag_changes == [2]
    for mb in shared:
        assert sync_from(mb, changes) == expected
        # the session state moved like sync()'s: nothing more to tell
        assert mb.sync() == ([], [], [])
    assert changes.lookup({2, 3, 6})[2].flags == frozenset({"\\Flagged", "todo"})
    assert 3 not in changes.lookup({3})
    assert changes.uidnext == own.uidnext
    for mb in [own, *shared]:
        mb.close()


def test_sessions_at_different_points_get_their_own_answer(acct):
    early = acct.mailbox("INBOX")
    acct.deliver(msg(6))
    late = acct.mailbox("INBOX")
    acct.deliver(msg(7))
    twin_early, twin_late = acct.mailbox("INBOX"), acct.mailbox("INBOX")
    twin_early._known, twin_early._seen_modseq = set(early._known), early._seen_modseq
    twin_late._known, twin_late._seen_modseq = set(late._known), late._seen_modseq
    late.refresh()
    changes = read_changes(late, min(seen_modseq(early), seen_modseq(late)))
    assert sync_from(early, changes) == twin_early.sync()
    assert sync_from(late, changes) == twin_late.sync()
    assert sync_from(early, changes).added == []  # already applied: nothing twice
    for mb in (early, late, twin_early, twin_late):
        mb.close()


def test_change_set_cannot_answer_after_rebuild_or_for_older_session(acct):
    old = acct.mailbox("INBOX")
    acct.deliver(msg(6))
    newer = acct.mailbox("INBOX")
    changes = read_changes(newer, seen_modseq(newer))
    assert sync_from(old, changes) is None  # it saw less than the change set covers
    newer.rebuild_index()
    rebuilt = read_changes(newer, seen_modseq(newer))
    assert sync_from(newer, rebuilt) is None  # generation changed: whole-set compare needed
    assert newer.sync().added == []
    old.close()
    newer.close()


def test_recent_claimed_once_and_handed_to_one_session(acct):
    with acct.mailbox("INBOX") as first:
        first.claim_recent()
    a, b = acct.mailbox("INBOX"), acct.mailbox("INBOX")
    acct.deliver(msg(6))
    acct.deliver(msg(7))
    a.refresh()
    changes = read_changes(a, seen_modseq(a))
    assert changes.claim(a, [6]) == {6}
    assert changes.claim(b, [6, 7]) == {7}
    assert changes.claim(b, [6, 7]) == set()
    assert changes.unclaimed() == set()
    # the index agrees: nothing left for anyone else
    assert a.claim_recent() == []
    # a later change set skips the claim (no write) when every new UID is claimed already
    again = read_changes(a, seen_modseq(a) - 1)
    assert again.first_recent > 7
    assert again.claim(b, [7]) == set()
    a.close()
    b.close()


def test_unclaimed_recent_carried_to_the_next_change_set(acct):
    with acct.mailbox("INBOX") as first:
        first.claim_recent()
    a = acct.mailbox("INBOX")
    acct.deliver(msg(6))
    acct.deliver(msg(7))
    changes = read_changes(a, seen_modseq(a))
    assert changes.claim(a, [6]) == {6}
    assert changes.unclaimed() == {7}
    nxt = read_changes(a, seen_modseq(a), carry=changes.unclaimed())
    assert nxt.claim(a, [7]) == {7}
    a.close()
