"""Sieve (RFC 5228) for local delivery: pymail's own parser and interpreter.

    actions = evaluate(script_text, message_bytes, SieveEnvelope(mail_from, rcpt_to), SieveContext(user))

Actions are ``Keep``, ``FileInto``, ``Redirect``, ``Reject``, ``Discard`` and ``Vacation``
(``pymail.filters.sieve.actions``). See docs/filters.md for the supported extensions.
"""

from pymail.filters.sieve.actions import Discard, FileInto, Keep, Redirect, Reject, Result, Vacation
from pymail.filters.sieve.interpreter import (SieveContext, SieveEnvelope, Script, compile_script,
                                              evaluate, run_scripts)
from pymail.filters.sieve.parser import SieveError
from pymail.filters.sieve.spec import EXTENSIONS
from pymail.filters.sieve.vacation import VacationStore

__all__ = ["evaluate", "run_scripts", "compile_script", "Script", "SieveContext", "SieveEnvelope",
           "SieveError", "EXTENSIONS", "VacationStore", "Keep", "FileInto", "Redirect", "Reject",
           "Discard", "Vacation", "Result"]
