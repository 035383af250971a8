"""One IMAP session: state (RFC 3501 §3), capabilities and the command dispatcher.

Implementation notes (read before changing anything here):
- Commands of one connection run one at a time, in the order received; the protocol queues
  pipelined commands. Their responses therefore never interleave.
- Every store or directory call runs in a thread (``pymail.runtime.blocking``), never on the
  reactor thread; responses are written from the reactor thread.
- Untagged updates (EXISTS, EXPUNGE, FETCH FLAGS) are sent at command boundaries, just before
  the tagged response; EXPUNGE is held back during FETCH, STORE and SEARCH by sequence number
  (RFC 3501 §7.4.1) and sent at the next command that allows it.
- ``ImapError`` is this layer's one error type: it maps to a tagged NO or BAD with an optional
  response code (RFC 5530); ``StoreError`` codes map one to one.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from pymail.imap import serialize
from pymail.imap.parser import Command, ParseError
from pymail.imap.settings import ImapSettings
from pymail.runtime import blocking

log = logging.getLogger("pymail.imap")

NOT_AUTHENTICATED, AUTHENTICATED, SELECTED, LOGOUT = "not-authenticated", "authenticated", "selected", "logout"
ANY = (NOT_AUTHENTICATED, AUTHENTICATED, SELECTED)
AUTHED = (AUTHENTICATED, SELECTED)


class ImapError(Exception):
    """A command failed: tagged ``status`` (NO or BAD), optional ``[code]``, human text."""

    def __init__(self, text: str, code: str | None = None, status: str = "NO"):
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status

    def line(self) -> str:
        return f"[{self.code}] {self.text}" if self.code else self.text


def bad(text: str) -> ImapError:
    return ImapError(text, status="BAD")


def store_error(exc) -> ImapError:
    """StoreError → ImapError: the store's codes are RFC 5530 response codes already."""
    code = {"BADNAME": "CANNOT"}.get(exc.code, exc.code)
    return ImapError(exc.message if exc.message != exc.code else "Operation failed", code)


Handler = Callable[["Session", Command], Awaitable[str | None]]


class CommandSpec:
    def __init__(self, handler: Handler, states: tuple, uid: bool, allow_expunge: bool):
        self.handler = handler
        self.states = states
        self.uid = uid
        self.allow_expunge = allow_expunge


REGISTRY: dict[str, CommandSpec] = {}


def command(*names: str, states=ANY, uid: bool = False, allow_expunge: bool = True):
    """Register a handler: ``async def h(session, cmd) -> tagged OK text``."""

    def deco(fn: Handler) -> Handler:
        for n in names:
            REGISTRY[n] = CommandSpec(fn, states, uid, allow_expunge)
        return fn

    return deco


