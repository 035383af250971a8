"""pymail.web"""
