"""Plain result types of the store API (see docs/seams.md, "Store")."""

from __future__ import annotations

from typing import NamedTuple


class MessageRecord(NamedTuple):
    uid: int
    flags: frozenset          # IMAP system flags and keywords in one set
    modseq: int
    size: int                 # RFC 822 size: bytes with CRLF line ends (maildir W=)
    internal_date: float      # unix time, the file's mtime (as Dovecot)
    guid: str


class SyncResult(NamedTuple):
    added: list
    expunged: list
    flag_changes: list


class Change(NamedTuple):
    uid: int
    modseq: int
    kind: str                 # "flags" | "expunge" | "append"


class DeliveryResult(NamedTuple):
    mailbox: str
    uid: int
    size: int                 # RFC 822 size, as MessageRecord.size


class MailboxInfo(NamedTuple):
    name: str
    special_use: str | None
    subscribed: bool
    has_children: bool
