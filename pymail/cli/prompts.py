"""Reading a password: a no-echo prompt on a terminal, or one line with ``--password-stdin``.

A password is never taken from the command line itself (it would show in ``ps`` and in the
shell history).
"""

from __future__ import annotations

import getpass
import sys

from pymail.cli.errors import CliError


def read_password(from_stdin: bool, confirm: bool = True) -> str:
    if from_stdin:
        raw = sys.stdin.buffer.readline()
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw:
            raise CliError("no password on standard input")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CliError("the password on standard input is not UTF-8") from None
    if not sys.stdin.isatty():
        raise CliError("standard input is not a terminal: give the password with --password-stdin")
    first = getpass.getpass("Password: ")
    if not first:
        raise CliError("empty password")
    if confirm and getpass.getpass("Retype password: ") != first:
        raise CliError("the passwords do not match")
    return first
