"""Any-state and login commands: CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE, ID,
ENABLE, NAMESPACE (RFC 3501 §6.1-6.2, RFC 4959 SASL-IR, RFC 2971 ID, RFC 5161 ENABLE,
RFC 2342 NAMESPACE)."""

from __future__ import annotations

import base64
import binascii

from pymail.imap import serialize
from pymail.imap.parser import Atom, astring
from pymail.imap.session import (AUTHED, AUTHENTICATED, LOGOUT, NOT_AUTHENTICATED, ImapError,
                                 bad, command)


def _no_args(cmd) -> None:
    if cmd.args:
        raise bad(f"{cmd.name} takes no arguments")


@command("CAPABILITY")
async def capability(session, cmd):
    _no_args(cmd)
    session.untagged("CAPABILITY " + " ".join(session.capabilities()))
    return "Capability completed"


@command("NOOP", "CHECK")
async def noop(session, cmd):
    _no_args(cmd)
    if cmd.name == "CHECK" and session.selected is None:
        raise bad("Select a mailbox first")
    return f"{cmd.name} completed"


@command("LOGOUT")
async def logout(session, cmd):
    _no_args(cmd)
    session.untagged("BYE Logging out")
    session.send(serialize.tagged(cmd.tag, "OK", "Logout completed"))
    session.state = LOGOUT
    session.selected = None
    session.io.close()
    return None


@command("STARTTLS", states=(NOT_AUTHENTICATED,))
async def starttls(session, cmd):
    _no_args(cmd)
    if session.secure or session.ctx.tls is None or session.tls_started:
        raise bad("TLS is not available here")
    # The protocol discarded whatever followed this line in the same read (RFC 3501 §6.2.1,
    # RFC 2595 §3.1: no command injection across the TLS boundary).
    session.send(serialize.tagged(cmd.tag, "OK", "Begin TLS negotiation now"))
    session.tls_started = True
    session.io.start_tls()
    return None


async def _login(session, username: bytes, password: bytes) -> str:
    from pymail.directory.auth import AuthFailed, AuthThrottled, AuthUnavailable

    try:
        user_text = username.decode("utf-8")
        pass_text = password.decode("utf-8")
    except UnicodeDecodeError:
        raise ImapError("Authentication failed", "AUTHENTICATIONFAILED") from None
    try:
        address = await session.ctx.authenticator.authenticate(user_text, pass_text, session.io.remote_ip)
    except AuthUnavailable:
        raise ImapError("Authentication temporarily unavailable", "UNAVAILABLE") from None
    except AuthThrottled:
        raise ImapError("Too many failed logins, try again later", "UNAVAILABLE") from None
    except AuthFailed:
        raise ImapError("Authentication failed", "AUTHENTICATIONFAILED") from None
    if not session.io.claim_user(address):
        raise ImapError("Too many connections for this user", "LIMIT")
    store, directory = session.ctx.store, session.ctx.directory

    def open_account():
        record = directory.get_user(address) if directory is not None else None
        account = store.account(address, getattr(record, "quota_bytes", None),
                                getattr(record, "quota_messages", None))
        # Clients open several connections at once on first contact (Thunderbird: 4), and
        # workers or hosts may serve them: ensure() is safe to run everywhere at once (locks
        # in the maildir; tests/store/test_store_ensure_race.py)
        account.ensure()
        return account, (getattr(record, "quota_bytes", None), getattr(record, "quota_messages", None))

    session.account, session.quota_limits = await session.blocking(open_account)
    session.user = address
    session.state = AUTHENTICATED
    return f"[CAPABILITY {' '.join(session.capabilities())}] Logged in"


@command("LOGIN", states=(NOT_AUTHENTICATED,))
async def login(session, cmd):
    if len(cmd.args) != 2:
        raise bad("LOGIN needs a user name and a password")
    if not session.plaintext_ok:
        raise ImapError("Use STARTTLS first", "PRIVACYREQUIRED")
    return await _login(session, astring(cmd.args[0], "user"), astring(cmd.args[1], "password"))


