"""pymail.store"""
