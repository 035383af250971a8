"""``twisted.cred`` glue: a password checker backed by the directory, and a realm.

``PasswordChecker.requestAvatarId`` runs ``Directory.verify_password`` (bcrypt, SQL) in the
reactor's thread pool via ``pymail.runtime.run_blocking``, never on the reactor thread. The
avatar id is the canonical address (``str``). Every failure is the same ``UnauthorizedLogin``.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm
from zope.interface import Attribute, Interface, implementer

from pymail.runtime import run_blocking

FAILED = "authentication failed"


class IDirectoryUser(Interface):
    """A logged-in directory user; protocols take the address and open the store with it."""

    address = Attribute("canonical address (str)")


@implementer(IDirectoryUser)
@dataclass(frozen=True)
class DirectoryUser:
    address: str


@implementer(ICredentialsChecker)
class PasswordChecker:
    credentialInterfaces = (IUsernamePassword,)

    def __init__(self, directory) -> None:
        self.directory = directory

    def requestAvatarId(self, credentials):
        d = run_blocking(self.directory.verify_password, credentials.username, credentials.password)

        def checked(address):
            if address is None:
                raise UnauthorizedLogin(FAILED)
            return address

        return d.addCallback(checked)


@implementer(IRealm)
class DirectoryRealm:
    def requestAvatar(self, avatarId, mind, *interfaces):
        if IDirectoryUser not in interfaces:
            raise TypeError("pymail's realm only provides IDirectoryUser")
        address = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else avatarId
        return IDirectoryUser, DirectoryUser(address), lambda: None
