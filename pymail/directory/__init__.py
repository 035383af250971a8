"""pymail.directory"""