class Session:
    """``io`` is the transport side (the Twisted protocol): ``send(bytes)``, ``is_secure()``,
    ``remote_ip``, ``await next_line(timeout)``, ``start_tls()``, ``close()``,
    ``claim_user(address)``."""

    def __init__(self, ctx, listener, settings: ImapSettings, io):
        self.ctx = ctx
        self.listener = listener
        self.settings = settings
        self.io = io
        self.state = NOT_AUTHENTICATED
        self.user: str | None = None
        self.account = None
        self._selected = None  # SelectedMailbox
        self.enabled: set[str] = set()
        self.saved_search: list[int] = []  # RFC 5182 "$" (uids)
        self.contexts: dict = {}  # tag → UpdatingSearch (RFC 5267)
        self.notify = None  # NotifyWatch (RFC 5465) once NOTIFY SET was given
        self.tls_started = False
        self.quota_limits: tuple[int | None, int | None] = (None, None)  # (bytes, messages)

    @property
    def selected(self):
        return self._selected

    @selected.setter
    def selected(self, view) -> None:
        old, self._selected = self._selected, view
        if old is not view:
            self.contexts.clear()  # updating searches end with their mailbox (RFC 5267 §4.3)
            if self.notify is not None:  # the selected mailbox is reported the usual way
                self.notify.selected_name = view.name if view is not None else None
        if old is not None and old is not view:
            from pymail.runtime import run_blocking

            run_blocking(old.mailbox.close).addErrback(lambda f: log.warning("imap: close: %s", f.value))

    # --- helpers for command modules -------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.io.send(data)

    def untagged(self, *parts) -> None:
        self.send(serialize.untagged(*parts, utf8=self.utf8))

    @property
    def rev2(self) -> bool:
        return "IMAP4REV2" in self.enabled

    @property
    def utf8(self) -> bool:
        # RFC 6855 UTF8=ACCEPT; IMAP4rev2 names mailboxes in UTF-8 too (RFC 9051 §5.1)
        return "UTF8=ACCEPT" in self.enabled or "IMAP4REV2" in self.enabled

    @property
    def secure(self) -> bool:
        return self.io.is_secure()

    @property
    def plaintext_ok(self) -> bool:
        return self.secure or bool(getattr(self.listener, "allow_plaintext_auth", False))

    def capabilities(self) -> list[str]:
        caps = ["IMAP4rev1", "IMAP4rev2", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE"]
        if self.state == NOT_AUTHENTICATED:
            if not self.secure and self.ctx.tls is not None and not self.tls_started:
                caps.append("STARTTLS")
            if self.plaintext_ok:
                caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
            else:
                caps.append("LOGINDISABLED")
            return caps
        caps += ["NAMESPACE", "UIDPLUS", "MOVE", "UNSELECT", "CHILDREN", "LIST-EXTENDED", "MULTIAPPEND", "CATENATE",
                 "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE", "ESEARCH", "SEARCHRES", "WITHIN",
                 f"APPENDLIMIT={self.settings.max_literal_size}", "CONDSTORE", "QRESYNC", "BINARY", "SORT", "SORT=DISPLAY", "ESORT",
                 "CONTEXT=SEARCH", "CONTEXT=SORT",
                 "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "COMPRESS=DEFLATE",
                 "UTF8=ACCEPT", "STATUS=SIZE", "NOTIFY",
                 "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"]
        return caps

    async def enable_condstore(self) -> None:
        """A CONDSTORE-enabling command was used (RFC 7162 §3.1): from now on FETCH responses
        carry MODSEQ; a selected mailbox gets its HIGHESTMODSEQ announced once."""
        if "CONDSTORE" in self.enabled:
            return
        self.enabled.add("CONDSTORE")
        view = self.selected
        if view is not None and not view.condstore:
            view.condstore = True
            highest = await self.blocking(lambda: view.mailbox.highest_modseq)
            self.untagged("OK", f"[HIGHESTMODSEQ {highest}] Highest")

    async def blocking(self, fn, *args, **kwargs):
        return await blocking(fn, *args, **kwargs)

    def collect_updates(self, allow_expunge: bool, with_uid: bool = False) -> list[bytes]:
        """Blocking (run in a thread): the untagged updates of the selected mailbox."""
        sel = self.selected
        if sel is None:
            return []
        contexts = list(self.contexts.values())
        old_seq = {u: i + 1 for i, u in enumerate(sel.uids)} if contexts else {}
        lines = sel.refresh(allow_expunge, with_uid)
        for ctx in contexts:  # RFC 5267 §4.3: ADDTO / REMOVEFROM of updating searches
            lines += ctx.updates(sel, old_seq)
        return lines

    async def flush_updates(self, allow_expunge: bool, with_uid: bool = False) -> None:
        if self.selected is None:
            return
        lines = await self.blocking(self.collect_updates, allow_expunge, with_uid)
        if lines:
            self.send(b"".join(lines))

    # --- dispatch --------------------------------------------------------------------------
    async def execute(self, cmd: Command) -> None:
        from pymail.imap import commands  # noqa: F401  (registers the handlers)
        from pymail.store.errors import StoreError

        spec = REGISTRY.get(cmd.name)
        if spec is None or (cmd.uid and not spec.uid):
            self.send(serialize.tagged(cmd.tag, "BAD", f"Unknown command {'UID ' if cmd.uid else ''}{cmd.name[:30]}"))
            return
        if self.state not in spec.states:
            text = {NOT_AUTHENTICATED: "Log in first", AUTHENTICATED: "Select a mailbox first"}.get(
                self.state, "Not allowed now")
            if self.state != NOT_AUTHENTICATED and spec.states == (NOT_AUTHENTICATED,):
                text = "Already authenticated"
            self.send(serialize.tagged(cmd.tag, "BAD", text))
            return
        try:
            ok_text = await spec.handler(self, cmd)
        except ImapError as e:
            await self._updates_after(cmd, spec)
            self.send(serialize.tagged(cmd.tag, e.status, e.line()))
            return
        except ParseError as e:
            self.send(serialize.tagged(cmd.tag, "BAD", str(e)))
            return
        except StoreError as e:
            await self._updates_after(cmd, spec)
            err = store_error(e)
            self.send(serialize.tagged(cmd.tag, err.status, err.line()))
            return
        if ok_text is None:  # the handler sent its own tagged response (LOGOUT, STARTTLS)
            return
        await self._updates_after(cmd, spec)
        self.send(serialize.tagged(cmd.tag, "OK", ok_text))

    async def _updates_after(self, cmd: Command, spec: CommandSpec) -> None:
        if self.selected is None or self.state != SELECTED:
            return
        try:
            await self.flush_updates(spec.allow_expunge or cmd.uid, cmd.uid)
        except Exception:  # the mailbox vanished under us: tell the client, keep the session
            log.exception("imap: refreshing %s failed", self.selected.name)

    async def close(self) -> None:
        """Connection gone (LOGOUT, drop, autologout): release the selected mailbox."""
        self.selected = None
        self.state = LOGOUT
