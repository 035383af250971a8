"""Delivery outcomes: a temporary failure is retried, a permanent one bounces (RFC 5321 §4.2.1)."""

from __future__ import annotations


class DeliveryFailure(Exception):
    permanent = False

    def __init__(self, text: str, status: str = "", remote_mta: str = ""):
        super().__init__(text)
        self.text = text
        self.status = status or ("5.0.0" if self.permanent else "4.0.0")  # RFC 3463
        self.remote_mta = remote_mta


class TemporaryFailure(DeliveryFailure):
    permanent = False


class PermanentFailure(DeliveryFailure):
    permanent = True
