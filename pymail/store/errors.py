"""The store's one error type.

``StoreError.code`` is one of the module constants below; each is the IMAP response code of
RFC 5530 (§3) that a protocol layer puts in its NO/BAD reply, so the mapping is one lookup.
"""

from __future__ import annotations

NONEXISTENT = "NONEXISTENT"      # mailbox does not exist
ALREADYEXISTS = "ALREADYEXISTS"  # CREATE/RENAME target exists
OVERQUOTA = "OVERQUOTA"          # delivery/append would exceed the quota
BADNAME = "BADNAME"              # (RFC 5530 calls it CANNOT) name refused: unsafe or malformed
INUSE = "INUSE"                  # a lock could not be taken in time
NOPERM = "NOPERM"                # operation not allowed (e.g. delete INBOX)
EXPUNGED = "EXPUNGED"            # message was expunged
CORRUPT = "CORRUPT"              # control file damaged beyond use
LIMIT = "LIMIT"                  # a hard limit (e.g. 26 maildir keywords) was reached
SERVERBUG = "SERVERBUG"          # unexpected I/O failure

CODES = frozenset({NONEXISTENT, ALREADYEXISTS, OVERQUOTA, BADNAME, INUSE, NOPERM, EXPUNGED,
                   CORRUPT, LIMIT, SERVERBUG})


class StoreError(Exception):
    """A store failure with an RFC 5530 response code and a message safe to show a user."""

    def __init__(self, code: str, message: str = ""):
        if code not in CODES:
            raise ValueError(f"unknown store error code {code!r}")
        super().__init__(f"[{code}] {message}" if message else f"[{code}]")
        self.code = code
        self.message = message or code
