"""Apply a verdict's header changes to a spooled message, streaming (no whole-message read).

Incoming copies of the headers the filters write (``X-Spam-*``, ``X-Virus-Scanned``) are removed
first, so a sender cannot forge a verdict that local delivery or Sieve's spamtest would trust.
RFC 5322 §2.2.3: a field's continuation lines start with white space and go with it.
"""

from __future__ import annotations

from typing import BinaryIO

from pymail.filters.api import Verdict

BLOCK = 1024 * 1024


def rewrite(source: BinaryIO, target: BinaryIO, verdict: Verdict) -> None:
    """Copy ``source`` to ``target`` with the verdict's headers added and forgeries removed."""
    drop = {name.lower().encode("ascii") for name in verdict.remove_headers}
    target.write(verdict.header_bytes())
    skipping = False
    while True:
        line = source.readline(64 * 1024)
        if not line:
            return
        if line in (b"\r\n", b"\n"):
            target.write(line)
            break
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                target.write(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        skipping = name in drop
        if not skipping:
            target.write(line)
    while True:
        block = source.read(BLOCK)
        if not block:
            return
        target.write(block)


def rewrite_file(source_path: str, target_path: str, verdict: Verdict) -> None:
    with open(source_path, "rb") as src, open(target_path, "wb") as dst:
        rewrite(src, dst, verdict)
