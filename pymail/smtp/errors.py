"""The smtp package's one error type: an SMTP reply (basic code, enhanced code, text).

Every refusal anywhere in the SMTP layer is raised as ``SmtpError`` and turned into exactly one
reply line by the session (RFC 5321 §4.2 reply codes, RFC 3463 enhanced status codes).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced: str = ""  # RFC 3463 "x.y.z"; empty for 220/221/354/334 style replies
    text: str = ""
    extra: tuple[str, ...] = ()  # more lines (EHLO keywords); the last line is text's

    @property
    def temporary(self) -> bool:
        return 400 <= self.code < 500

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    def lines(self) -> list[str]:
        return [self.text, *self.extra] if self.extra else [self.text]

    def encode(self, enhanced_codes: bool = True) -> bytes:
        """Serialise as RFC 5321 §4.2.1 reply lines: ``code-text`` ... ``code text``."""
        lines = self.lines()
        out = []
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            prefix = f"{self.enhanced} " if (enhanced_codes and self.enhanced and i == 0) else ""
            out.append(f"{self.code}{sep}{prefix}{line}\r\n")
        return "".join(out).encode("utf-8", "replace")

    def __str__(self) -> str:
        return f"{self.code} {self.enhanced + ' ' if self.enhanced else ''}{self.text}"


class SmtpError(Exception):
    """Refuse the current command with this reply."""

    def __init__(self, code: int, enhanced: str, text: str):
        super().__init__(f"{code} {enhanced} {text}")
        self.reply = Reply(code, enhanced, text)
