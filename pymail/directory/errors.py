"""The directory's one error type: its message is safe to show an administrator."""

from __future__ import annotations


class DirectoryError(Exception):
    """A directory operation failed (bad name, duplicate, unknown user, database trouble, ...).

    ``str(error)`` is one line that names the object and the reason; it never holds a password.
    """
