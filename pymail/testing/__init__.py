"""Helpers for pymail's own tests: a reactor running in a thread, and real listeners on 127.0.0.1.

Tests drive servers with real, blocking stdlib clients (imaplib, poplib, smtplib) from the test
thread while the reactor serves in a background thread, exactly as in production.
"""
