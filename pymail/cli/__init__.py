"""pymail.cli"""