async def _sasl_response(session, challenge: bytes, initial=None) -> bytes:
    """One SASL step (RFC 3501 §6.2.2): the initial response if given (RFC 4959, "=" is empty),
    else a ``+ challenge`` and the client's line; base64-decoded."""
    if initial is not None:
        response = astring(initial, "initial response")
        if response == b"=":
            response = b""
    else:
        session.send(b"+ " + base64.b64encode(challenge) + b"\r\n")
        line = await session.io.next_line()
        if line is None or line is session.io.CLOSED:
            raise bad("Authentication aborted")
        response = line.rstrip(b"\r\n")
        if response == b"*":  # the client cancels
            raise bad("Authentication cancelled")
    try:
        return base64.b64decode(response, validate=True)
    except (binascii.Error, ValueError):
        raise bad("Invalid base64 in AUTHENTICATE response") from None


@command("AUTHENTICATE", states=(NOT_AUTHENTICATED,))
async def authenticate(session, cmd):
    if not cmd.args or len(cmd.args) > 2 or not isinstance(cmd.args[0], Atom):
        raise bad("AUTHENTICATE needs a mechanism name")
    mechanism = cmd.args[0].upper()
    if mechanism not in ("PLAIN", "LOGIN"):
        raise ImapError("Unsupported authentication mechanism")
    if not session.plaintext_ok:
        raise ImapError("Use STARTTLS first", "PRIVACYREQUIRED")
    initial = cmd.args[1] if len(cmd.args) == 2 else None
    if mechanism == "LOGIN":  # draft-murchison-sasl-login: user, then password
        user = await _sasl_response(session, b"Username:", initial)
        password = await _sasl_response(session, b"Password:")
        return await _login(session, user, password)
    parts = (await _sasl_response(session, b"", initial)).split(b"\0")
    if len(parts) != 3:
        raise bad("Malformed PLAIN response (RFC 4616)")
    authzid, authcid, password = parts
    if authzid and authzid != authcid:
        raise ImapError("Authorization identity must be the login name", "AUTHORIZATIONFAILED")
    return await _login(session, authcid, password)


@command("ID")
async def id_(session, cmd):
    # RFC 2971: the client's parameters are accepted and ignored; name the server.
    if len(cmd.args) != 1 or not (isinstance(cmd.args[0], list) or str(cmd.args[0]).upper() == "NIL"):
        raise bad("ID takes a parameter list or NIL")
    session.untagged("ID", [b"name", b"pymail", b"vendor", b"pymail"])
    return "ID completed"


ENABLEABLE = {"CONDSTORE", "QRESYNC", "UTF8=ACCEPT", "IMAP4REV2"}


@command("ENABLE", states=AUTHED)
async def enable(session, cmd):
    if not cmd.args:
        raise bad("ENABLE needs capability names")
    newly = []
    for a in cmd.args:
        if not isinstance(a, Atom):
            raise bad("ENABLE takes atoms")
        name = a.upper()
        if name in ENABLEABLE and name not in session.enabled and \
                name in {c.upper() for c in session.capabilities()}:
            if name in ("CONDSTORE", "QRESYNC"):  # QRESYNC implies CONDSTORE (RFC 7162 §3.2.3)
                await session.enable_condstore()
            if name == "QRESYNC" and session.selected is not None:
                session.selected.qresync = True
            if name == "IMAP4REV2" and session.selected is not None:
                session.selected.rev2 = True
            session.enabled.add(name)
            newly.append(name)
    session.untagged("ENABLED" + "".join(" " + n for n in newly))
    return "ENABLE completed"


@command("COMPRESS", states=AUTHED)
async def compress(session, cmd):
    if len(cmd.args) != 1 or not isinstance(cmd.args[0], Atom):
        raise bad("COMPRESS needs a mechanism")
    if cmd.args[0].upper() != "DEFLATE":
        raise bad("Unknown compression mechanism")
    if session.io.compressed:
        raise ImapError("Compression is already on", "COMPRESSIONACTIVE")
    # RFC 4978 §3: compression starts right after the tagged OK, in both directions.
    session.send(serialize.tagged(cmd.tag, "OK", "DEFLATE active"))
    session.io.start_compression()
    return None


@command("NAMESPACE", states=AUTHED)
async def namespace(session, cmd):
    _no_args(cmd)
    # One personal namespace, no prefix, "/" separator (RFC 2342 §5).
    session.untagged("NAMESPACE", [[b"", b"/"]], None, None)
    return "NAMESPACE completed"


