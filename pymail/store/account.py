"""Store and Account: where a user's maildir lives and the folder-level operations.

Layout (Maildir++, as Dovecot's default maildir layout)::

    <mail_root>/<domain>/<local>/Maildir/          INBOX (tmp/ new/ cur/ dovecot-uidlist ...)
    <mail_root>/<domain>/<local>/Maildir/.Sent/    folder "Sent"   (+ maildirfolder marker)
    <mail_root>/<domain>/<local>/Maildir/.Work.2024/   folder "Work/2024"
    .../Maildir/subscriptions                      one subscribed name per line
    .../Maildir/maildirsize                        quota accounting (quota.py)
    .../Maildir/pymail-special-use                 "<name>\\t<\\Use>" lines

The index cache of a folder is ``pymail-index.sqlite`` inside the folder, or under
``index_root/<domain>/<local>/<folder dir name or INBOX>/`` when ``index_root`` is set.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3

from pymail.store.atomic import replace_file
from pymail.store import names as nm
from pymail.store.dotlock import DotLock
from pymail.store.errors import (ALREADYEXISTS, BADNAME, NONEXISTENT, NOPERM, StoreError)
from pymail.store import keywords as kw
from pymail.store.filename import MAX_KEYWORDS
from pymail.store.folder import Folder
from pymail.store.index import FILE_NAME as INDEX_FILE
from pymail.store.index import Index, empty_index_bytes
from pymail.store.sync import fine_grained
from pymail.store.cache import parsed_row
from pymail.store.mailbox import Mailbox, normalize_flags
from pymail.store.quota import Quota
from pymail.store.types import DeliveryResult, ImportResult, MailboxInfo

SPECIAL_USE = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk",
               "Archive": "\\Archive"}
VALID_SPECIAL_USE = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent",
                     "\\Trash", "\\Important"}   # RFC 6154 §2, RFC 8457
SPECIAL_USE_FILE = "pymail-special-use"
SUBSCRIPTIONS_FILE = "subscriptions"


def split_address(address: str) -> tuple[str, str]:
    """'Local@Example.COM' → ('Local', 'example.com'); refuses anything path-like."""
    if not isinstance(address, str) or address.count("@") != 1:
        raise StoreError(BADNAME, "user address must be local@domain")
    local, domain = address.split("@")
    domain = domain.lower()
    for part in (local, domain):
        if (not part or part in (".", "..") or part.startswith(".") or "/" in part
                or "\\" in part or any(ord(c) < 0x20 or ord(c) == 0x7F for c in part)
                or len(part) > 255):
            raise StoreError(BADNAME, "user address cannot name a mail directory")
    return local, domain


class Store:
    def __init__(self, mail_root, index_root=None, fsync: bool = True):
        self.mail_root = os.path.abspath(os.fspath(mail_root))
        self.index_root = None if index_root is None else os.path.abspath(os.fspath(index_root))
        self.fsync = fsync

    def account(self, address: str, quota_bytes: int | None = None,
                quota_messages: int | None = None) -> "Account":
        return Account(self, address, quota_bytes, quota_messages)

    def prepare(self) -> None:
        """Once per process, before serving: the work a first mailbox open would otherwise
        do inside a client's command — the empty index file new indexes are copied from, and
        the probe of the mail filesystem's timestamps (``sync.fine_grained``)."""
        empty_index_bytes()
        for root in (self.mail_root, self.index_root):
            if root is not None and os.path.isdir(root):
                fine_grained(root)


