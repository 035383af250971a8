"""IMAP command handlers, one module per command group; importing this registers them all."""

from pymail.imap.commands import auth, fetch, idle, mailbox, message, quota, search, sort, store  # noqa: F401
