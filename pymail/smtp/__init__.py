"""pymail.smtp"""
