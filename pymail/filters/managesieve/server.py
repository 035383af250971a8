"""ManageSieve server (RFC 5804): upload, list, activate and check users' Sieve scripts.

Implementation notes:
- One command at a time per connection; bytes that arrive meanwhile wait in the reader.
- Scripts are stored with ``pymail.filters.sieve.storage.ScriptStore`` (Dovecot layout next to
  the user's maildir); every disk access runs in a thread (``pymail.runtime.blocking``).
- Login is SASL PLAIN only (§2.1), through ``ctx.authenticator`` (bcrypt in a thread, throttled);
  it is offered only over TLS unless ``listener.allow_plaintext_auth``.
- STARTTLS (§2.2): bytes the client sent after the command in the same read are discarded, and
  the capabilities are sent again once TLS is up (§2.2.1).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Factory, Protocol

from pymail.filters.managesieve.wire import Atom, Reader, WireError, quote, response
from pymail.filters.sieve import EXTENSIONS, SieveError, compile_script
from pymail.filters.sieve.storage import MAX_SCRIPT_SIZE, ScriptStore, ScriptStoreError
from pymail.runtime import blocking

log = logging.getLogger("pymail.managesieve")

IDLE_TIMEOUT = 30 * 60.0
MAX_FAILED_LOGINS = 3


class CommandError(Exception):
    """A NO response: ``code`` is the RFC 5804 §1.3 response code."""

    def __init__(self, text: str, code: str = ""):
        super().__init__(text)
        self.text = text
        self.code = code


def _text(token: Any, what: str) -> str:
    if not isinstance(token, bytes):
        raise CommandError(f"{what} must be a string")
    try:
        return token.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"{what} is not UTF-8") from None


class ManageSieveProtocol(Protocol):
    def connectionMade(self) -> None:
        self.reader = Reader(MAX_SCRIPT_SIZE + 1024)
        self.user: str | None = None
        self.store: ScriptStore | None = None
        self.busy = False
        self.closing = False
        self.failed_logins = 0
        self.sasl_pending: str | None = None  # mechanism waiting for the client's response
        peer = self.transport.getPeer()
        self.remote_ip = getattr(peer, "host", "")
        self.idle = None
        self._touch()
        self.transport.write(self.capabilities() + response("OK", "pymail ManageSieve ready"))

    # -- state --------------------------------------------------------------------------------
    @property
    def secure(self) -> bool:
        return self.factory.listener.tls == "implicit" or ISSLTransport.providedBy(self.transport)

    def capabilities(self) -> bytes:
        lines = [(b"IMPLEMENTATION", "pymail"), (b"SIEVE", " ".join(EXTENSIONS))]
        if self.user is None and (self.secure or self.factory.listener.allow_plaintext_auth):
            lines.append((b"SASL", "PLAIN"))
        elif self.user is None:
            lines.append((b"SASL", ""))
        if not self.secure and self.factory.ctx.tls is not None and self.user is None:
            lines.append((b"STARTTLS", None))
        lines.append((b"MAXREDIRECTS", str(self.factory.max_redirects)))
        lines.append((b"VERSION", "1.0"))
        out = b""
        for name, value in lines:
            out += b'"' + name + b'"' + (b" " + quote(value) if value is not None else b"") + b"\r\n"
        return out

    def _touch(self) -> None:
        from twisted.internet import reactor

        if self.idle is not None and self.idle.active():
            self.idle.reset(IDLE_TIMEOUT)
        else:
            self.idle = reactor.callLater(IDLE_TIMEOUT, self._timeout)

    def _timeout(self) -> None:
        self.transport.write(response("BYE", "idle too long"))
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.closing = True
        if self.idle is not None and self.idle.active():
            self.idle.cancel()

    # -- input --------------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self.closing:
            return
        self._touch()
        self.reader.feed(data)
        self._pump()

    def _pump(self) -> None:
        while not self.busy and not self.closing:
            try:
                tokens = self.reader.next()
            except WireError as exc:
                if exc.fatal:
                    self._bye(str(exc))
                    return
                self.transport.write(response("NO", str(exc)))
                continue
            if tokens is None:
                return
            self.busy = True
            d = defer.ensureDeferred(self._dispatch(tokens))
            d.addErrback(self._crashed)
            d.addBoth(self._done)

    def _done(self, _: Any) -> None:
        self.busy = False
        if not self.closing:
            self._pump()

    def _crashed(self, failure: Any) -> None:
        log.error("managesieve command failed: %s", failure.getTraceback())
        if not self.closing:
            self.transport.write(response("NO", "internal server error", "TRYLATER"))

    def _bye(self, text: str) -> None:
        self.transport.write(response("BYE", text))
        self.closing = True
        self.transport.loseConnection()

    # -- commands -----------------------------------------------------------------------------
    async def _dispatch(self, tokens: list) -> None:
        if self.sasl_pending is not None:
            self.sasl_pending = None
            await self._sasl_response(tokens)
            return
        if not tokens:
            self.transport.write(response("NO", "empty command"))
            return
        if not isinstance(tokens[0], Atom):
            self.transport.write(response("NO", "expected a command name"))
            return
        name, args = tokens[0].value, tokens[1:]
        handler = getattr(self, f"cmd_{name.lower()}", None)
        if handler is None or name.lower() not in COMMANDS:
            self.transport.write(response("NO", f"unknown command {name}"))
            return
        needs_auth, arity = COMMANDS[name.lower()]
        if needs_auth and self.user is None:
            self.transport.write(response("NO", "log in first (AUTHENTICATE)"))
            return
        if not arity[0] <= len(args) <= arity[1]:
            self.transport.write(response("NO", f"wrong number of arguments for {name}"))
            return
        try:
            await handler(*args)
        except CommandError as exc:
            self.transport.write(response("NO", exc.text, exc.code))
        except ScriptStoreError as exc:
            self.transport.write(response("NO", str(exc), exc.code))

    async def cmd_capability(self) -> None:
        self.transport.write(self.capabilities() + response("OK", "capability completed"))

    async def cmd_noop(self, tag: Any = None) -> None:
        if tag is not None:
            self.transport.write(b"OK (TAG " + quote(_text(tag, "tag")) + b') "done"\r\n')
        else:
            self.transport.write(response("OK", "done"))

    async def cmd_logout(self) -> None:
        self.transport.write(response("OK", "bye"))
        self.closing = True
        self.transport.loseConnection()

    async def cmd_starttls(self) -> None:
        if self.secure or self.factory.ctx.tls is None:
            raise CommandError("TLS is not available here")
        if self.user is not None:
            raise CommandError("already logged in")
        self.transport.write(response("OK", "begin TLS negotiation"))
        self.reader.discard()  # never parse what was sent in the clear after STARTTLS
        self.transport.startTLS(self.factory.ctx.tls)
        self.transport.write(self.capabilities() + response("OK", "TLS active"))

    async def cmd_authenticate(self, mechanism: Any, initial: Any = None) -> None:
        if self.user is not None:
            raise CommandError("already logged in")
        if _text(mechanism, "mechanism").upper() != "PLAIN":
            raise CommandError("only SASL PLAIN is supported")
        if not (self.secure or self.factory.listener.allow_plaintext_auth):
            raise CommandError("use STARTTLS before logging in", "ENCRYPT-NEEDED")
        if initial is None:
            self.sasl_pending = "PLAIN"
            self.transport.write(b'""\r\n')  # §2.1: an empty server challenge
            return
        await self._sasl_response([initial])

    async def _sasl_response(self, tokens: list) -> None:
        if len(tokens) != 1 or not isinstance(tokens[0], bytes):
            self.transport.write(response("NO", "expected one string with the SASL response"))
            return
        if tokens[0] == b"*":
            self.transport.write(response("NO", "authentication aborted"))
            return
        try:
            decoded = base64.b64decode(tokens[0], validate=True)
            authzid, authcid, password = decoded.split(b"\0")
            user = authcid.decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            self.transport.write(response("NO", "malformed SASL PLAIN response"))
            return
        from pymail.directory.auth import AuthFailed, AuthThrottled, AuthUnavailable

        try:
            canonical = await self.factory.ctx.authenticator.authenticate(user, password, self.remote_ip)
        except AuthThrottled as exc:
            self.transport.write(response("NO", str(exc), "TRYLATER"))
            return
        except AuthUnavailable as exc:
            self.transport.write(response("NO", str(exc), "TRYLATER"))
            return
        except AuthFailed as exc:
            self.failed_logins += 1
            if self.failed_logins >= MAX_FAILED_LOGINS:
                self._bye("too many failed logins")
                return
            self.transport.write(response("NO", str(exc)))
            return
        if authzid and authzid.decode("utf-8", "replace").lower() != canonical.lower():
            self.transport.write(response("NO", "cannot act as another user"))
            return
        self.user = canonical
        root = await blocking(lambda: self.factory.ctx.store.account(canonical).root)
        self.store = ScriptStore.for_maildir(root)
        log.info("managesieve login user=%s ip=%s", canonical, self.remote_ip)
        self.transport.write(response("OK", "logged in"))

    async def cmd_unauthenticate(self) -> None:
        self.user = None
        self.store = None
        self.transport.write(response("OK", "logged out"))

    async def cmd_havespace(self, name: Any, size: Any) -> None:
        if not isinstance(size, Atom) or not size.value.isdigit():
            raise CommandError("the size must be a number")
        await blocking(self.store.check_space, _text(name, "script name"), int(size.value))
        self.transport.write(response("OK", "putscript would succeed"))

    async def cmd_putscript(self, name: Any, script: Any) -> None:
        text = _text(script, "script")
        try:
            await blocking(self.store.put, _text(name, "script name"), text)
        except SieveError as exc:
            raise CommandError(str(exc)) from None
        self.transport.write(response("OK", "script stored"))

    async def cmd_checkscript(self, script: Any) -> None:
        text = _text(script, "script")
        try:
            await blocking(compile_script, text)
        except SieveError as exc:
            raise CommandError(str(exc)) from None
        self.transport.write(response("OK", "script is valid"))

    async def cmd_listscripts(self) -> None:
        scripts = await blocking(self.store.list)
        out = b"".join(quote(name) + (b" ACTIVE" if active else b"") + b"\r\n" for name, active in scripts)
        self.transport.write(out + response("OK", "listscripts completed"))

    async def cmd_getscript(self, name: Any) -> None:
        text = await blocking(self.store.get, _text(name, "script name"))
        data = text.encode("utf-8")
        self.transport.write(b"{%d}\r\n" % len(data) + data + b"\r\n" + response("OK", "getscript completed"))

    async def cmd_setactive(self, name: Any) -> None:
        await blocking(self.store.set_active, _text(name, "script name"))
        self.transport.write(response("OK", "active script set" if name else "no script active"))

    async def cmd_deletescript(self, name: Any) -> None:
        await blocking(self.store.delete, _text(name, "script name"))
        self.transport.write(response("OK", "script deleted"))

    async def cmd_renamescript(self, old: Any, new: Any) -> None:
        await blocking(self.store.rename, _text(old, "script name"), _text(new, "new script name"))
        self.transport.write(response("OK", "script renamed"))


# name -> (needs login, (min args, max args))
COMMANDS = {
    "capability": (False, (0, 0)), "noop": (False, (0, 1)), "logout": (False, (0, 0)),
    "starttls": (False, (0, 0)), "authenticate": (False, (1, 2)), "unauthenticate": (True, (0, 0)),
    "havespace": (True, (2, 2)), "putscript": (True, (2, 2)), "checkscript": (True, (1, 1)),
    "listscripts": (True, (0, 0)), "getscript": (True, (1, 1)), "setactive": (True, (1, 1)),
    "deletescript": (True, (1, 1)), "renamescript": (True, (2, 2)),
}


class ManageSieveFactory(Factory):
    protocol = ManageSieveProtocol

    def __init__(self, ctx: Any, listener: Any):
        self.ctx = ctx
        self.listener = listener
        filters = getattr(getattr(ctx, "config", None), "filters", None)
        self.max_redirects = getattr(filters, "sieve_max_redirects", 4)


def make_factory(ctx: Any, listener: Any) -> ManageSieveFactory:
    """The ``managesieve`` role's factory (docs/seams.md "Protocol factories")."""
    return ManageSieveFactory(ctx, listener)
