"""A small asyncio IMAP4rev1 client (RFC 3501) that reads literals and keeps a mailbox model.

The model is what lets the load check the server: the sequence-number → UID map is kept in step
with every untagged EXISTS/EXPUNGE/FETCH, and any reply that contradicts it (a UID that moved, an
EXISTS that shrank without EXPUNGE, a sequence number past the end) is a ``ProtocolMismatch``.
"""

from __future__ import annotations

import asyncio
import base64
import re
from dataclasses import dataclass, field

from pymail_loadtest.common import ProtocolMismatch, Target, close_writer

_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}\r?\n$")
_UNTAGGED_NUM = re.compile(r"^\* (\d+) (EXISTS|EXPUNGE|FETCH|RECENT)\b", re.I)
_UID = re.compile(r"\bUID (\d+)", re.I)
_FLAGS = re.compile(r"\bFLAGS \(([^)]*)\)", re.I)
_CODE = re.compile(r"\[([A-Z-]+)(?: ([^\]]*))?\]", re.I)


@dataclass
class Response:
    text: str  # the response with each literal replaced by {N}
    literals: list[bytes] = field(default_factory=list)


@dataclass
class TaggedResult:
    status: str
    text: str
    untagged: list[Response]

    def code(self, name: str) -> str | None:
        for m in _CODE.finditer(self.text):
            if m.group(1).upper() == name:
                return m.group(2) or ""
        return None


class ImapNo(ProtocolMismatch):
    def __init__(self, command: str, result: TaggedResult):
        super().__init__(f"{command} -> {result.status} {result.text}")
        self.result = result


@dataclass
class MailboxModel:
    """What this session knows of the selected mailbox (RFC 3501 §2.3.1, §7.3.1, §7.4.1)."""

    uids: list[int | None] = field(default_factory=list)  # index = sequence number - 1
    uidvalidity: int = 0
    uidnext: int = 0
    flags: dict[int, set[str]] = field(default_factory=dict)  # uid -> flags last seen

    @property
    def exists(self) -> int:
        return len(self.uids)

    def on_exists(self, n: int) -> None:
        if n < len(self.uids):
            raise ProtocolMismatch(f"EXISTS {n} shrank the mailbox from {len(self.uids)} without EXPUNGE")
        self.uids.extend([None] * (n - len(self.uids)))

    def on_expunge(self, seq: int) -> None:
        if not 1 <= seq <= len(self.uids):
            raise ProtocolMismatch(f"EXPUNGE {seq} outside 1..{len(self.uids)}")
        uid = self.uids.pop(seq - 1)
        if uid is not None:
            self.flags.pop(uid, None)

    def on_fetch(self, seq: int, text: str) -> int | None:
        if not 1 <= seq <= len(self.uids):
            raise ProtocolMismatch(f"FETCH for {seq} outside 1..{len(self.uids)}")
        m = _UID.search(text)
        uid = int(m.group(1)) if m else None
        if uid is not None:
            known = self.uids[seq - 1]
            if known is not None and known != uid:
                raise ProtocolMismatch(f"message {seq} was UID {known}, now UID {uid}")
            self.check_order(seq, uid)
            self.uids[seq - 1] = uid
        else:
            uid = self.uids[seq - 1]
        fm = _FLAGS.search(text)
        if fm is not None and uid is not None:
            self.flags[uid] = set(fm.group(1).split())
        return uid

    def check_order(self, seq: int, uid: int) -> None:
        """UIDs strictly ascend with sequence numbers (RFC 3501 §2.3.1.1)."""
        for j in range(seq - 2, max(-1, seq - 50), -1):
            if self.uids[j] is not None:
                if self.uids[j] >= uid:
                    raise ProtocolMismatch(f"UID {uid} at {seq} is not above UID {self.uids[j]} at {j + 1}")
                break
        for j in range(seq, min(len(self.uids), seq + 49)):
            if self.uids[j] is not None:
                if self.uids[j] <= uid:
                    raise ProtocolMismatch(f"UID {uid} at {seq} is not below UID {self.uids[j]} at {j + 1}")
                break

    def seq_of(self, uid: int) -> int | None:
        try:
            return self.uids.index(uid) + 1
        except ValueError:
            return None


