"""The pop3 package's one error type: it becomes exactly one ``-ERR`` reply."""

from __future__ import annotations


class Pop3Error(Exception):
    """A command failed; ``reply()`` is the ``-ERR`` line the client gets.

    ``code`` is an RFC 2449 §8 / RFC 3206 response code (``IN-USE``, ``AUTH``, ``SYS/TEMP``,
    ``SYS/PERM``, ``LOGIN-DELAY``) or None. ``text`` is one human-readable line, never a traceback.
    """

    def __init__(self, text: str, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    def reply(self) -> bytes:
        prefix = f"[{self.code}] " if self.code else ""
        return f"-ERR {prefix}{self.text}\r\n".encode("utf-8", "replace")
