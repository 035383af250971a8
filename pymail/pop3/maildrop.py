"""The blocking half of a POP3 session: lock, snapshot, message files, the UPDATE state.

Every method here touches the store and runs in a thread (``pymail.runtime.blocking``), one at a
time per session (``Mailbox`` is safe to use from one thread at a time).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import OrderedDict
from typing import Any, BinaryIO

from pymail.pop3.errors import Pop3Error
from pymail.pop3.lock import SessionLock
from pymail.pop3.protocol import Maildrop, MessageInfo
from pymail.store.errors import EXPUNGED, NONEXISTENT, StoreError

log = logging.getLogger("pymail.pop3")

INBOX = "INBOX"


class SizeCache:
    """POP3 sizes by (maildir, uidvalidity, uid), shared by the sessions of one process.

    Maildir message files never change, so a size computed once stays true; the cache spares
    reading every file again at each login of a client that polls.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._sizes: OrderedDict[tuple[str, int, int], int] = OrderedDict()
        self._guard = threading.Lock()

    def get(self, key: tuple[str, int, int]) -> int | None:
        with self._guard:
            size = self._sizes.get(key)
            if size is not None:
                self._sizes.move_to_end(key)
            return size

    def put(self, key: tuple[str, int, int], size: int) -> None:
        with self._guard:
            self._sizes[key] = size
            self._sizes.move_to_end(key)
            while len(self._sizes) > self.limit:
                self._sizes.popitem(last=False)


SIZES = SizeCache()


def dovecot_uidl_format(fmt: str) -> str:
    """Dovecot's ``pop3_uidl_format`` in the dialect of ``Mailbox.pop3_uidl``.

    In Dovecot's variable expansion the ``X`` modifier prints *lower-case* hex (``%llx`` in
    var-expand.c; Dovecot 2.3.19 shows ``000000016553f100`` for UID 1, UIDVALIDITY 1700000000),
    while the store formats ``X`` as upper case and ``x`` as lower case. Asking the store for
    ``x`` gives the UIDLs a client saw from Dovecot.
    """
    return re.sub(r"%(?:%|(\d*)X)",
                  lambda m: m.group(0) if m.group(0) == "%%" else f"%{m.group(1)}x", fmt)


def _ends_with_newline(fileobj: BinaryIO) -> bool:
    """True for an empty file or one whose last byte is LF (no CRLF to add after it)."""
    end = fileobj.seek(0, os.SEEK_END)
    if end == 0:
        return True
    fileobj.seek(end - 1)
    return fileobj.read(1) == b"\n"


def _lock_directory(store: Any, account: Any) -> str:
    """Where the session lock lives: the account's Maildir root (INBOX in Maildir++).

    The maildir is shared by every host that serves the user (NFS), unlike ``index_root``.
    """
    root = getattr(account, "root", None)
    if root is not None:
        return os.fspath(root)
    local, _, domain = str(account.address).partition("@")
    return os.path.join(os.fspath(store.mail_root), domain, local, "Maildir")


class MaildropSession:
    """One logged-in POP3 session's view of the user's INBOX."""

    def __init__(self, user: str, mailbox: Any, lock: SessionLock, identity: str) -> None:
        self.user = user
        self.mailbox = mailbox
        self.lock = lock
        self.identity = identity
        self.maildrop: Maildrop | None = None

    # -- login ----------------------------------------------------------------------------------

    @classmethod
    def open(cls, store: Any, user: str, uidl_format: str) -> "MaildropSession":
        """Lock the maildrop and take the snapshot the session works on (RFC 1939 §4)."""
        try:
            account = store.account(user)
            try:
                mailbox = account.mailbox(INBOX)
            except StoreError as exc:
                if exc.code != NONEXISTENT:
                    raise
                account.ensure()  # a new user who never got mail: make the maildir
                mailbox = account.mailbox(INBOX)
        except StoreError as exc:
            log.error("pop3: cannot open the maildrop of %s: %s", user, exc)
            raise Pop3Error("Unable to open your mailbox, try again later", "SYS/TEMP") from None
        directory = _lock_directory(store, account)
        lock = SessionLock(directory)
        lock.acquire()  # MaildropInUse: -ERR [IN-USE]
        session = cls(user, mailbox, lock, directory)
        try:
            session.maildrop = session._snapshot(uidl_format)
        except BaseException:
            session.close()
            raise
        return session

    def _snapshot(self, uidl_format: str) -> Maildrop:
        try:
            self.mailbox.sync()
            uidvalidity = int(self.mailbox.uidvalidity)
            store_format = dovecot_uidl_format(uidl_format)
            messages = []
            for record in self.mailbox.records():
                size = self._size(uidvalidity, record)
                if size is None:
                    continue  # expunged by another session while we listed
                messages.append(MessageInfo(record.uid, size,
                                            self.mailbox.pop3_uidl(record.uid, store_format)))
        except StoreError as exc:
            log.error("pop3: cannot list the maildrop of %s: %s", self.user, exc)
            raise Pop3Error("Unable to read your mailbox, try again later", "SYS/TEMP") from None
        return Maildrop(self.user, messages)

    def _size(self, uidvalidity: int, record: Any) -> int | None:
        """The POP3 size: the store's CRLF size, plus the CRLF RETR adds after a last line
        without one (RFC 1939 §3 ends a multi-line reply with CRLF "." CRLF)."""
        key = (self.identity, uidvalidity, record.uid)
        size = SIZES.get(key)
        if size is None:
            try:
                with self.mailbox.open_message(record.uid) as fileobj:
                    size = record.size + (0 if _ends_with_newline(fileobj) else 2)
            except (StoreError, FileNotFoundError) as exc:
                if isinstance(exc, StoreError) and exc.code not in (EXPUNGED, NONEXISTENT):
                    raise
                return None
            SIZES.put(key, size)
        return size

    # -- TRANSACTION ------------------------------------------------------------------------------

    def open_message(self, uid: int, number: int) -> BinaryIO:
        try:
            return self.mailbox.open_message(uid)
        except FileNotFoundError:
            pass
        except StoreError as exc:
            if exc.code not in (EXPUNGED, NONEXISTENT):
                log.error("pop3: %s: cannot open message uid %d: %s", self.user, uid, exc)
                raise Pop3Error("Unable to read the message, try again later", "SYS/TEMP") \
                    from None
        raise Pop3Error(f"Message {number} was removed by another session")

    # -- UPDATE (RFC 1939 §6) ---------------------------------------------------------------------

    def update(self, delete_uids: tuple[int, ...], seen_uids: tuple[int, ...]) -> int:
        """Mark RETR'd messages \\Seen and remove exactly the DELE'd ones; returns how many.

        Messages another session expunged meanwhile are skipped; nothing else is touched (an
        IMAP client's own \\Deleted messages stay until it expunges them).
        """
        try:
            self.mailbox.sync()
            present = {record.uid for record in self.mailbox.records()}
            seen = [uid for uid in seen_uids if uid in present]
            doomed = [uid for uid in delete_uids if uid in present]
            if seen:
                self.mailbox.store_flags(seen, {"\\Seen"}, "add")
            if not doomed:
                return 0
            self.mailbox.store_flags(doomed, {"\\Deleted"}, "add")
            removed = self.mailbox.expunge(doomed)
        except StoreError as exc:
            log.error("pop3: %s: UPDATE failed: %s", self.user, exc)
            raise Pop3Error("Some deleted messages were not removed, try again later",
                            "SYS/TEMP") from None
        return len(removed)

    def close(self) -> None:
        close = getattr(self.mailbox, "close", None)
        try:
            if callable(close):
                close()
        finally:
            self.lock.release()