class ImapClient:
    def __init__(self, target: Target):
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.capabilities: set[str] = set()
        self.box: MailboxModel | None = None
        self._tag = 0

    # -- reading -------------------------------------------------------------------------------
    async def read_response(self, timeout: float | None = None) -> Response:
        timeout = self.target.timeout if timeout is None else timeout
        parts, literals = [], []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), timeout)
            if not raw:
                raise ProtocolMismatch("connection closed by server")
            if not raw.endswith(b"\n"):
                raise ProtocolMismatch("response line too long or cut")
            m = _LITERAL_AT_END.search(raw)
            if m is None:
                parts.append(raw.rstrip(b"\r\n").decode("utf-8", "replace"))
                break
            parts.append(raw[: m.start()].decode("utf-8", "replace") + "{%s}" % m.group(1))
            literals.append(await asyncio.wait_for(self.reader.readexactly(int(m.group(1))), timeout))
        return Response("".join(parts), literals)

    def apply_untagged(self, resp: Response) -> None:
        m = _UNTAGGED_NUM.match(resp.text)
        if m and self.box is not None:
            n, kind = int(m.group(1)), m.group(2).upper()
            if kind == "EXISTS":
                self.box.on_exists(n)
            elif kind == "EXPUNGE":
                self.box.on_expunge(n)
            elif kind == "FETCH":
                self.box.on_fetch(n, resp.text)
        elif resp.text.upper().startswith("* CAPABILITY "):
            self.capabilities = set(resp.text[len("* CAPABILITY "):].upper().split())
        code = _CODE.search(resp.text)
        if code and code.group(1).upper() == "CAPABILITY":
            self.capabilities = set((code.group(2) or "").upper().split())

    # -- commands ------------------------------------------------------------------------------
    def next_tag(self) -> str:
        self._tag += 1
        return f"L{self._tag}"

    async def command(self, line: str, literal: bytes | None = None, ok_only: bool = True,
                      continuation_only: bool = False) -> TaggedResult:
        """Send a command (with a literal, or with ``continuation_only`` a line sent after the
        server's ``+``, as SASL does) and read up to its tagged response."""
        tag = self.next_tag()
        untagged: list[Response] = []
        if literal is None:
            self.writer.write(f"{tag} {line}\r\n".encode())
        elif continuation_only:
            self.writer.write(f"{tag} {line}\r\n".encode())
            await self._await_continuation(tag, line, untagged)
            self.writer.write(literal + b"\r\n")
        elif "LITERAL+" in self.capabilities:
            self.writer.write(f"{tag} {line} {{{len(literal)}+}}\r\n".encode() + literal + b"\r\n")
        else:
            self.writer.write(f"{tag} {line} {{{len(literal)}}}\r\n".encode())
            await self._await_continuation(tag, line, untagged)
            self.writer.write(literal + b"\r\n")
        while True:
            resp = await self.read_response()
            if resp.text.startswith(tag + " "):
                result = self._tagged(resp, untagged)
                if ok_only and result.status != "OK":
                    raise ImapNo(line.split(" ")[0], result)
                return result
            if resp.text.startswith("+"):
                raise ProtocolMismatch(f"unexpected continuation to {line.split(' ')[0]}")
            self.apply_untagged(resp)
            untagged.append(resp)

    def _tagged(self, resp: Response, untagged: list[Response]) -> TaggedResult:
        _, status, text = (resp.text.split(" ", 2) + ["", ""])[:3]
        result = TaggedResult(status.upper(), text, untagged)
        self.apply_untagged(resp)  # a CAPABILITY code in the tagged OK
        return result

    async def connect(self) -> None:
        self.reader, self.writer = await self.target.open()
        greeting = await self.read_response()
        if not greeting.text.upper().startswith(("* OK", "* PREAUTH")):
            raise ProtocolMismatch(f"greeting {greeting.text!r}")
        self.apply_untagged(greeting)
        if not self.capabilities:
            await self.command("CAPABILITY")
        if self.target.tls == "starttls":
            await self.command("STARTTLS")
            await asyncio.wait_for(self.writer.start_tls(self.target.ssl_context()), self.target.timeout)
            self.capabilities = set()
            await self.command("CAPABILITY")

    async def login(self, user: str, password: str, mechanism: str = "login") -> None:
        """LOGIN, or AUTHENTICATE PLAIN (RFC 4616) as Thunderbird does: with SASL-IR (RFC 4959)
        when offered, else after the server's empty continuation."""
        if mechanism == "plain":
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            if "SASL-IR" in self.capabilities:
                result = await self.command(f"AUTHENTICATE PLAIN {token}")
            else:
                result = await self.command("AUTHENTICATE PLAIN", literal=token.encode(), continuation_only=True)
        else:
            result = await self.command(f"LOGIN {quote(user)} {quote(password)}")
        if result.code("CAPABILITY") is None:
            await self.command("CAPABILITY")

    async def select(self, mailbox: str = "INBOX") -> TaggedResult:
        self.box = MailboxModel()
        result = await self.command(f"SELECT {quote(mailbox)}")
        for resp in result.untagged:
            code = _CODE.search(resp.text)
            if code and code.group(1).upper() == "UIDVALIDITY":
                self.box.uidvalidity = int(code.group(2))
            elif code and code.group(1).upper() == "UIDNEXT":
                self.box.uidnext = int(code.group(2))
        if not self.box.uidvalidity:
            raise ProtocolMismatch("SELECT gave no UIDVALIDITY (RFC 3501 §6.3.1)")
        return result

    async def idle_start(self) -> None:
        """Send IDLE (RFC 2177) and wait for the continuation."""
        self._idle_tag = self.next_tag()
        self.writer.write(f"{self._idle_tag} IDLE\r\n".encode())
        while True:
            resp = await self.read_response()
            if resp.text.startswith("+"):
                return
            if resp.text.startswith(self._idle_tag + " "):
                raise ProtocolMismatch(f"IDLE refused: {resp.text}")
            self.apply_untagged(resp)

    async def idle_wait(self, timeout: float) -> Response | None:
        """The next untagged response while idling, or None after ``timeout``."""
        try:
            resp = await self.read_response(timeout)
        except asyncio.TimeoutError:
            return None
        self.apply_untagged(resp)
        return resp

    async def idle_done(self) -> None:
        self.writer.write(b"DONE\r\n")
        while True:
            resp = await self.read_response()
            if resp.text.startswith(self._idle_tag + " "):
                if resp.text.split(" ")[1].upper() != "OK":
                    raise ProtocolMismatch(f"IDLE ended with {resp.text}")
                return
            self.apply_untagged(resp)

    async def _await_continuation(self, tag: str, line: str, untagged: list) -> None:
        """Read until the server's ``+``; a tagged answer first means it refused the command."""
        while True:
            resp = await self.read_response()
            if resp.text.startswith("+"):
                return
            if resp.text.startswith(tag + " "):
                raise ImapNo(line.split(" ")[0], self._tagged(resp, untagged))
            self.apply_untagged(resp)
            untagged.append(resp)

    async def logout(self) -> None:
        try:
            await self.command("LOGOUT")
        finally:
            await self.close()

    async def close(self) -> None:
        await close_writer(self.writer)
        self.writer = None


def quote(text: str) -> str:
    """An IMAP quoted string (RFC 3501 §4.3)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
