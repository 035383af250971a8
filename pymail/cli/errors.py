"""Errors of the admin CLI: each becomes one line on stderr and an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failed command (exit 1); ``str()`` is the line shown to the admin."""

    exit_code = EXIT_ERROR


class UsageError(CliError):
    """The command line itself is wrong (exit 2)."""

    exit_code = EXIT_USAGE
