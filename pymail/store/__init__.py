"""pymail.store — the one place that touches mail on disk (Maildir++ + Dovecot control files +
an SQLite index cache).  See docs/store.md and docs/seams.md ("Store")."""

from pymail.store.account import Account, Store
from pymail.store.errors import StoreError
from pymail.store.mailbox import Mailbox
from pymail.store.types import Change, DeliveryResult, MailboxInfo, MessageRecord, SyncResult

__all__ = ["Store", "Account", "Mailbox", "StoreError", "MessageRecord", "SyncResult", "Change",
           "DeliveryResult", "MailboxInfo"]
