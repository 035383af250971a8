"""IMAP command handlers, one module per command group; importing this registers them all."""

from pymail.imap.commands import (append, auth, fetch, idle, listing, mailbox, message, notify,  # noqa: F401
                                  quota, search, select, sort, store)
