"""The envelope of a queued message: who sent it, to whom, and what happened so far (JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass
class Recipient:
    address: str  # where to deliver: a local user's canonical address, or an outside address
    local: bool
    original: str = ""  # the RCPT TO address as the client gave it
    orcpt: str = ""  # RFC 3461 ORCPT ("rfc822;addr")
    notify: list[str] = field(default_factory=list)  # RFC 3461 NOTIFY values, [] = default
    detail: str = ""  # sub-address tag of user+tag@domain, for Sieve
    status: str = PENDING
    last_error: str = ""
    remote_mta: str = ""
    in_flight: bool = False  # an attempt started and has not been recorded (RFC 5321 §6.1)
    dsn_passed: bool = False  # the next hop took NOTIFY/ORCPT: it reports success, not us

    @property
    def pending(self) -> bool:
        return self.status == PENDING


@dataclass
class Envelope:
    queue_id: str
    sender: str  # "" is the null sender <>
    recipients: list[Recipient]
    created: float
    size: int = 0
    body: str = ""  # BODY=7BIT / 8BITMIME
    smtputf8: bool = False
    ret: str = ""  # RFC 3461 RET=FULL|HDRS
    envid: str = ""  # RFC 3461 ENVID
    helo: str = ""
    client_ip: str = ""
    auth_user: str = ""
    attempts: int = 0
    next_attempt: float = 0.0
    held: bool = False
    is_bounce: bool = False
    delay_warned: bool = False

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> "Envelope":
        data = json.loads(raw.decode("utf-8"))
        rcpts = [Recipient(**r) for r in data.pop("recipients")]
        return cls(recipients=rcpts, **data)

    def pending(self) -> list[Recipient]:
        return [r for r in self.recipients if r.pending]

    @property
    def done(self) -> bool:
        return not self.pending()
