"""A small asyncio SMTP client (RFC 5321) for load: EHLO, STARTTLS, AUTH PLAIN, one transaction."""

from __future__ import annotations

import asyncio
import base64

from pymail_loadtest.common import ProtocolMismatch, Target, close_writer


class SmtpReplyError(ProtocolMismatch):
    def __init__(self, command: str, code: int, text: str):
        super().__init__(f"{command} -> {code} {text}")
        self.code = code


class SmtpClient:
    def __init__(self, target: Target, helo: str = "loadtest.invalid"):
        self.target = target
        self.helo = helo
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.extensions: dict[str, str] = {}

    async def reply(self, command: str = "") -> tuple[int, str]:
        """Read one (possibly multi-line) reply: RFC 5321 §4.2."""
        lines = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), self.target.timeout)
            if not raw:
                raise ProtocolMismatch(f"connection closed waiting for reply to {command or 'greeting'}")
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise ProtocolMismatch(f"malformed reply line {line!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)

    async def command(self, line: str, expect: tuple[int, ...]) -> tuple[int, str]:
        self.writer.write(line.encode() + b"\r\n")
        code, text = await self.reply(line.split(" ")[0])
        if code not in expect:
            raise SmtpReplyError(line.split(" ")[0], code, text)
        return code, text

    async def connect(self) -> None:
        self.reader, self.writer = await self.target.open()
        code, text = await self.reply()
        if code != 220:
            raise SmtpReplyError("greeting", code, text)
        await self.ehlo()
        if self.target.tls == "starttls":
            if "STARTTLS" not in self.extensions:
                raise ProtocolMismatch("server does not offer STARTTLS")
            await self.command("STARTTLS", (220,))
            await asyncio.wait_for(self.writer.start_tls(self.target.ssl_context()), self.target.timeout)
            await self.ehlo()

    async def ehlo(self) -> None:
        _, text = await self.command(f"EHLO {self.helo}", (250,))
        self.extensions = {}
        for line in text.split("\n")[1:]:
            keyword, _, params = line.partition(" ")
            self.extensions[keyword.upper()] = params

    async def auth_plain(self, user: str, password: str) -> None:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.command(f"AUTH PLAIN {token}", (235,))

    async def end_of_data(self, sender: str, recipients: list[str], message: bytes) -> tuple[int, str]:
        await self.command(f"MAIL FROM:<{sender}>", (250,))
        for rcpt in recipients:
            await self.command(f"RCPT TO:<{rcpt}>", (250, 251))
        await self.command("DATA", (354,))
        self.writer.write(dot_stuff(message) + b".\r\n")
        return await self.reply("end of DATA")

    async def send(self, sender: str, recipients: list[str], message: bytes) -> None:
        code, text = await self.end_of_data(sender, recipients, message)
        if code != 250:
            raise SmtpReplyError("end of DATA", code, text)

    async def quit(self) -> None:
        try:
            await self.command("QUIT", (221,))
        finally:
            await self.close()

    async def close(self) -> None:
        await close_writer(self.writer)
        self.writer = None


def dot_stuff(message: bytes) -> bytes:
    """CRLF line ends and a leading dot doubled (RFC 5321 §4.5.2); ends with CRLF."""
    data = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")
