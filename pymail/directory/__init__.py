"""pymail.directory: domains, users, aliases, quotas and passwords in SQL (see docs/directory.md).

``Directory`` is the blocking API; ``pymail.directory.auth.Authenticator`` is what protocols
use to log users in.
"""

from pymail.directory.directory import KEEP, Directory
from pymail.directory.errors import DirectoryError
from pymail.directory.records import AliasRecord, Resolution, UserRecord

__all__ = ["Directory", "DirectoryError", "UserRecord", "AliasRecord", "Resolution", "KEEP"]
