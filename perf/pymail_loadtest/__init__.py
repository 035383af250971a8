"""pymail-loadtest: drives SMTP, IMAP and POP3 servers (pymail or a peer) on addresses it is given."""
