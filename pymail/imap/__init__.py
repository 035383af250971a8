"""pymail.imap"""
