"""Password schemes (bcrypt, Dovecot's {BLF-CRYPT}/{SHA512-CRYPT}) and equal work on failure."""

from __future__ import annotations

import bcrypt
import pytest

from pymail.directory import Directory, DirectoryError, passwords

# Test vectors from crypt_blowfish's test suite and Drepper's SHA-crypt specification.
BCRYPT_2Y = "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"  # "U*U"
BCRYPT_2A = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"  # "U*U"
SHA512 = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"  # "Hello world!"


@pytest.fixture
def directory(tmp_path):
    d = Directory(tmp_path / "dir.sqlite", bcrypt_rounds=4)
    d.create_schema()
    d.add_domain("example.com")
    yield d
    d.close()


@pytest.mark.parametrize("stored,password", [
    ("{BLF-CRYPT}" + BCRYPT_2Y, "U*U"),
    (BCRYPT_2Y, "U*U"),
    (BCRYPT_2A, "U*U"),
    ("{blf-crypt}" + BCRYPT_2A, "U*U"),
    ("{SHA512-CRYPT}" + SHA512, "Hello world!"),
    (SHA512, "Hello world!"),
])
def test_imported_hashes_verify(directory, stored, password):
    directory.import_user("bob@example.com", stored)
    assert directory.verify_password("bob@example.com", "wrong") is None
    assert directory.verify_password("bob@example.com", password) == "bob@example.com"


def test_legacy_hashes_are_upgraded_to_bcrypt_after_a_good_login(directory):
    directory.import_user("bob@example.com", "{SHA512-CRYPT}" + SHA512)
    assert directory.get_user("bob@example.com").password_scheme == "SHA512-CRYPT"
    assert directory.verify_password("bob@example.com", "Hello world!")
    assert directory.get_user("bob@example.com").password_scheme == "BLF-CRYPT"
    assert directory.verify_password("bob@example.com", "Hello world!") == "bob@example.com"


def test_unsupported_hashes_are_refused_at_import(directory):
    for stored in ("{PLAIN}secret", "{MD5-CRYPT}$1$abc$def", "$1$abc$def", "{BLF-CRYPT}$2y$05$short", "plain"):
        with pytest.raises(DirectoryError, match="unsupported password hash"):
            directory.import_user("bob@example.com", stored)


def test_new_hashes_are_bcrypt_with_dovecot_prefix():
    stored = passwords.hash_password("pässword", rounds=4)
    assert stored.startswith("{BLF-CRYPT}$2b$04$")
    assert passwords.check_password("pässword".encode(), stored)
    assert not passwords.check_password(b"password", stored)


@pytest.fixture
def bcrypt_calls(monkeypatch):
    calls = []
    real = passwords.bcrypt_checkpw

    def counting(password, hashed):
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(passwords, "bcrypt_checkpw", counting)
    return calls


def test_every_failure_costs_exactly_one_bcrypt(directory, bcrypt_calls):
    directory.add_user("bob@example.com", "right")
    directory.import_user("old@example.com", "{SHA512-CRYPT}" + SHA512)
    directory.add_user("off@example.com", "right")
    directory.set_enabled("off@example.com", False)
    attempts = {
        "unknown user": ("nobody@example.com", "right"),
        "unknown domain": ("bob@example.net", "right"),
        "not an address": ("bob", "right"),
        "undecodable name": (b"\xff\xfe@example.com", "right"),
        "bad password": ("bob@example.com", "wrong"),
        "empty password": ("bob@example.com", ""),
        "too long (73 bytes)": ("bob@example.com", "r" * 73),
        "too long, right prefix": ("bob@example.com", "right" + "x" * 70),
        "disabled user": ("off@example.com", "right"),
        "legacy hash, bad password": ("old@example.com", "wrong"),
    }
    for reason, (user, pw) in attempts.items():
        bcrypt_calls.clear()
        assert directory.verify_password(user, pw) is None, reason
        assert len(bcrypt_calls) == 1, reason
    bcrypt_calls.clear()
    assert directory.verify_password("bob@example.com", "right") == "bob@example.com"
    assert len(bcrypt_calls) == 1


def test_dummy_hash_has_the_configured_cost(directory, bcrypt_calls):
    directory.verify_password("nobody@example.com", "x")
    assert bcrypt_calls[0].startswith(b"$2b$04$")


def test_password_over_72_bytes_never_matches_its_prefix(directory):
    directory.import_user("bob@example.com", "{BLF-CRYPT}" + passwords.bcrypt_hashpw(b"a" * 72, bcrypt.gensalt(4)).decode())
    assert directory.verify_password("bob@example.com", "a" * 72) == "bob@example.com"
    assert directory.verify_password("bob@example.com", "a" * 73) is None