class Account:
    def __init__(self, store: Store, address: str, quota_bytes=None, quota_messages=None):
        self.store = store
        self.address = address
        local, domain = split_address(address)
        self.root = os.path.join(store.mail_root, domain, local, "Maildir")
        self._index_base = (None if store.index_root is None
                            else os.path.join(store.index_root, domain, local))
        self._quota = Quota(self.root, quota_bytes, quota_messages, store.fsync)

    # -- folders ------------------------------------------------------------------------------

    def _folder(self, name: str) -> Folder:
        dirname = nm.to_dirname(name)
        path = os.path.join(self.root, dirname) if dirname else self.root
        return Folder(path, self.root, self.store.fsync)

    def _folder_for(self, name: str) -> Folder:
        folder = self._folder(name)
        if not folder.exists():
            raise StoreError(NONEXISTENT, f"mailbox {name} does not exist")
        return folder

    def _index_path(self, name: str) -> str:
        dirname = nm.to_dirname(name)
        if self._index_base is None:
            return os.path.join(self._folder(name).path, INDEX_FILE)
        return os.path.join(self._index_base, dirname or "INBOX", INDEX_FILE)

    def ensure(self) -> None:
        """Create the maildir and the special-use folders (subscribed) if missing.  Cheap when
        all exist; a folder the user unsubscribed stays unsubscribed."""
        inbox = self._folder("INBOX")
        if not inbox.exists():
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            inbox.create(is_subfolder=False)
            self.subscribe("INBOX")
        for name, use in SPECIAL_USE.items():
            folder = self._folder(name)
            if not folder.exists():
                folder.create(is_subfolder=True)
                self._set_special_use(name, use)
                self.subscribe(name)

    def _require_root(self) -> None:
        if not os.path.isdir(os.path.join(self.root, "cur")):
            raise StoreError(NONEXISTENT, "the account has no maildir yet")

    def list_mailboxes(self) -> list[MailboxInfo]:
        self._require_root()
        names = ["INBOX"]
        for entry in os.listdir(self.root):
            name = nm.from_dirname(entry)
            if name is not None and name != "INBOX" and \
                    os.path.isdir(os.path.join(self.root, entry, "cur")):
                names.append(name)
        names.sort(key=lambda n: (n != "INBOX", n))
        subs = self._read_subscriptions()
        uses = self._read_special_use()
        present = set(names)
        out = []
        for name in names:
            prefix = name + "/"
            has_children = any(other.startswith(prefix) for other in present)
            out.append(MailboxInfo(name, uses.get(name), name in subs, has_children))
        return out

    def create_mailbox(self, name: str, special_use: str | None = None) -> None:
        name = nm.normalize(name)
        if special_use is not None and special_use not in VALID_SPECIAL_USE:
            raise StoreError(BADNAME, f"unknown special-use attribute {special_use}")
        self._require_root()
        folder = self._folder(name)
        if name == "INBOX" or folder.exists():
            raise StoreError(ALREADYEXISTS, f"mailbox {name} already exists")
        folder.create(is_subfolder=True)
        if special_use:
            self._set_special_use(name, special_use)

    def delete_mailbox(self, name: str) -> None:
        name = nm.normalize(name)
        if name == "INBOX":
            raise StoreError(NOPERM, "INBOX cannot be deleted")
        folder = self._folder_for(name)
        trash = os.path.join(self.root, f"..pymail-deleted.{random.getrandbits(64):x}")
        os.rename(folder.path, trash)       # atomic: the folder is gone for everyone at once
        shutil.rmtree(trash, ignore_errors=True)
        if self._index_base is not None:
            shutil.rmtree(os.path.dirname(self._index_path(name)), ignore_errors=True)
        self._set_special_use(name, None)
        self._quota.recalculate()

    def rename_mailbox(self, old: str, new: str) -> None:
        old, new = nm.normalize(old), nm.normalize(new)
        self._folder_for(old)                    # StoreError(NONEXISTENT) when missing
        if new == "INBOX" or self._folder(new).exists():
            raise StoreError(ALREADYEXISTS, f"mailbox {new} already exists")
        if new.startswith(old + "/"):
            raise StoreError(BADNAME, "a mailbox cannot be moved into itself")
        if old == "INBOX":
            # RFC 3501 §6.3.5: renaming INBOX moves its messages; INBOX stays, empty.
            self.create_mailbox(new)
            with self.mailbox("INBOX") as box:
                box.move(box.uids(), new)
            return
        children = [info.name for info in self.list_mailboxes()
                    if info.name.startswith(old + "/")]
        moves = [(old, new)] + [(c, new + c[len(old):]) for c in children]
        for a, b in moves:
            nm.normalize(b)
        uses = self._read_special_use()
        for a, b in moves:
            os.rename(self._folder(a).path, self._folder(b).path)
            if self._index_base is not None:
                ia, ib = os.path.dirname(self._index_path(a)), os.path.dirname(self._index_path(b))
                if os.path.isdir(ia):
                    os.makedirs(os.path.dirname(ib), exist_ok=True)
                    os.rename(ia, ib)
            if a in uses:
                self._set_special_use(a, None)
                self._set_special_use(b, uses[a])

    def mailbox(self, name: str) -> Mailbox:
        name = nm.normalize(name)
        folder = self._folder_for(name)
        return Mailbox(self, name, folder, self._index_path(name))

    # -- subscriptions and special use -------------------------------------------------------

    def _read_subscriptions(self) -> set[str]:
        try:
            with open(os.path.join(self.root, SUBSCRIPTIONS_FILE), "rb") as f:
                lines = f.read().decode("utf-8", "replace").split("\n")
        except FileNotFoundError:
            return set()
        out = set()
        v2 = lines and lines[0].startswith("V\t")
        for line in lines[1:] if v2 else lines:
            if not line:
                continue
            # Dovecot ≥2.3 ("V\t2") separates levels with TAB; older files use the
            # storage name ("Work.2024", modified UTF-7).
            parts = line.split("\t") if v2 else line.split(".")
            try:
                out.add(nm.normalize("/".join(parts if v2 else [nm.decode_utf7(p) for p in parts])))
            except StoreError:
                continue
        return out

    def _write_subscriptions(self, subs: set[str]) -> None:
        path = os.path.join(self.root, SUBSCRIPTIONS_FILE)
        lines = "".join(".".join(nm.encode_utf7(p) for p in s.split("/")) + "\n"
                        for s in sorted(subs))
        replace_file(path, lines.encode("ascii"), self.store.fsync)

    def subscribe(self, name: str) -> None:
        name = nm.normalize(name)
        with DotLock(os.path.join(self.root, SUBSCRIPTIONS_FILE), timeout=30):
            subs = self._read_subscriptions()
            if name not in subs:
                self._write_subscriptions(subs | {name})

    def unsubscribe(self, name: str) -> None:
        name = nm.normalize(name)
        with DotLock(os.path.join(self.root, SUBSCRIPTIONS_FILE), timeout=30):
            subs = self._read_subscriptions()
            if name in subs:
                self._write_subscriptions(subs - {name})

    def _read_special_use(self) -> dict[str, str]:
        try:
            with open(os.path.join(self.root, SPECIAL_USE_FILE), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return {}
        out = {}
        for line in text.split("\n"):
            name, sep, use = line.partition("\t")
            if sep and use in VALID_SPECIAL_USE:
                out[name] = use
        return out

    def _set_special_use(self, name: str, use: str | None) -> None:
        path = os.path.join(self.root, SPECIAL_USE_FILE)
        with DotLock(path, timeout=30):
            uses = self._read_special_use()
            if use is None:
                if uses.pop(name, None) is None:
                    return
            else:
                uses[name] = use
            data = "".join(f"{n}\t{u}\n" for n, u in sorted(uses.items())).encode("utf-8")
            replace_file(path, data, self.store.fsync)

    # -- delivery and quota ------------------------------------------------------------------

    def deliver(self, source, mailbox: str = "INBOX", flags=(), internal_date=None) -> DeliveryResult:
        """Store one message; returns only after it is on disk (fsync) with its UID."""
        name = nm.normalize(mailbox)
        return self._deliver_to(name, self._folder_for(name), source, flags, internal_date)

    def _deliver_to(self, name: str, folder: Folder, source, flags, internal_date) -> DeliveryResult:
        flags = normalize_flags(flags)
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._quota.check(len(source), 1)
        tmp = folder.write_tmp(source, internal_date)
        try:
            # check, commit and count as one step (quota.py: exact under concurrency)
            with self._quota.locked():
                self._quota.check(tmp.size, 1)
                uids, _ = folder.commit([(tmp, flags)])
                self._quota.add(tmp.size, 1)
        except BaseException:
            try:
                os.unlink(tmp.path)
            except FileNotFoundError:
                pass
            raise
        self._cache_parse(name, folder, uids[0], source)
        return DeliveryResult(name, uids[0], tmp.vsize)

    def _cache_parse(self, name: str, folder: Folder, uid: int, source) -> None:
        """Fill the parse cache at delivery when the mailbox has an index (best effort: a
        failure only means the message is parsed on first access instead)."""
        index_path = self._index_path(name)
        if not isinstance(source, (bytes, bytearray, memoryview)) or not os.path.exists(index_path):
            return
        try:
            row = parsed_row(bytes(source))
            index = Index(index_path)
            try:
                with index.write() as db:
                    db.execute("INSERT OR REPLACE INTO parsed (uid, envelope, body, bodystructure,"
                               " header) VALUES (?,?,?,?,?)", (uid, *row))
            finally:
                index.close()
        except (sqlite3.Error, OSError, ValueError, IndexError, RecursionError):
            return

    def quota(self) -> tuple[int, int]:
        """(used messages, used bytes)."""
        return self._quota.usage()

    def quota_limits(self) -> tuple[int | None, int | None]:
        """(byte limit, message limit) as passed to Store.account (None = unlimited)."""
        return self._quota.quota_bytes, self._quota.quota_messages

    def import_mbox(self, path: str, mailbox: str = "INBOX", batch: int = 200) -> ImportResult:
        """Copy every message of an mbox file into ``mailbox`` (created if missing).  Quota
        applies; flags and keywords come from the Status, X-Status, X-Keywords and
        X-Mozilla-Keys headers (``mbox.py``).  A maildir folder holds at most 26 keywords:
        those beyond are not kept (the message is), and named in the result."""
        from pymail.store.mbox import iter_mbox

        name = nm.normalize(mailbox)
        folder = self._folder(name)
        if not folder.exists():
            self.create_mailbox(name)
        pending: list = []
        total = 0
        kept = set(kw.index_map(kw.read(folder.keywords_path)))    # lower-cased
        dropped: dict[str, None] = {}

        def keep_keywords(flags: frozenset) -> frozenset:
            new = sorted(f for f in flags if f[0] != "\\" and f.lower() not in kept)
            for keyword in new:
                if len(kept) < MAX_KEYWORDS:
                    kept.add(keyword.lower())
                else:
                    dropped.setdefault(keyword)
            return frozenset(f for f in flags if f[0] == "\\" or f.lower() in kept)

        def flush() -> None:
            nonlocal total
            if not pending:
                return
            try:
                with self._quota.locked():
                    self._quota.check(sum(t.size for t, _ in pending), len(pending))
                    folder.commit(pending)
                    self._quota.add(sum(t.size for t, _ in pending), len(pending))
            except BaseException:
                for tmp, _ in pending:
                    try:
                        os.unlink(tmp.path)
                    except FileNotFoundError:
                        pass
                raise
            total += len(pending)
            pending.clear()

        for raw, flags, date in iter_mbox(path):
            pending.append((folder.write_tmp(raw, date), keep_keywords(flags)))
            if len(pending) >= batch:
                flush()
        flush()
        return ImportResult(total, tuple(dropped))

    def rebuild_index(self, name: str | None = None) -> list[str]:
        """Rebuild the index of one mailbox (or all); → names rebuilt."""
        names = [name] if name is not None else [i.name for i in self.list_mailboxes()]
        for n in names:
            with self.mailbox(n) as box:
                box.rebuild_index()
        return [nm.normalize(n) for n in names]


