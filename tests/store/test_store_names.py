"""Mailbox names: modified UTF-7 (RFC 3501 §5.1.3) and refusal of unsafe names."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings, strategies as st

from pymail.store import StoreError
from pymail.store import names as nm


@pytest.mark.parametrize("text,wire", [
    ("INBOX", "INBOX"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("A&B", "A&-B"),
    ("😀", "&2D3eAA-"),
])
def test_utf7_known_vectors(text, wire):
    assert nm.encode_utf7(text) == wire
    assert nm.decode_utf7(wire) == text
    assert nm.decode_utf7(wire.encode()) == text


@settings(deadline=None, max_examples=200)     # no per-example deadline on a busy CI machine
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_utf7_round_trip(text):
    assert nm.decode_utf7(nm.encode_utf7(text)) == text


@pytest.mark.parametrize("bad", ["&Jjo", "&AGE-", "&*-", "a\x01b", "&ZeVnLIqe"])
def test_utf7_malformed_refused(bad):
    with pytest.raises(StoreError) as e:
        nm.decode_utf7(bad)
    assert e.value.code == "BADNAME"


@pytest.mark.parametrize("bad", [
    "", "/abs", "a//b", "trail/", "..", "../etc", "a/../b", ".hidden", "a.b", "nul\x00x",
    "ctl\x07", "del\x7f", "back\\slash", "~user", "a/" * 40 + "b", "x" * 300,
])
def test_unsafe_names_refused(bad):
    with pytest.raises(StoreError) as e:
        nm.normalize(bad)
    assert e.value.code == "BADNAME"


def test_inbox_case_insensitive_and_dirnames():
    assert nm.normalize("inbox") == "INBOX"
    assert nm.normalize("Inbox/Sub") == "INBOX/Sub"
    assert nm.to_dirname("INBOX") == ""
    assert nm.to_dirname("Work/2024") == ".Work.2024"
    assert nm.from_dirname(".Work.2024") == "Work/2024"
    assert nm.from_dirname(".Entw&APw-rfe") == "Entwürfe"
    assert nm.from_dirname("..pymail-deleted.1") is None
    assert nm.from_dirname("cur") is None


def test_account_refuses_bad_names_and_stays_inside_root(account):
    for bad in ["../../escape", "/etc/passwd", "a/../../b", "x\x00y"]:
        with pytest.raises(StoreError) as e:
            account.create_mailbox(bad)
        assert e.value.code == "BADNAME"
        with pytest.raises(StoreError):
            account.deliver(b"x", mailbox=bad)
    parent = os.path.dirname(account.root)
    assert sorted(os.listdir(parent)) == ["Maildir"]
