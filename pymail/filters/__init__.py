"""pymail.filters"""
