"""Local delivery: a queued message into a user's maildir through the Store.

``LocalDelivery.deliver(envelope, recipient, path)`` is the one hook for everything that happens
at final delivery. The filters/Sieve package plugs in by subclassing it (or wrapping it) and
choosing the mailbox and flags before calling ``store_message`` — the runner only sees the
outcome (a description, or a Temporary/PermanentFailure).

RFC 5321 §4.4: the final delivery adds ``Return-Path:`` with the envelope sender; pymail also
adds ``Delivered-To:`` (Postfix's and Dovecot's habit, used to detect loops).
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

from pymail.directory.answers import AnswerCache
from pymail.queue.errors import PermanentFailure, TemporaryFailure


class PrefixedFile(io.RawIOBase):
    """A read-only file object: some header bytes, then a file, without loading the file."""

    def __init__(self, prefix: bytes, path: Path):
        self._prefix = memoryview(prefix)
        self._file = open(path, "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._file.readinto(buffer)

    def close(self) -> None:
        self._file.close()
        super().close()


def delivery_headers(sender: str, recipient: str) -> bytes:
    return f"Return-Path: <{sender}>\r\nDelivered-To: {recipient}\r\n".encode("utf-8", "replace")


QUOTA_TTL = 5.0  # seconds a user's quota limits are remembered (a quota change is seen this late)


class LocalDelivery:
    def __init__(self, store, directory=None):
        self.store = store
        self.directory = directory
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._quotas = AnswerCache()   # address → (quota bytes, quota messages)

    def _account_lock(self, address: str) -> threading.Lock:
        """One delivery at a time per account in this process: the store's quota file update
        is not safe between threads of one process, and an error it raises after the message
        was stored would make the queue deliver it again."""
        key = address.lower()
        with self._locks_guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def account(self, address: str):
        """The Store account with the quota the directory sets for it (the directory's answer
        is remembered for ``QUOTA_TTL`` seconds: no SQL query per delivery under load)."""
        quota_bytes = quota_messages = None
        if self.directory is not None:
            quotas = self._quotas.get(self.directory, address)
            if quotas is None:
                user = self.directory.get_user(address)
                if user is not None:
                    quota_bytes, quota_messages = user.quota_bytes, user.quota_messages
                quotas = (quota_bytes, quota_messages)
                self._quotas.put(self.directory, address, quotas, QUOTA_TTL)
            quota_bytes, quota_messages = quotas
        return self.store.account(address, quota_bytes, quota_messages)

    def deliver(self, envelope, recipient, path: Path) -> str:
        """Deliver one queued message to one local recipient (blocking). Returns a description."""
        return self.store_message(envelope, recipient, path, "INBOX", ())

    def store_message(self, envelope, recipient, path: Path, mailbox: str = "INBOX",
                      flags=()) -> str:
        if self.store is None:
            raise TemporaryFailure("no message store configured", "4.3.0")
        with self._account_lock(recipient.address):
            return self._store_in_account(envelope, recipient, path, mailbox, flags)

    def _store_in_account(self, envelope, recipient, path: Path, mailbox: str, flags) -> str:
        from pymail.store.errors import StoreError

        account = self.account(recipient.address)
        for attempt in (1, 2):
            source = io.BufferedReader(PrefixedFile(delivery_headers(envelope.sender, recipient.address), path))
            try:
                result = account.deliver(source, mailbox=mailbox, flags=tuple(flags))
                return f"delivered to {result.mailbox} uid {result.uid}" if result is not None \
                    else f"delivered to {mailbox}"
            except StoreError as exc:
                code = str(getattr(exc, "code", "")).upper()
                if code.endswith("NONEXISTENT") and attempt == 1:
                    account.ensure()
                    continue
                if code.endswith("OVERQUOTA"):
                    raise TemporaryFailure(f"mailbox full: {exc}", "4.2.2") from None
                raise TemporaryFailure(f"store error: {exc}", "4.3.0") from None
            except OSError as exc:
                raise TemporaryFailure(f"cannot store: {os.strerror(exc.errno) if exc.errno else exc}",
                                       "4.3.0") from None
            finally:
                source.close()
        raise PermanentFailure("mailbox unavailable", "5.2.0")
