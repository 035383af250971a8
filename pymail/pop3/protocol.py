"""The POP3 session as a pure state machine (sans-IO): bytes in, actions out.

The server feeds received bytes to ``Pop3Machine.data_received`` and carries out the actions it
gets back, in order: ``Send`` bytes, ``StartTLS``, ``Close``, and the effects that need the
store or the directory (``Login``, ``Retrieve``, ``Update``). While an effect runs the machine
is *busy*: it buffers further input (RFC 2449 PIPELINING) and answers nothing until the server
reports the outcome with ``effect_done(result)`` or ``effect_failed(Pop3Error)``. Commands are
therefore answered strictly in order, one at a time.

States follow RFC 1939 §3: AUTHORIZATION → TRANSACTION (after a login) → UPDATE (after QUIT;
only there are DELE'd messages removed) → CLOSED. A dropped connection never reaches UPDATE.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pymail.pop3 import sasl
from pymail.pop3.errors import Pop3Error
from pymail.pop3.wire import CRLF, Command, CommandSyntaxError, multiline, ok, parse_command

MAX_BUFFERED = 1024 * 1024  # pipelined input held while busy; more closes the connection


class State(enum.Enum):
    AUTHORIZATION = "authorization"
    TRANSACTION = "transaction"
    UPDATE = "update"
    CLOSED = "closed"


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    data: bytes


@dataclass(frozen=True)
class StartTLS:
    """Start TLS now (the ``+OK`` before it has been sent as a ``Send``)."""


@dataclass(frozen=True)
class Close:
    """Close the connection after the pending output is written."""


@dataclass(frozen=True)
class Login:
    """Authenticate, lock and open the maildrop; ``effect_done(Maildrop)``."""

    username: str
    password: str = field(repr=False)
    mechanism: str  # "USER" or "PLAIN", for the log


@dataclass(frozen=True)
class Retrieve:
    """Send ``ok_line``, the message body (``body_lines`` for TOP) and ``.CRLF``."""

    number: int
    uid: int
    ok_line: bytes
    body_lines: int | None = None


@dataclass(frozen=True)
class Update:
    """The UPDATE state (RFC 1939 §6): remove ``delete_uids``; ``retrieved_uids`` were RETR'd."""

    delete_uids: tuple[int, ...]
    retrieved_uids: tuple[int, ...]


Action = Send | StartTLS | Close | Login | Retrieve | Update


# -- the maildrop as the session sees it ---------------------------------------------------


@dataclass(frozen=True)
class MessageInfo:
    uid: int
    size: int  # octets RETR delivers after unstuffing (RFC 1939 §11)
    uidl: str  # RFC 1939 §7 unique-id


@dataclass
class Maildrop:
    """The snapshot taken at login: message numbers are positions in ``messages`` plus one."""

    user: str
    messages: list[MessageInfo]


# -- the machine ------------------------------------------------------------------------------

_AUTH_COMMANDS = {"USER", "PASS", "AUTH", "APOP"}
_TRANSACTION_COMMANDS = {"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL"}


