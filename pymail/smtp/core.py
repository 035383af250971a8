"""Sans-IO SMTP/LMTP server state machine.

``ServerCore`` turns input bytes into typed events and the session's answers into reply bytes.
It owns everything that does not need the outside world: command syntax (501), command order
(503, RFC 5321 §4.1.4), unknown commands (500), line length (500 5.5.6), the bad-command limit
(421), NOOP/HELP/VRFY/EXPN/QUIT, BDAT chunk framing (RFC 3030) and DATA unstuffing (``wire``).
Policy (who may send, which recipients exist, where bytes go) is the session's.

PIPELINING (RFC 2920): one event is handed out at a time; ``next_event()`` returns None until the
session has answered it, so replies always come out in command order, however many commands
arrived in one segment. LMTP (RFC 2033) is the same machine with LHLO instead of HELO/EHLO and
one reply per accepted recipient after the message (``finish_message(replies)``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pymail.smtp import wire
from pymail.smtp.commands import Path, parse_path_arg, split_verb
from pymail.smtp.errors import Reply, SmtpError
from pymail.smtp.events import (Auth, AuthLine, Bdat, Closed, Data, Helo, Mail, MessageChunk,
                                MessageEnd, Rcpt, Rset, StartTls)

__all__ = ["ServerCore", "Auth", "AuthLine", "Bdat", "Closed", "Data", "Helo", "Mail",
           "MessageChunk", "MessageEnd", "Rcpt", "Rset", "StartTls"]


NO_ARGS = {"DATA", "RSET", "QUIT", "STARTTLS"}

OK = Reply(250, "2.0.0", "OK")


@dataclass
class _Transaction:
    mail: Path | None = None
    rcpts: int = 0
    bdat: bool = False  # the message body is coming in BDAT chunks
    failed_bdat: bool = False


class ServerCore:
    def __init__(self, *, lmtp: bool = False, max_line: int = 4096, max_bad_commands: int = 20,
                 chunking: bool = True, hostname: str = "localhost"):
        self.lmtp = lmtp
        self.chunking = chunking
        self.hostname = hostname
        self.max_bad_commands = max_bad_commands
        self.reader = wire.Reader(max_line)
        self.greeted = False
        self.extended = False
        self.tls = False
        self.auth_user: str | None = None
        self.txn = _Transaction()
        self.closed = False
        self.bad_commands = 0
        self._out: list[bytes] = []
        self._awaiting: object | None = None  # the event the session has not answered yet
        self._auth_line = False
        self._bdat_discard: Reply | None = None  # reply to send once a refused chunk is read
        self._bdat_last = False
        self._in_message = False

    # -- I/O ---------------------------------------------------------------------------------------
    def receive(self, data: bytes) -> None:
        if not self.closed:
            self.reader.feed(data)

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def send(self, reply: Reply) -> None:
        self._out.append(reply.encode(self.extended))

    def greet(self, text: str = "ESMTP pymail") -> None:
        proto = "LMTP" if self.lmtp else "ESMTP"
        self.send(Reply(220, "", f"{self.hostname} {text if text else proto}"))

    @property
    def awaiting(self):
        return self._awaiting

    # -- events ------------------------------------------------------------------------------------
    def next_event(self):
        """The next event for the session, or None (need more bytes, or an answer pending)."""
        while not self.closed and self._awaiting is None:
            item = self.reader.next_item()
            if item is None:
                return None
            event = self._handle_item(item)
            if event is not None:
                if not isinstance(event, (MessageChunk, Closed)):
                    self._awaiting = event
                return event
        if self.closed and self._awaiting is None:
            return None
        return None

    def _handle_item(self, item):
        if isinstance(item, wire.Chunk):
            if self._bdat_discard is not None:
                return None
            return MessageChunk(item.data)
        if isinstance(item, wire.DataEnd):
            self._in_message = False
            return MessageEnd()
        if isinstance(item, wire.BdatEnd):
            self._in_message = False
            if self._bdat_discard is not None:
                reply, self._bdat_discard = self._bdat_discard, None
                self.txn = _Transaction()
                return self._error(reply)
            return MessageEnd(bdat=True, last=self._bdat_last)
        if isinstance(item, wire.LineTooLong):
            if self._auth_line:
                self._auth_line = False
                return self._error(Reply(500, "5.5.6", "Authentication exchange line is too long"))
            return self._error(Reply(500, "5.5.6", "Line too long"))
        line = item.data.decode("utf-8", "surrogateescape")
        if self._auth_line:
            self._auth_line = False
            return AuthLine(line.strip())
        try:
            return self._command(line)
        except SmtpError as exc:
            return self._error(exc.reply)

    def _error(self, reply: Reply):
        self.send(reply)
        if reply.code in (500, 501, 502, 503, 504):
            self.bad_commands += 1
            if self.bad_commands > self.max_bad_commands:
                return self.close(Reply(421, "4.7.0", f"{self.hostname} Too many errors, closing"))
        return None

    def close(self, reply: Reply) -> Closed:
        self.send(reply)
        self.closed = True
        self._awaiting = None
        return Closed()

    def _command(self, line: str):
        verb, arg = split_verb(line)
        if verb in NO_ARGS and arg:
            raise SmtpError(501, "5.5.4", f"Syntax: {verb} takes no arguments")
        if verb in ("HELO", "EHLO", "LHLO"):
            if self.lmtp != (verb == "LHLO"):
                raise SmtpError(500, "5.5.1", f"{verb}: command not recognized here")
            if not arg:
                raise SmtpError(501, "5.5.4", f"Syntax: {verb} hostname")
            return Helo(arg.split(" ")[0], verb != "HELO")
        if verb == "NOOP":
            self.send(OK)
            return None
        if verb == "QUIT":
            return self.close(Reply(221, "2.0.0", f"{self.hostname} closing connection"))
        if verb == "RSET":
            return Rset()
        if verb == "VRFY":
            # RFC 5321 §3.5.3: 252, "cannot VRFY user, but will accept message and attempt delivery".
            self.send(Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery"))
            return None
        if verb == "EXPN":
            raise SmtpError(502, "5.5.1", "EXPN is not available")
        if verb == "HELP":
            self.send(Reply(214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY STARTTLS AUTH"))
            return None
        if verb == "STARTTLS":
            if self.tls:
                raise SmtpError(503, "5.5.1", "TLS already active")
            return StartTls()
        if verb == "AUTH":
            if not self.greeted:
                raise SmtpError(503, "5.5.1", "Send EHLO first")
            if self.auth_user is not None:
                raise SmtpError(503, "5.5.1", "Already authenticated")
            if self.txn.mail is not None:
                raise SmtpError(503, "5.5.1", "AUTH not allowed during a mail transaction")
            mech, _, initial = arg.partition(" ")
            if not mech:
                raise SmtpError(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]")
            return Auth(mech.upper(), initial.strip() or None)
        if verb == "MAIL":
            if not self.greeted:
                raise SmtpError(503, "5.5.1", "Send EHLO/HELO first")
            if self.txn.mail is not None:
                raise SmtpError(503, "5.5.1", "Nested MAIL command")
            return Mail(parse_path_arg(arg, "FROM"))
        if verb == "RCPT":
            if self.txn.mail is None:
                raise SmtpError(503, "5.5.1", "Need MAIL command first")
            return Rcpt(parse_path_arg(arg, "TO"))
        if verb == "DATA":
            if self.txn.bdat:
                raise SmtpError(503, "5.5.1", "DATA not allowed after BDAT")
            if self.txn.mail is None:
                raise SmtpError(503, "5.5.1", "Need MAIL command first")
            if self.txn.rcpts == 0:
                # RFC 2920 §3.1: with all RCPTs refused, DATA gets 554 (no valid recipients).
                raise SmtpError(554, "5.5.1", "No valid recipients")
            return Data()
        if verb == "BDAT" and self.chunking:
            return self._bdat(arg)
        raise SmtpError(500, "5.5.2", "Command not recognized")

    def _bdat(self, arg: str):
        words = arg.split()
        if not words or len(words) > 2 or not (words[0].isascii() and words[0].isdigit()) or (
                len(words) == 2 and words[1].upper() != "LAST"):
            raise SmtpError(501, "5.5.4", "Syntax: BDAT size [LAST]")
        size, last = int(words[0]), len(words) == 2
        self.reader.start_bdat(size)
        self._bdat_last = last
        self._in_message = True
        if self.txn.mail is None or self.txn.rcpts == 0 or self.txn.failed_bdat:
            # RFC 3030 §2: the chunk follows the command whatever the answer; read and drop it.
            reason = "No valid recipients" if self.txn.mail is not None else "Need MAIL command first"
            code = 554 if self.txn.mail is not None and self.txn.rcpts == 0 else 503
            self._bdat_discard = Reply(code, "5.5.1", reason)
            return None
        self.txn.bdat = True
        return Bdat(size, last)

    # -- answers from the session ------------------------------------------------------------------
    def _answered(self) -> None:
        self._awaiting = None

    def reply(self, reply: Reply) -> None:
        """Answer the pending event with a refusal/neutral reply (no state change)."""
        if isinstance(self._awaiting, Bdat):
            # A refused chunk is still read in full; the reply goes out after it.
            self._bdat_discard = reply
            self._answered()
            return
        if isinstance(self._awaiting, MessageEnd):
            self.txn = _Transaction()
        self.send(reply)
        self._answered()
        if reply.code in (500, 501, 503):
            self.bad_commands += 1
            if self.bad_commands > self.max_bad_commands:
                self.close(Reply(421, "4.7.0", f"{self.hostname} Too many errors, closing"))

    def accept_helo(self, reply: Reply) -> None:
        event = self._awaiting
        self.greeted = True
        self.extended = bool(getattr(event, "extended", True))
        self.txn = _Transaction()
        self.send(reply)
        self._answered()

    def accept_mail(self, reply: Reply) -> None:
        self.txn = _Transaction(mail=self._awaiting.path)
        self.send(reply)
        self._answered()

    def accept_rcpt(self, reply: Reply) -> None:
        self.txn.rcpts += 1
        self.send(reply)
        self._answered()

    def accept_rset(self) -> None:
        self.txn = _Transaction()
        self.send(OK)
        self._answered()

    def start_data(self) -> None:
        self.reader.start_data()
        self._in_message = True
        self.send(Reply(354, "", "End data with <CR><LF>.<CR><LF>"))
        self._answered()

    def accept_bdat(self) -> None:
        self._answered()

    def accept_chunk(self, reply: Reply) -> None:
        """Answer a non-final BDAT chunk (RFC 3030: 250 per chunk)."""
        self.send(reply)
        self._answered()

    def finish_message(self, replies: list[Reply]) -> None:
        """Answer the end of a message: one reply (SMTP) or one per accepted recipient (LMTP)."""
        for r in replies:
            self.send(r)
        self.txn = _Transaction()
        self._answered()

    def fail_bdat_transaction(self, reply: Reply) -> None:
        """Refuse a chunk after reading it; later chunks of this transaction get 503."""
        self.send(reply)
        self.txn = _Transaction(mail=self.txn.mail, rcpts=self.txn.rcpts, failed_bdat=True, bdat=True)
        self._answered()

    def start_tls(self) -> int:
        """Send 220 and forget all state (RFC 3207 §4.2); returns how many bytes were discarded."""
        self.send(Reply(220, "2.0.0", "Ready to start TLS"))
        discarded = self.reader.discard_buffer()
        self.tls = True
        self.greeted = False
        self.extended = False
        self.auth_user = None
        self.txn = _Transaction()
        self._answered()
        return discarded

    def auth_challenge(self, text: str) -> None:
        """Send ``334 text`` and read the next line as an AuthLine (RFC 4954 §4)."""
        self._out.append(f"334 {text}\r\n".encode("ascii"))
        self._auth_line = True
        self._awaiting = None

    def accept_auth(self, user: str, reply: Reply) -> None:
        self.auth_user = user
        self.send(reply)
        self._answered()

    @property
    def in_message(self) -> bool:
        return self._in_message
