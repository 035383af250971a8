"""resolve_recipient: aliases, catch-all, sub-addressing, forwarding, case, loops."""

from __future__ import annotations

import pytest

from pymail.directory import Directory, Resolution


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    d = Directory(tmp_path_factory.mktemp("resolve") / "dir.sqlite", bcrypt_rounds=4)
    d.create_schema()
    for dom in ("example.com", "example.org", "other.example"):
        d.add_domain(dom)
    for user in ("bob@example.com", "ann@example.com", "bob+work@example.com", "carl@example.org"):
        d.add_user(user, "pw")
    d.set_enabled("carl@example.org", False)
    d.add_alias("sales@example.com", ["bob@example.com", "ann@example.com", "rep@partner.net"])
    d.add_alias("team@example.com", ["sales@example.com", "carl@example.org"])  # alias of an alias
    d.add_alias("ann@example.com", ["ann@example.com", "ann@home.net"])  # keep a copy and forward
    d.add_alias("loop1@example.com", ["loop2@example.com", "bob@example.com"])
    d.add_alias("loop2@example.com", ["loop1@example.com"])
    d.add_alias("dangling@example.com", ["gone@example.com"])
    d.add_alias("fwd@example.com", ["someone@elsewhere.net"])
    d.add_alias("@example.org", ["carl@example.org"])
    d.add_alias("@other.example", ["postmaster@example.com"])  # catch-all to a dangling target
    yield d
    d.close()


CASES = [
    ("bob@example.com", Resolution(["bob@example.com"], [], None)),
    ("BOB@Example.COM", Resolution(["bob@example.com"], [], None)),
    ("<bob@example.com>", Resolution(["bob@example.com"], [], None)),
    ("bob+lists@example.com", Resolution(["bob@example.com"], [], "lists")),
    ("Bob+Lists@example.com", Resolution(["bob@example.com"], [], "Lists".lower())),
    ("bob+work@example.com", Resolution(["bob+work@example.com"], [], None)),  # exact match first
    ("bob+@example.com", Resolution(["bob@example.com"], [], "")),
    ("sales@example.com", Resolution(["bob@example.com", "ann@example.com"], ["ann@home.net", "rep@partner.net"], None)),
    ("sales+q4@example.com", Resolution(["bob@example.com", "ann@example.com"], ["ann@home.net", "rep@partner.net"], "q4")),
    ("team@example.com", Resolution(["bob@example.com", "ann@example.com", "carl@example.org"], ["ann@home.net", "rep@partner.net"], None)),
    ("ann@example.com", Resolution(["ann@example.com"], ["ann@home.net"], None)),
    ("loop1@example.com", Resolution(["bob@example.com"], [], None)),
    ("loop2@example.com", Resolution(["bob@example.com"], [], None)),
    ("fwd@example.com", Resolution([], ["someone@elsewhere.net"], None)),
    ("carl@example.org", Resolution(["carl@example.org"], [], None)),  # disabled still receives
    ("anything@example.org", Resolution(["carl@example.org"], [], None)),  # catch-all
    ("x+y@EXAMPLE.org", Resolution(["carl@example.org"], [], None)),
]


@pytest.mark.parametrize("address,expected", CASES, ids=[c[0] for c in CASES])
def test_resolves(directory, address, expected):
    assert directory.resolve_recipient(address) == expected


@pytest.mark.parametrize("address", [
    "nobody@example.com",  # no user, no alias, no catch-all in example.com
    "nobody+tag@example.com",
    "dangling@example.com",  # alias to a local address that does not exist
    "who@other.example",  # catch-all that leads nowhere
    "bob@example.net",  # not a local domain
    "bob",
    "",
    "@example.com",
    "bo b@example.com",
])
def test_unknown_recipients_are_none(directory, address):
    assert directory.resolve_recipient(address) is None


def test_catch_all_does_not_capture_existing_users(directory):
    directory.add_alias("@example.com", "ann@example.com")
    try:
        assert directory.resolve_recipient("bob@example.com").local_users == ["bob@example.com"]
        assert directory.resolve_recipient("new@example.com").local_users == ["ann@example.com"]
    finally:
        directory.delete_alias("@example.com")


def test_unicode_domain_matches_both_spellings(tmp_path):
    d = Directory(tmp_path / "d.sqlite", bcrypt_rounds=4)
    d.create_schema()
    d.add_domain("bücher.de")
    d.add_user("info@bücher.de", "pw")
    assert d.resolve_recipient("info@xn--bcher-kva.de").local_users == ["info@xn--bcher-kva.de"]
    assert d.resolve_recipient("INFO@BÜCHER.DE").local_users == ["info@xn--bcher-kva.de"]
    d.close()
