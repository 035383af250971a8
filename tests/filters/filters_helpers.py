"""Helpers shared by the filters tests."""

from __future__ import annotations


def write_message(tmp_path, body: bytes, headers: str = "", name: str = "msg.eml") -> str:
    head = ("From: Sender <sender@example.org>\r\nTo: alice@example.com\r\nSubject: test\r\n"
            "Date: Mon, 30 Nov 2026 01:00:00 +0000\r\nMessage-ID: <t1.2026@example.org>\r\n" + headers)
    path = tmp_path / name
    path.write_bytes(head.encode() + b"\r\n" + body)
    return str(path)
