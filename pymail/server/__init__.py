"""pymail.server"""
