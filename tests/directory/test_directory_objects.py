"""Domains, users, quotas, aliases and per-user settings against a real SQLite file."""

from __future__ import annotations

import pytest

from pymail.directory import KEEP, AliasRecord, Directory, DirectoryError


@pytest.fixture
def directory(tmp_path):
    d = Directory(tmp_path / "dir.sqlite", bcrypt_rounds=4)
    d.create_schema()
    d.add_domain("example.com")
    yield d
    d.close()


def test_domains_are_normalised_and_unique(directory):
    assert directory.add_domain("Example.ORG.") == "example.org"
    assert directory.add_domain("bücher.de") == "xn--bcher-kva.de"
    assert directory.list_domains() == ["example.com", "example.org", "xn--bcher-kva.de"]
    assert directory.is_local_domain("EXAMPLE.org")
    assert directory.is_local_domain("BÜCHER.de")
    assert not directory.is_local_domain("example.net")
    assert not directory.is_local_domain("not a domain")
    with pytest.raises(DirectoryError, match="domain example.org already exists"):
        directory.add_domain("example.org")


@pytest.mark.parametrize("bad", ["", "localhost", "exa mple.com", "-x.com", "a..b", "x" * 64 + ".com", "ex_ample.com"])
def test_bad_domain_names_are_refused(directory, bad):
    with pytest.raises(DirectoryError, match="domain name"):
        directory.add_domain(bad)


def test_delete_domain_refuses_when_not_empty_unless_forced(directory):
    directory.add_user("bob@example.com", "pw")
    directory.add_alias("sales@example.com", "bob@example.com")
    directory.set_setting("bob@example.com", "spam.action", "junk")
    with pytest.raises(DirectoryError, match="still has 1 user"):
        directory.delete_domain("example.com")
    directory.delete_domain("EXAMPLE.com", force=True)
    assert directory.list_domains() == []
    assert directory.get_user("bob@example.com") is None
    assert directory.list_aliases() == []
    with pytest.raises(DirectoryError, match="no such domain example.com"):
        directory.delete_domain("example.com")


def test_user_lifecycle(directory):
    rec = directory.add_user("John.Doe@EXAMPLE.com", "s3cret", quota_bytes=10_000, quota_messages=50)
    assert rec.address == "john.doe@example.com"
    assert (rec.quota_bytes, rec.quota_messages, rec.enabled, rec.password_scheme) == (10_000, 50, True, "BLF-CRYPT")
    assert directory.get_user("JOHN.DOE@example.COM") == rec
    assert directory.get_user("nobody@example.com") is None
    assert directory.get_user("garbage") is None
    assert [u.address for u in directory.list_users()] == ["john.doe@example.com"]
    assert [u.address for u in directory.list_users("example.com")] == ["john.doe@example.com"]
    with pytest.raises(DirectoryError, match="already exists"):
        directory.add_user("john.doe@example.com", "other")
    directory.set_password("john.doe@example.com", "new")
    assert directory.verify_password("john.doe@example.com", "new") == "john.doe@example.com"
    assert directory.verify_password("john.doe@example.com", "s3cret") is None
    directory.delete_user("john.doe@example.com")
    assert directory.get_user("john.doe@example.com") is None
    with pytest.raises(DirectoryError, match="no such user john.doe@example.com"):
        directory.delete_user("john.doe@example.com")


def test_user_errors(directory):
    with pytest.raises(DirectoryError, match="no such domain example.net"):
        directory.add_user("bob@example.net", "pw")
    with pytest.raises(DirectoryError, match="expected local@domain"):
        directory.add_user("bob", "pw")
    with pytest.raises(DirectoryError, match="empty local part"):
        directory.add_user("@example.com", "pw")
    with pytest.raises(DirectoryError, match="characters not allowed"):
        directory.add_user("bo b@example.com", "pw")
    with pytest.raises(DirectoryError, match="longer than 64 bytes"):
        directory.add_user("x" * 65 + "@example.com", "pw")
    with pytest.raises(DirectoryError, match="password is empty"):
        directory.add_user("bob@example.com", "")
    with pytest.raises(DirectoryError, match="longer than 72 bytes"):
        directory.add_user("bob@example.com", "é" * 37)
    with pytest.raises(DirectoryError, match="no such domain"):
        directory.list_users("example.net")
    with pytest.raises(DirectoryError, match="no such user"):
        directory.set_password("nobody@example.com", "x")
    assert directory.list_users() == []


