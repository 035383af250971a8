"""pymail.pop3"""
