"""pymail.queue"""