class Pop3Machine:
    def __init__(
        self,
        *,
        secure: bool,
        tls_available: bool,
        allow_plaintext_auth: bool,
        max_line_length: int = 2048,
        max_bad_commands: int = 20,
        implementation: str = "pymail",
    ) -> None:
        self.state = State.AUTHORIZATION
        self.secure = secure
        self.tls_available = tls_available
        self.allow_plaintext_auth = allow_plaintext_auth
        self.max_line_length = max_line_length
        self.max_bad_commands = max_bad_commands
        self.implementation = implementation
        self.maildrop: Maildrop | None = None
        self.deleted: set[int] = set()  # message numbers marked by DELE
        self.retrieved: set[int] = set()  # message numbers sent in full by RETR
        self._buffer = bytearray()
        self._discarding = False  # inside an over-long line
        self._busy: str | None = None  # the effect we wait for
        self._pending_number = 0  # the message number of a Retrieve in flight
        self._user: str | None = None  # from USER
        self._sasl_pending = False  # AUTH PLAIN sent "+ ", the next line is the response
        self._bad_commands = 0

    # -- input -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._busy is not None

    def greeting(self) -> list[Action]:
        return [Send(ok(f"{self.implementation} POP3 server ready"))]

    def data_received(self, data: bytes) -> list[Action]:
        if self.state in (State.CLOSED, State.UPDATE):
            return []
        self._buffer += data
        if self.busy and len(self._buffer) > MAX_BUFFERED:
            self.state = State.CLOSED
            return [Send(b"-ERR Too much pipelined input, closing connection" + CRLF), Close()]
        return self._run()

    def effect_done(self, result: object = None) -> list[Action]:
        kind, self._busy = self._busy, None
        if kind == "login":
            assert isinstance(result, Maildrop)
            self.maildrop = result
            self.state = State.TRANSACTION
            count, size = self._totals()
            actions: list[Action] = [Send(ok(f"Logged in, {count} messages ({size} octets)"))]
        elif kind == "retr":
            self.retrieved.add(self._pending_number)
            actions = []
        elif kind == "update":
            self.state = State.CLOSED
            removed = result if isinstance(result, int) else len(self.deleted)
            text = f"Logging out, {removed} messages deleted" if removed else "Logging out"
            return [Send(ok(text)), Close()]
        else:
            actions = []
        return actions + self._run()

    def effect_failed(self, error: Pop3Error) -> list[Action]:
        kind, self._busy = self._busy, None
        actions: list[Action] = [Send(error.reply())]
        if kind == "update":
            self.state = State.CLOSED
            return actions + [Close()]
        if kind == "login":
            self._user = None
        return actions + self._run()

    # -- line framing ------------------------------------------------------------------------

    def _run(self) -> list[Action]:
        actions: list[Action] = []
        while not self.busy and self.state in (State.AUTHORIZATION, State.TRANSACTION):
            line = self._next_line(actions)
            if line is None:
                break
            actions.extend(self._dispatch_line(line))
        return actions

    def _next_line(self, actions: list[Action]) -> bytes | None:
        while True:
            nl = self._buffer.find(b"\n")
            if self._discarding:
                if nl < 0:
                    self._buffer.clear()
                    return None
                del self._buffer[: nl + 1]
                self._discarding = False
                continue
            if nl < 0:
                if len(self._buffer) > self.max_line_length:
                    self._buffer.clear()
                    self._discarding = True
                    actions.extend(self._bad("Line too long"))
                return None
            if nl + 1 > self.max_line_length:
                del self._buffer[: nl + 1]
                actions.extend(self._bad("Line too long"))
                if self.state is State.CLOSED:
                    return None
                continue
            line = bytes(self._buffer[:nl])
            del self._buffer[: nl + 1]
            return line[:-1] if line.endswith(b"\r") else line

    def _bad(self, text: str) -> list[Action]:
        """A bad command; too many of them end the session (a client gone astray or a probe)."""
        self._sasl_pending = False  # a bad line also ends an AUTH exchange
        self._bad_commands += 1
        if self._bad_commands >= self.max_bad_commands:
            self.state = State.CLOSED
            return [Send(f"-ERR {text}; too many bad commands, closing connection".encode()
                         + CRLF), Close()]
        return [Send(f"-ERR {text}".encode() + CRLF)]

    # -- dispatch ----------------------------------------------------------------------------

    def _dispatch_line(self, line: bytes) -> list[Action]:
        if self._sasl_pending:
            self._sasl_pending = False
            return self._sasl_response(line.decode("ascii", "replace"))
        try:
            command = parse_command(line)
        except CommandSyntaxError as exc:
            return self._bad(str(exc))
        handler = getattr(self, f"_cmd_{command.keyword.lower()}", None)
        if command.keyword in ("CAPA", "QUIT"):
            return handler(command)
        if self.state is State.AUTHORIZATION:
            if command.keyword in _AUTH_COMMANDS or command.keyword == "STLS":
                return handler(command)
            if command.keyword in _TRANSACTION_COMMANDS:
                return self._bad(f"{command.keyword} is not allowed before login")
        else:
            if command.keyword in _TRANSACTION_COMMANDS:
                try:
                    return handler(command)
                except Pop3Error as exc:
                    return [Send(exc.reply())]
            if command.keyword in _AUTH_COMMANDS:
                return self._bad("Already logged in")
            if command.keyword == "STLS":
                return self._bad("STLS is only allowed before login")
        return self._bad(f"Unknown command {command.keyword[:16]}")

    # -- any state -------------------------------------------------------------------------------

    def _cmd_capa(self, command: Command) -> list[Action]:
        # RFC 2449 §5; USER and SASL only where a login is allowed right now (RFC 2595 §4).
        caps = ["CAPA", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state is State.AUTHORIZATION:
            if self._plaintext_ok():
                caps += ["USER", "SASL " + " ".join(sasl.MECHANISMS)]
            if self.tls_available and not self.secure:
                caps.append("STLS")
        caps.append(f"IMPLEMENTATION {self.implementation}")
        return [Send(multiline("Capability list follows", caps))]

    def _cmd_quit(self, command: Command) -> list[Action]:
        if self.state is State.TRANSACTION:
            # RFC 1939 §6: QUIT from TRANSACTION enters UPDATE, where DELE'd messages go.
            assert self.maildrop is not None
            self.state = State.UPDATE
            self._busy = "update"
            msgs = self.maildrop.messages
            return [Update(tuple(msgs[n - 1].uid for n in sorted(self.deleted)),
                           tuple(msgs[n - 1].uid for n in sorted(self.retrieved)
                                 if n not in self.deleted))]
        self.state = State.CLOSED
        return [Send(ok("Logging out")), Close()]

    # -- AUTHORIZATION -------------------------------------------------------------------------

    def _plaintext_ok(self) -> bool:
        return self.secure or self.allow_plaintext_auth

    def _plaintext_refused(self) -> list[Action]:
        # RFC 2595 §4 / Dovecot's wording; the client should use STLS (or port 995) first.
        return [Send(Pop3Error("Plaintext authentication disallowed on non-secure (SSL/TLS) "
                               "connections", "AUTH").reply())]

    def _cmd_user(self, command: Command) -> list[Action]:
        if not self._plaintext_ok():
            return self._plaintext_refused()
        if not command.rest.strip():
            return self._bad("USER needs a user name")
        self._user = command.rest.strip()
        return [Send(ok())]

    def _cmd_pass(self, command: Command) -> list[Action]:
        if not self._plaintext_ok():
            return self._plaintext_refused()
        if self._user is None:
            return [Send(b"-ERR No user name given, send USER first" + CRLF)]
        user, self._user = self._user, None
        if not command.rest:
            return [Send(Pop3Error("Authentication failed", "AUTH").reply())]
        self._busy = "login"
        return [Login(user, command.rest, "USER")]

    def _cmd_apop(self, command: Command) -> list[Action]:
        return [Send(b"-ERR APOP is not supported, use USER/PASS or AUTH PLAIN" + CRLF)]

    def _cmd_auth(self, command: Command) -> list[Action]:
        if not command.args:
            # Not in RFC 5034, but clients (Outlook) send a bare AUTH to list mechanisms.
            mechanisms = list(sasl.MECHANISMS) if self._plaintext_ok() else []
            return [Send(multiline("Supported mechanisms follow", mechanisms))]
        if not self._plaintext_ok():
            return self._plaintext_refused()
        mechanism = command.args[0].upper()
        if mechanism not in sasl.MECHANISMS:
            return [Send(b"-ERR Unsupported authentication mechanism" + CRLF)]
        if len(command.args) > 2:
            return self._bad("AUTH takes a mechanism and at most one initial response")
        if len(command.args) == 2:
            return self._sasl_response(command.args[1])
        self._sasl_pending = True
        return [Send(b"+ " + CRLF)]  # RFC 5034 §4: an empty challenge

    def _sasl_response(self, response: str) -> list[Action]:
        if response.strip() == "*":
            return [Send(b"-ERR Authentication cancelled" + CRLF)]  # RFC 5034 §4
        try:
            user, password = sasl.decode_plain(response)
        except Pop3Error as exc:
            return [Send(exc.reply())]
        self._busy = "login"
        return [Login(user, password, "PLAIN")]

    def _cmd_stls(self, command: Command) -> list[Action]:
        if self.secure:
            return [Send(b"-ERR Command not permitted when TLS active" + CRLF)]  # RFC 2595 §4
        if not self.tls_available:
            return [Send(b"-ERR TLS is not available on this server" + CRLF)]
        # RFC 2595 §4 / RFC 3207 §4.2: whatever the client sent after STLS in plaintext is
        # discarded, and the state learned before TLS (a USER name) is forgotten.
        self._buffer.clear()
        self._discarding = False
        self._user = None
        self.secure = True
        return [Send(ok("Begin TLS negotiation")), StartTLS()]

    # -- TRANSACTION -----------------------------------------------------------------------------

    def _totals(self) -> tuple[int, int]:
        assert self.maildrop is not None
        live = [m for n, m in enumerate(self.maildrop.messages, 1) if n not in self.deleted]
        return len(live), sum(m.size for m in live)

    def _message(self, arg: str) -> tuple[int, MessageInfo]:
        """A message number argument → (number, message); RFC 1939 §5 errors otherwise."""
        assert self.maildrop is not None
        if not arg.isdigit() or len(arg) > 10:
            raise Pop3Error("Invalid message number")
        number = int(arg)
        if not 1 <= number <= len(self.maildrop.messages):
            raise Pop3Error("No such message")
        if number in self.deleted:
            raise Pop3Error(f"Message {number} already deleted")
        return number, self.maildrop.messages[number - 1]

    def _one_optional_arg(self, command: Command) -> str | None:
        if len(command.args) > 1:
            raise Pop3Error(f"Too many arguments for {command.keyword}")
        return command.args[0] if command.args else None

    def _cmd_stat(self, command: Command) -> list[Action]:
        count, size = self._totals()
        return [Send(ok(f"{count} {size}"))]

    def _cmd_list(self, command: Command) -> list[Action]:
        arg = self._one_optional_arg(command)
        if arg is not None:
            number, message = self._message(arg)
            return [Send(ok(f"{number} {message.size}"))]
        count, size = self._totals()
        assert self.maildrop is not None
        lines = [f"{n} {m.size}" for n, m in enumerate(self.maildrop.messages, 1)
                 if n not in self.deleted]
        return [Send(multiline(f"{count} messages ({size} octets)", lines))]

    def _cmd_uidl(self, command: Command) -> list[Action]:
        arg = self._one_optional_arg(command)
        if arg is not None:
            number, message = self._message(arg)
            return [Send(ok(f"{number} {message.uidl}"))]
        assert self.maildrop is not None
        lines = [f"{n} {m.uidl}" for n, m in enumerate(self.maildrop.messages, 1)
                 if n not in self.deleted]
        return [Send(multiline("Unique-ID listing follows", lines))]

    def _cmd_retr(self, command: Command) -> list[Action]:
        if len(command.args) != 1:
            raise Pop3Error("RETR needs one message number")
        number, message = self._message(command.args[0])
        self._busy, self._pending_number = "retr", number
        return [Retrieve(number, message.uid, ok(f"{message.size} octets"))]

    def _cmd_top(self, command: Command) -> list[Action]:
        if len(command.args) != 2:
            raise Pop3Error("TOP needs a message number and a line count")
        number, message = self._message(command.args[0])
        lines = command.args[1]
        if not lines.isdigit() or len(lines) > 10:
            raise Pop3Error("Invalid line count")
        self._busy, self._pending_number = "top", number
        return [Retrieve(number, message.uid, ok("Top of message follows"), int(lines))]

    def _cmd_dele(self, command: Command) -> list[Action]:
        if len(command.args) != 1:
            raise Pop3Error("DELE needs one message number")
        number, _ = self._message(command.args[0])
        self.deleted.add(number)  # RFC 1939 §5: only marked; removed in the UPDATE state
        return [Send(ok(f"Message {number} marked for deletion"))]

    def _cmd_noop(self, command: Command) -> list[Action]:
        return [Send(ok())]

    def _cmd_rset(self, command: Command) -> list[Action]:
        self.deleted.clear()
        count, size = self._totals()
        return [Send(ok(f"Maildrop has {count} messages ({size} octets)"))]
