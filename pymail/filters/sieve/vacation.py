"""Vacation (RFC 5230) rules: to whom an auto-reply may go, and once per :days per sender.

The "already replied" record is a small JSON file per user (next to the user's scripts), updated
under an ``fcntl`` lock so several delivery processes share it. Blocking: run from a thread.
"""

from __future__ import annotations

import email.utils
import fcntl
import json
import os
import re
from email.message import Message
from pathlib import Path

# RFC 5230 §4.5 / RFC 3834 §2: never answer these senders.
_ROBOT_LOCALPARTS = re.compile(r"^(mailer-daemon|postmaster|listserv|majordomo|owner-.*|.*-request|"
                               r".*-owner|no-?reply|.*-bounces?)$", re.I)
_LIST_HEADERS = ("list-id", "list-help", "list-subscribe", "list-unsubscribe", "list-post",
                 "list-owner", "list-archive")


def refusal_reason(message: Message, sender: str, user_addresses: list[str]) -> str | None:
    """Why no auto-reply may be sent (None: one may)."""
    if not sender or "@" not in sender:
        return "null or local sender"  # RFC 5230 §4.5: never to <>
    local = sender.rpartition("@")[0]
    if _ROBOT_LOCALPARTS.match(local):
        return f"robot sender {sender}"
    auto = (message.get("Auto-Submitted") or "no").strip().lower()
    if not auto.startswith("no"):
        return "Auto-Submitted message"  # RFC 3834 §2
    precedence = (message.get("Precedence") or "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"Precedence: {precedence}"
    for name in _LIST_HEADERS:
        if message.get(name) is not None:
            return f"mailing list message ({name})"
    # RFC 5230 §4.5: answer only mail that names one of the user's addresses.
    named = set()
    for field in ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc"):
        for _, addr in email.utils.getaddresses([str(v) for v in message.get_all(field, [])]):
            named.add(addr.lower())
    wanted = {a.lower() for a in user_addresses}
    wanted |= {_strip_detail(a) for a in wanted}
    if not named & wanted and not {_strip_detail(a) for a in named} & wanted:
        return "the user's address is not in To/Cc/Bcc"
    return None


def _strip_detail(address: str) -> str:
    local, at, domain = address.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}" if at else address


class VacationStore:
    """Remembers when each sender last got each auto-reply (per handle)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def check_and_record(self, sender: str, handle: str, days: int, now: float) -> bool:
        """True (and remembered) when no reply with ``handle`` went to ``sender`` in ``days`` days."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = f"{handle}\0{sender.lower()}"
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                data = {}
            data = {k: v for k, v in data.items() if isinstance(v, (int, float)) and v > now}
            if data.get(key, 0) > now:
                return False
            data[key] = now + days * 86400
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)
            return True
