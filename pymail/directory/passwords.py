"""Password hashing and verification.

New passwords are hashed with bcrypt and stored with Dovecot's scheme prefix
(``{BLF-CRYPT}$2b$...``) so the column reads the same way Dovecot's passdb would. Hashes imported
from Dovecot passwd-files are verified as they are:

- ``{BLF-CRYPT}$2y$...``, ``{BLF-CRYPT}$2b$...`` and bare ``$2a$/$2b$/$2y$`` (bcrypt);
- ``{SHA512-CRYPT}$6$...`` and bare ``$6$...`` (SHA-512 crypt, via passlib's ``sha512_crypt``).

bcrypt looks only at the first 72 bytes of a password; the ``bcrypt`` package refuses longer
ones. pymail refuses them too, as every other failure: ``check_password`` returns False after the
same one bcrypt run that a wrong password costs (see ``Directory.verify_password``).
"""

from __future__ import annotations

import warnings

import bcrypt

MAX_PASSWORD_BYTES = 72  # bcrypt's limit on key material
DEFAULT_ROUNDS = 12

_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


def to_bytes(password: str | bytes) -> bytes:
    return password if isinstance(password, bytes) else password.encode("utf-8", "surrogateescape")


def hash_password(password: str | bytes, rounds: int = DEFAULT_ROUNDS) -> str:
    """A new ``{BLF-CRYPT}`` bcrypt hash; raises ValueError for an empty or too long password."""
    raw = to_bytes(password)
    if not raw:
        raise ValueError("the password is empty")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise ValueError(f"the password is longer than {MAX_PASSWORD_BYTES} bytes (bcrypt's limit)")
    return "{BLF-CRYPT}" + bcrypt_hashpw(raw, bcrypt.gensalt(rounds)).decode("ascii")


def split_scheme(stored: str) -> tuple[str, str]:
    """``("BLF-CRYPT", "$2y$...")`` from a stored hash; a bare hash gets its scheme guessed."""
    if stored.startswith("{"):
        end = stored.find("}")
        if end > 1:
            return stored[1:end].upper(), stored[end + 1 :]
    if stored.startswith(_BCRYPT_PREFIXES):
        return "BLF-CRYPT", stored
    if stored.startswith("$6$"):
        return "SHA512-CRYPT", stored
    return "", stored


def is_supported(stored: str) -> bool:
    """True when ``check_password`` can verify this stored hash (used to vet imports)."""
    scheme, value = split_scheme(stored)
    if scheme == "BLF-CRYPT":
        return value.startswith(_BCRYPT_PREFIXES) and len(value) == 60
    if scheme == "SHA512-CRYPT":
        return value.startswith("$6$")
    return False


def is_legacy(stored: str) -> bool:
    """True for hashes pymail re-hashes with bcrypt after the next successful login."""
    return split_scheme(stored)[0] != "BLF-CRYPT"


def check_password(password: bytes, stored: str) -> bool:
    """Verify ``password`` (already checked to be at most 72 bytes) against a stored hash."""
    scheme, value = split_scheme(stored)
    if scheme == "BLF-CRYPT":
        try:
            return bcrypt_checkpw(password, value.encode("ascii"))
        except ValueError:  # a malformed stored hash never matches
            return False
    if scheme == "SHA512-CRYPT" and value.startswith("$6$"):
        try:
            return _sha512_crypt().verify(password, value)
        except ValueError:
            return False
    return False


def _sha512_crypt():
    # passlib imports the stdlib ``crypt`` module (deprecated in 3.11, gone in 3.13, where passlib
    # falls back to its own implementation); its DeprecationWarning is noise for pymail.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from passlib.hash import sha512_crypt
    return sha512_crypt


# The two bcrypt entry points, kept as module functions so tests can count calls: failures must
# cost the same whether the account exists or not.
def bcrypt_hashpw(password: bytes, salt: bytes) -> bytes:
    return bcrypt.hashpw(password, salt)


def bcrypt_checkpw(password: bytes, hashed: bytes) -> bool:
    return bcrypt.checkpw(password, hashed)
