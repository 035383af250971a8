"""pymail: a pure-Python mail server stack (SMTP, LMTP, IMAP4, POP3) over maildir."""

__version__ = "0.1.0"
