"""Logins for every protocol: ``await Authenticator.authenticate(username, password, ip)``.

Built on a ``twisted.cred`` portal with ``PasswordChecker`` (bcrypt in a thread) and
``DirectoryRealm``. One answer for every failure (unknown user, wrong password, disabled user,
password over 72 bytes): ``AuthFailed("authentication failed")``, after the same bcrypt work and
after ``failure_delay`` seconds waited on the reactor (``deferLater``, no thread is held).
Too many failures from one IP or for one account (``FailureLimiter``) give ``AuthThrottled``
without checking the password at all. A directory outage gives ``AuthUnavailable``, a temporary
failure (IMAP ``NO [UNAVAILABLE]``, SMTP 454, POP3 ``-ERR [SYS/TEMP]``).

``authenticate`` is a coroutine for Twisted code (``ensureDeferred``); asyncio code (aiosmtpd)
uses ``await authenticator.authenticate_asyncio(...)``.
"""

from __future__ import annotations

import asyncio
import logging

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import defer, task

from pymail.directory.cred import FAILED, DirectoryRealm, IDirectoryUser, PasswordChecker
from pymail.directory.errors import DirectoryError
from pymail.directory.limiter import FailureLimiter

log = logging.getLogger("pymail.auth")


class AuthFailed(Exception):
    """Login refused. One type and one message whatever the reason."""

    def __init__(self, message: str = FAILED) -> None:
        super().__init__(message)


class AuthThrottled(AuthFailed):
    """Too many failed logins from this IP or for this account; try later."""

    def __init__(self, message: str = "too many failed logins, try again later") -> None:
        super().__init__(message)


class AuthUnavailable(AuthFailed):
    """The directory could not be asked (database down): a temporary failure."""

    def __init__(self, message: str = "authentication temporarily unavailable") -> None:
        super().__init__(message)


class Authenticator:
    def __init__(self, directory, limiter: FailureLimiter | None = None, failure_delay: float = 2.0,
                 reactor=None) -> None:
        self.directory = directory
        self.limiter = limiter if limiter is not None else FailureLimiter()
        self.failure_delay = failure_delay
        self._reactor = reactor
        self.portal = Portal(DirectoryRealm(), [PasswordChecker(directory)])
        prepare = getattr(directory, "prepare", None)
        if prepare is not None:  # one bcrypt now, before the reactor serves anyone
            prepare()

    @classmethod
    def from_settings(cls, directory, settings, reactor=None) -> "Authenticator":
        """Build from ``pymail.config.AuthSettings``."""
        limiter = FailureLimiter(settings.max_failures_per_ip, settings.max_failures_per_user,
                                 settings.failure_window)
        return cls(directory, limiter, settings.failure_delay, reactor)

    @property
    def reactor(self):
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    async def authenticate(self, username: str | bytes, password: str | bytes, remote_ip: str | None) -> str:
        """The canonical address of the user; raises AuthFailed / AuthThrottled / AuthUnavailable."""
        attempt = self.limiter.begin(remote_ip, username)
        if attempt is None:
            log.info("auth throttled: user=%r ip=%s", _shown(username), remote_ip)
            await self._slow_down()
            raise AuthThrottled()
        try:
            _iface, avatar, logout = await self.portal.login(UsernamePassword(username, password), None,
                                                             IDirectoryUser)
        except UnauthorizedLogin:
            self.limiter.failed(attempt)
            log.info("auth failed: user=%r ip=%s", _shown(username), remote_ip)
            await self._slow_down()
            raise AuthFailed() from None
        except DirectoryError as exc:
            self.limiter.cancel(attempt)
            log.error("auth unavailable: %s", exc)
            await self._slow_down()
            raise AuthUnavailable() from None
        except BaseException:
            self.limiter.cancel(attempt)  # never leave an attempt in progress forever
            raise
        logout()
        self.limiter.succeeded(attempt)
        return avatar.address

    def authenticate_deferred(self, username, password, remote_ip) -> defer.Deferred:
        return defer.ensureDeferred(self.authenticate(username, password, remote_ip))

    async def authenticate_asyncio(self, username, password, remote_ip) -> str:
        """``authenticate`` for asyncio coroutines (the reactor's loop must be the running loop)."""
        deferred = self.authenticate_deferred(username, password, remote_ip)
        return await deferred.asFuture(asyncio.get_running_loop())

    async def _slow_down(self) -> None:
        if self.failure_delay > 0:
            await task.deferLater(self.reactor, self.failure_delay, lambda: None)


def _shown(username: str | bytes) -> str:
    text = username.decode("utf-8", "replace") if isinstance(username, bytes) else username
    return text[:100]
