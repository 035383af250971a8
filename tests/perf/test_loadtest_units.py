"""The harness's own parts: percentiles, sizes, users, dot-stuffing, the IMAP model's checks."""

from __future__ import annotations

import random
import time

import pytest

from pymail_loadtest.common import (Bounds, LoadError, ProtocolMismatch, SizeDistribution, check_loopback,
                                    load_users, make_message, parse_size, raise_fd_limit)
from pymail_loadtest.imap_client import MailboxModel
from pymail_loadtest.imap_load import OwnedModel, fetches_of, first_uidnext, parse_mix
from pymail_loadtest.maildir_data import make_maildir
from pymail_loadtest.smtp_client import dot_stuff
from pymail_loadtest.stats import Recorder, format_table, percentile


def test_percentile_nearest_rank():
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_sizes_and_distributions():
    assert parse_size("512") == 512 and parse_size("5k") == 5120 and parse_size("1M") == 1 << 20
    with pytest.raises(LoadError):
        parse_size("5x")
    dist = SizeDistribution.parse("1k:3,10k:1")
    rng = random.Random(3)
    picks = [dist.pick(rng) for _ in range(400)]
    assert set(picks) == {1024, 10240}
    assert 250 < picks.count(1024) < 350
    with pytest.raises(LoadError):
        SizeDistribution.parse("1k:0")


def test_generated_message_size_and_lines():
    msg = make_message(5000, random.Random(1))
    assert 5000 <= len(msg) < 5100
    assert all(len(line) <= 78 for line in msg.split(b"\r\n"))
    assert b"\r\n\r\n" in msg and b"\n" not in msg.replace(b"\r\n", b"")


def test_dot_stuffing():
    assert dot_stuff(b".a\n.b\r\nc") == b"..a\r\n..b\r\nc\r\n"


def test_users_file(tmp_path):
    f = tmp_path / "users"
    f.write_text("# comment\nalice@example.test:pw one\n\nbob@example.test pw2\n")
    users = load_users(str(f), ["carol@example.test:x"])
    assert [(u.name, u.password) for u in users] == [
        ("carol@example.test", "x"), ("alice@example.test", "pw one"), ("bob@example.test", "pw2")]
    with pytest.raises(LoadError):
        load_users(None, ["nopassword"])
    with pytest.raises(LoadError):
        load_users(str(tmp_path / "missing"))


def test_loopback_guard():
    check_loopback("127.0.0.1", False)
    check_loopback("::1", False)
    check_loopback("localhost", False)
    with pytest.raises(LoadError, match="not loopback"):
        check_loopback("192.0.2.7", False)
    check_loopback("192.0.2.7", True)


def test_bounds_count_and_time():
    b = Bounds(duration=60, count=3)
    assert [b.take() for _ in range(5)] == [True, True, True, False, False]
    assert b.expired()
    t = Bounds(duration=0.01)
    time.sleep(0.02)
    assert not t.take() and t.expired()


def test_fd_limit_raised():
    assert raise_fd_limit(1024) >= 1024


def test_model_rejects_shrinking_exists_and_moved_uids():
    m = MailboxModel()
    m.on_exists(3)
    m.on_fetch(1, "* 1 FETCH (UID 10 FLAGS (\\Seen))")
    m.on_fetch(3, "* 3 FETCH (UID 30 FLAGS ())")
    with pytest.raises(ProtocolMismatch, match="shrank"):
        m.on_exists(2)
    with pytest.raises(ProtocolMismatch, match="was UID 10"):
        m.on_fetch(1, "* 1 FETCH (UID 11)")
    with pytest.raises(ProtocolMismatch, match="not below"):
        m.on_fetch(2, "* 2 FETCH (UID 31)")
    with pytest.raises(ProtocolMismatch, match="outside"):
        m.on_fetch(4, "* 4 FETCH (UID 40)")
    m.on_expunge(1)
    assert m.uids == [None, 30] and m.seq_of(30) == 2
    with pytest.raises(ProtocolMismatch, match="outside"):
        m.on_expunge(3)


def test_owned_model_checks_flags_and_expunges():
    m = OwnedModel(group=2, position=0)
    m.first_uidnext = 100
    m.on_exists(2)
    m.on_fetch(1, "* 1 FETCH (UID 4 FLAGS ())")
    m.on_fetch(2, "* 2 FETCH (UID 5 FLAGS ())")
    assert m.owns(4) and not m.owns(5) and not m.owns(104)
    m.flagged[4] = True
    with pytest.raises(ProtocolMismatch, match="Flagged"):
        m.on_fetch(1, "* 1 FETCH (UID 4 FLAGS (\\Seen))")
    m.on_expunge(2)  # someone else's message: fine
    with pytest.raises(ProtocolMismatch, match="mine"):
        m.on_expunge(1)


def test_clients_of_a_user_share_one_ownership_baseline():
    """Client B selects after client A appended UID 201: B must not claim 201 (201 % 2 is its
    position) — A may expunge it, which B would report as a lost message."""
    shared: dict = {}
    a, b = OwnedModel(group=2, position=0), OwnedModel(group=2, position=1)
    a.first_uidnext = first_uidnext(shared, "u@x", 201)     # A's SELECT: UIDNEXT 201
    a.appended.add(201)
    b.first_uidnext = first_uidnext(shared, "u@x", 202)     # B's SELECT, after A's APPEND
    assert a.owns(201) and not b.owns(201) and b.owns(199)
    assert first_uidnext(shared, "v@x", 0) == 1             # another user, an empty mailbox


def test_a_store_reply_is_found_by_its_whole_uid():
    from types import SimpleNamespace as Line

    untagged = [Line(text="* 9 FETCH (UID 310 FLAGS (\\Flagged))"), Line(text="* 3 EXISTS"),
                Line(text="* 2 FETCH (FLAGS () UID 31)")]
    assert [r.text for r in fetches_of(untagged, 31)] == ["* 2 FETCH (FLAGS () UID 31)"]
    assert [r.text for r in fetches_of(untagged, 310)] == ["* 9 FETCH (UID 310 FLAGS (\\Flagged))"]
    assert fetches_of(untagged[:2], 31) == [] and fetches_of(untagged, 3) == []


def test_mix_parsing():
    assert parse_mix("fetch_flags=2,idle") == {"fetch_flags": 2.0, "idle": 1.0}
    with pytest.raises(LoadError, match="unknown"):
        parse_mix("fly=1")


def test_table_lists_every_operation():
    rec = Recorder()
    rec.record("retr", 0.002)
    rec.error("cycle", "boom")
    rec.finish()
    table = format_table(rec.summary("pop3", {}))
    assert "retr" in table and "cycle" in table and "error: cycle: boom" in table


def test_make_maildir_names_and_sizes(tmp_path):
    box = make_maildir(tmp_path, "u@example.test", 25)
    files = sorted((box / "cur").iterdir())
    assert len(files) == 25 and box == tmp_path / "example.test" / "u" / "Maildir"
    for f in files:
        size = int(f.name.split(",S=")[1].split(",")[0])
        assert size == f.stat().st_size
        assert b"\r\n" not in f.read_bytes()
