"""One mail transaction in progress (MAIL FROM up to the end of the message)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pymail.queue.envelope import Recipient


@dataclass
class Transaction:
    queue_id: str
    sender: str
    params: dict
    recipients: list[Recipient] = field(default_factory=list)
    rcpt_addresses: list[str] = field(default_factory=list)  # as accepted (LMTP replies)
    writer: object = None
    size: int = 0
    too_big: bool = False
    hops: int = 0  # Received fields in the client's header (RFC 5321 §6.3 loop detection)
    in_header: bool = True
    carry: bytes = b""

    def count_hops(self, data: bytes) -> None:
        """Count ``Received:`` fields while the header streams past (no second read)."""
        if not self.in_header:
            return
        data = self.carry + data
        lines = data.split(b"\n")
        self.carry = lines.pop()[:64]  # a partial line: its start is all we need
        for line in lines:
            if line in (b"", b"\r"):
                self.in_header = False
                return
            if line[:9].lower() == b"received:":
                self.hops += 1
