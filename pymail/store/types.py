"""Plain result types of the store API (see docs/seams.md, "Store")."""

from __future__ import annotations

from typing import NamedTuple


class MessageRecord(NamedTuple):
    uid: int
    flags: frozenset          # IMAP system flags and keywords in one set
    modseq: int
    size: int                 # RFC 822 size: bytes with CRLF line ends (maildir W=)
    internal_date: float | None   # unix time, the file's mtime (as Dovecot); None: not
                                  # read yet (Mailbox.internal_dates)
    guid: str


def with_date(record: MessageRecord, internal_date: float) -> MessageRecord:
    """``record._replace(internal_date=…)`` without its keyword machinery (100,000 times)."""
    uid, flags, modseq, size, _, guid = record
    return tuple.__new__(MessageRecord, (uid, flags, modseq, size, internal_date, guid))


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


class ImportResult(NamedTuple):
    imported: int             # messages stored
    keywords_dropped: tuple   # keywords not kept: the folder had its 26 (dovecot-keywords)


class MailboxInfo(NamedTuple):
    name: str
    special_use: str | None
    subscribed: bool
    has_children: bool