def test_quota_changes(directory):
    directory.add_user("bob@example.com", "pw", quota_bytes=100)
    rec = directory.set_quota("bob@example.com", quota_messages=10)
    assert (rec.quota_bytes, rec.quota_messages) == (100, 10)
    rec = directory.set_quota("bob@example.com", quota_bytes=None, quota_messages=KEEP)
    assert (rec.quota_bytes, rec.quota_messages) == (None, 10)
    for bad in (0, -5, "10", True):
        with pytest.raises(DirectoryError, match="quota_bytes must be"):
            directory.set_quota("bob@example.com", quota_bytes=bad)
    big = 5 * 2**40  # more than 32 bits
    assert directory.set_quota("bob@example.com", quota_bytes=big).quota_bytes == big
    assert directory.get_user("bob@example.com").quota_bytes == big


def test_enable_disable(directory):
    directory.add_user("bob@example.com", "pw")
    directory.set_enabled("bob@example.com", False)
    assert directory.get_user("bob@example.com").enabled is False
    assert directory.verify_password("bob@example.com", "pw") is None
    directory.set_enabled("bob@example.com", True)
    assert directory.verify_password("bob@example.com", "pw") == "bob@example.com"


def test_aliases_one_to_many(directory):
    directory.add_user("bob@example.com", "pw")
    rec = directory.add_alias("Sales@Example.com", ["bob@example.com", "Ann@Partner.ORG"])
    assert rec == AliasRecord("sales@example.com", ("bob@example.com", "ann@partner.org"))
    rec = directory.add_alias("sales@example.com", ["carol@example.com", "bob@example.com"])
    assert rec.destinations == ("bob@example.com", "ann@partner.org", "carol@example.com")
    with pytest.raises(DirectoryError, match="already exists"):
        directory.add_alias("sales@example.com", "bob@example.com")
    directory.add_alias("@example.com", "bob@example.com")
    assert [a.source for a in directory.list_aliases()] == ["@example.com", "sales@example.com"]
    assert directory.delete_alias("sales@example.com", "carol@example.com") == 1
    assert directory.list_aliases("example.com")[1].destinations == ("bob@example.com", "ann@partner.org")
    assert directory.delete_alias("sales@example.com") == 2
    with pytest.raises(DirectoryError, match="no alias sales@example.com"):
        directory.delete_alias("sales@example.com")
    with pytest.raises(DirectoryError, match="no such domain example.net"):
        directory.add_alias("x@example.net", "bob@example.com")
    with pytest.raises(DirectoryError, match="bad address"):
        directory.add_alias("x@example.com", "not-an-address")
    with pytest.raises(DirectoryError, match="no destination"):
        directory.add_alias("x@example.com", [])


def test_user_settings_key_value(directory):
    directory.add_user("bob@example.com", "pw")
    directory.set_setting("bob@example.com", "spam.threshold", "5.0")
    directory.set_setting("bob@example.com", "spam.action", "junk")
    directory.set_setting("bob@example.com", "spam.action", "tag")
    assert directory.get_settings("bob@example.com") == {"spam.action": "tag", "spam.threshold": "5.0"}
    directory.set_setting("bob@example.com", "spam.action", None)
    assert directory.get_settings("bob@example.com") == {"spam.threshold": "5.0"}
    with pytest.raises(DirectoryError, match="bad setting name"):
        directory.set_setting("bob@example.com", "has space", "x")
    directory.delete_user("bob@example.com")
    directory.add_user("bob@example.com", "pw")
    assert directory.get_settings("bob@example.com") == {}


def test_two_directory_objects_share_one_file(tmp_path):
    a = Directory(tmp_path / "d.sqlite", bcrypt_rounds=4)
    a.create_schema()
    b = Directory(tmp_path / "d.sqlite", bcrypt_rounds=4)
    b.create_schema()
    a.add_domain("example.com")
    b.add_user("bob@example.com", "pw")
    assert a.verify_password("bob@example.com", "pw") == "bob@example.com"
    a.close()
    b.close()


def test_several_processes_write_one_sqlite_file(tmp_path):
    """WAL + busy_timeout: concurrent writers wait for each other instead of failing."""
    import subprocess
    import sys
    from pathlib import Path

    db = tmp_path / "shared.sqlite"
    d = Directory(db, bcrypt_rounds=4)
    d.create_schema()
    d.add_domain("example.com")
    code = ("import sys; from pymail.directory import Directory; d = Directory(sys.argv[1], bcrypt_rounds=4); "
            "n = sys.argv[2]; [d.add_user(f'u{n}-{i}@example.com', 'pw') for i in range(15)]; "
            "[d.set_setting(f'u{n}-{i}@example.com', 'k', str(i)) for i in range(15)]")
    root = str(Path(__file__).resolve().parents[2])
    procs = [subprocess.Popen([sys.executable, "-c", code, str(db), str(n)], stderr=subprocess.PIPE, text=True, cwd=root)
             for n in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    assert len(d.list_users()) == 60
    assert d.get_settings("u3-14@example.com") == {"k": "14"}
    d.close()
