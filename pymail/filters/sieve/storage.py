"""Per-user Sieve scripts on disk, laid out as Dovecot/Pigeonhole does, so sites can migrate.

    <mail_root>/<domain>/<local>/sieve/<name>.sieve   the scripts (sieve_dir = ~/sieve)
    <mail_root>/<domain>/<local>/.dovecot.sieve      symlink to the active one (sieve = ~/.dovecot.sieve)

where ``<mail_root>/<domain>/<local>/Maildir`` is the user's maildir (pymail.store). Writes go to
a temporary file, are fsynced and renamed, so a reader sees the old or the new script, whole.
All methods are blocking (run them from a thread).
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from pymail.durable import sync_path
from pymail.filters.sieve.interpreter import compile_script
from pymail.filters.sieve.parser import SieveError

SUFFIX = ".sieve"
ACTIVE_LINK = ".dovecot.sieve"
MAX_NAME = 128
MAX_SCRIPTS = 50
MAX_SCRIPT_SIZE = 256 * 1024


class ScriptStoreError(Exception):
    """A request the store refuses; ``code`` is the ManageSieve response code (RFC 5804 §1.3)."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


def check_name(name: str) -> str:
    """RFC 5804 §1.6: script names are UTF-8 without control characters; pymail also bars "/"."""
    if not name or len(name) > MAX_NAME:
        raise ScriptStoreError(f"script name must be 1 to {MAX_NAME} characters", "")
    if name.startswith(".") or "/" in name or "\\" in name or any(
            unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise ScriptStoreError(f"bad script name {name!r}", "")
    return unicodedata.normalize("NFC", name)


class ScriptStore:
    def __init__(self, home: str | os.PathLike):
        self.home = Path(home)
        self.dir = self.home / "sieve"
        self.link = self.home / ACTIVE_LINK

    @classmethod
    def for_maildir(cls, maildir_root: str | os.PathLike) -> "ScriptStore":
        """From the user's maildir path (``Account.root``): scripts live next to it."""
        return cls(Path(maildir_root).parent)

    def _path(self, name: str) -> Path:
        return self.dir / (check_name(name) + SUFFIX)

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name[: -len(SUFFIX)] for p in self.dir.iterdir()
                      if p.name.endswith(SUFFIX) and not p.name.startswith("."))

    def active_name(self) -> str | None:
        try:
            target = os.readlink(self.link)
        except OSError:
            return None
        name = os.path.basename(target)
        if not name.endswith(SUFFIX) or not (self.dir / name).is_file():
            return None
        return name[: -len(SUFFIX)]

    def list(self) -> list[tuple[str, bool]]:
        active = self.active_name()
        return [(name, name == active) for name in self.names()]

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def get(self, name: str) -> str:
        try:
            return self._path(name).read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise ScriptStoreError(f"there is no script named {name!r}", "NONEXISTENT") from None

    def active_script(self) -> str | None:
        name = self.active_name()
        if name is None:
            return None
        try:
            return self.get(name)
        except ScriptStoreError:
            return None

    def check_space(self, name: str, size: int) -> None:
        """RFC 5804 §2.3 HAVESPACE."""
        if size > MAX_SCRIPT_SIZE:
            raise ScriptStoreError(f"scripts are limited to {MAX_SCRIPT_SIZE} bytes", "QUOTA/MAXSIZE")
        if not self.exists(name) and len(self.names()) >= MAX_SCRIPTS:
            raise ScriptStoreError(f"at most {MAX_SCRIPTS} scripts per user", "QUOTA/MAXSCRIPTS")

    def put(self, name: str, text: str) -> None:
        """Validate (SieveError with the line on a bad script) and store, replacing any old one."""
        path = self._path(name)
        data = text.encode("utf-8")
        self.check_space(name, len(data))
        compile_script(text)
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{path.name}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        sync_path(self.dir)

    def delete(self, name: str) -> None:
        path = self._path(name)
        if self.active_name() == check_name(name):
            raise ScriptStoreError("the active script cannot be deleted", "ACTIVE")
        try:
            path.unlink()
        except FileNotFoundError:
            raise ScriptStoreError(f"there is no script named {name!r}", "NONEXISTENT") from None
        sync_path(self.dir)

    def rename(self, old: str, new: str) -> None:
        src, dst = self._path(old), self._path(new)
        if not src.is_file():
            raise ScriptStoreError(f"there is no script named {old!r}", "NONEXISTENT")
        if dst.exists():
            raise ScriptStoreError(f"a script named {new!r} exists", "ALREADYEXISTS")
        was_active = self.active_name() == check_name(old)
        os.rename(src, dst)
        sync_path(self.dir)
        if was_active:
            self.set_active(new)

    def set_active(self, name: str) -> None:
        """Activate ``name``; an empty name deactivates (RFC 5804 §2.8)."""
        if not name:
            try:
                self.link.unlink()
            except FileNotFoundError:
                return
            sync_path(self.home)
            return
        path = self._path(name)
        if not path.is_file():
            raise ScriptStoreError(f"there is no script named {name!r}", "NONEXISTENT")
        try:
            compile_script(path.read_text("utf-8"))
        except SieveError as exc:
            raise ScriptStoreError(f"script {name!r} is not valid: {exc}", "") from None
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.home / f".{ACTIVE_LINK}.tmp{os.getpid()}"
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        os.symlink(os.path.join("sieve", path.name), tmp)
        os.replace(tmp, self.link)
        sync_path(self.home)

