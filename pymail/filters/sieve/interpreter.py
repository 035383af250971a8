"""The Sieve interpreter: validated script + message + envelope → actions (RFC 5228 §2.10).

``compile_script(text)`` parses and validates (unknown commands, missing ``require``, bad
arguments: a ``SieveError`` with the line number). ``evaluate(script, message, envelope,
context)`` runs one script; ``run_scripts`` runs the site "before" scripts then the user's.
A script error never loses a message: the result is an implicit keep and the error is logged.
"""

from __future__ import annotations

import datetime as dt
import email
import email.errors
import email.header
import email.policy
import email.utils
import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Callable

from pymail.filters.sieve import dates, match, vacation
from pymail.filters.sieve.actions import (Discard, FileInto, Keep, Redirect, Reject, Result,
                                          Vacation, default_handle)
from pymail.filters.sieve.parser import Command, SieveError, Test, parse
from pymail.filters.sieve.spec import COMMANDS, EXTENSIONS, IMPLIES, TESTS, Bound, bind

log = logging.getLogger("pymail.filters.sieve")

SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")}
MAX_VARIABLE_LENGTH = 4000  # RFC 5229 §6: implementations may limit variable sizes
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_EXPANSION = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")
_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\Z")


@dataclass
class SieveEnvelope:
    mail_from: str  # "" for the null reverse-path
    rcpt_to: str  # the recipient as given in RCPT TO (with +detail)


@dataclass
class SieveContext:
    user: str  # the canonical address of the mailbox owner
    user_addresses: list[str] = field(default_factory=list)  # for vacation's "is it to me?"
    default_mailbox: str = "INBOX"  # where keep (implicit or not) stores: Junk for spam
    mailbox_exists: Callable[[str], bool] = lambda name: name.upper() == "INBOX"
    spam_score: float | None = None  # from spamd (X-Spam-Score), None when not tested
    spam_threshold: float = 5.0  # the user's threshold
    virus_status: int = 0  # RFC 5235: 0 not tested, 1 clean, 5 infected
    vacation_store: vacation.VacationStore | None = None
    vacation_min_days: int = 1
    vacation_max_days: int = 30
    max_redirects: int = 4
    now: dt.datetime | None = None
    timezone: dt.tzinfo | None = None  # the zone "date" converts to without :zone


@dataclass
class Script:
    commands: list[Command]
    required: set[str]
    name: str = ""


class _Stop(Exception):
    pass


# -- validation ------------------------------------------------------------------------------

def compile_script(text: str, name: str = "") -> Script:
    """Parse and validate; raises SieveError (with the line) for the first problem."""
    commands = parse(text)
    required: set[str] = set()
    seen_other = False
    for cmd in commands:
        if cmd.name == "require":
            if seen_other:
                raise SieveError("require must come before any other command", cmd.line)
            bound = bind(cmd, COMMANDS["require"], required)
            for ext in bound.positional[0]:
                if ext not in EXTENSIONS:
                    raise SieveError(f"unsupported extension {ext!r}", cmd.line)
                required.add(ext)
                if ext in IMPLIES:
                    required.add(IMPLIES[ext])
        else:
            seen_other = True
    _validate_block(commands, required, top=True)
    return Script(commands, required, name)


def _validate_block(commands: list[Command], required: set[str], top: bool = False) -> None:
    previous = ""
    for cmd in commands:
        spec = COMMANDS.get(cmd.name)
        if spec is None:
            raise SieveError(f"unknown command {cmd.name!r}", cmd.line)
        if cmd.name == "require" and not top:
            raise SieveError("require is only allowed at the top of the script", cmd.line)
        if cmd.name in ("elsif", "else") and previous not in ("if", "elsif"):
            raise SieveError(f"{cmd.name} without a preceding if", cmd.line)
        bound = bind(cmd, spec, required)
        if spec.block and cmd.block is None:
            raise SieveError(f"{cmd.name} needs a block {{ ... }}", cmd.line)
        if not spec.block and cmd.block is not None:
            raise SieveError(f"{cmd.name} takes no block", cmd.line)
        if spec.tests == "one" and len(cmd.tests) != 1:
            raise SieveError(f"{cmd.name} needs one test", cmd.line)
        if spec.tests == "none" and cmd.tests:
            found = cmd.tests[0]
            raise SieveError(f"expected ';' after {cmd.name}, found {found.name!r}", found.line)
        for test in cmd.tests:
            _validate_test(test, required)
        if cmd.name == "set" and not _VARIABLE_NAME.match(str(bound.positional[0])):
            raise SieveError(f"bad variable name {bound.positional[0]!r}", cmd.line)
        if cmd.block is not None:
            _validate_block(cmd.block, required)
        previous = cmd.name


def _validate_test(test: Test, required: set[str]) -> None:
    spec = TESTS.get(test.name)
    if spec is None:
        raise SieveError(f"unknown test {test.name!r}", test.line)
    bind(test, spec, required)
    if spec.tests == "none" and test.tests:
        raise SieveError(f"{test.name} takes no test", test.line)
    if spec.tests == "one" and len(test.tests) != 1:
        raise SieveError(f"{test.name} needs one test", test.line)
    if spec.tests == "list" and not test.tests:
        raise SieveError(f"{test.name} needs a list of tests", test.line)
    for sub in test.tests:
        _validate_test(sub, required)


# -- running ---------------------------------------------------------------------------------

class _State:
    """What survives from one script to the next for one recipient."""

    def __init__(self) -> None:
        self.actions: list = []
        self.implicit_keep = True
        self.redirects = 0


class _Run:
    def __init__(self, script: Script, message: Message, raw: bytes, envelope: SieveEnvelope,
                 context: SieveContext, state: _State):
        self.script, self.message, self.raw = script, message, raw
        self.envelope, self.context, self.state = envelope, context, state
        self.variables: dict[str, str] = {}
        self.match_vars: list[str] = []
        self.flags: list[str] = []  # imap4flags' internal variable (RFC 5232 §3)
        self.expand = "variables" in script.required

    # strings and variables (RFC 5229 §3)
    def x(self, value: str) -> str:
        if not self.expand or "${" not in value:
            return value

        def sub(m: re.Match) -> str:
            name = m.group(1)
            if name.isdigit():
                i = int(name)
                return self.match_vars[i] if i < len(self.match_vars) else ""
            if "." in name:
                return m.group(0)  # no namespaces are supported: left as written
            return self.variables.get(name.lower(), "")
        return _EXPANSION.sub(sub, value)

    def xs(self, values: list[str]) -> list[str]:
        return [self.x(v) for v in values]

    def bound(self, node, spec_table) -> Bound:
        return bind(node, spec_table[node.name], self.script.required)

    # commands
    def block(self, commands: list[Command]) -> None:
        taken = False
        for cmd in commands:
            if cmd.name == "require":
                continue
            if cmd.name == "if":
                taken = self.test(cmd.tests[0])
                if taken:
                    self.block(cmd.block or [])
                continue
            if cmd.name == "elsif":
                if not taken:
                    taken = self.test(cmd.tests[0])
                    if taken:
                        self.block(cmd.block or [])
                continue
            if cmd.name == "else":
                if not taken:
                    self.block(cmd.block or [])
                continue
            self.command(cmd)

    def command(self, cmd: Command) -> None:
        b = self.bound(cmd, COMMANDS)
        name, state = cmd.name, self.state
        if name == "stop":
            raise _Stop()
        if name == "keep":
            flags = self.flag_list(b.tags["flags"]) if "flags" in b.tags else list(self.flags)
            state.actions.append(Keep(self.context.default_mailbox, tuple(flags)))
            state.implicit_keep = False
        elif name == "discard":
            state.implicit_keep = False
        elif name == "fileinto":
            flags = self.flag_list(b.tags["flags"]) if "flags" in b.tags else list(self.flags)
            mailbox = self.x(b.positional[0])
            if not mailbox.strip():
                raise SieveError("fileinto needs a folder name", cmd.line)
            state.actions.append(FileInto(mailbox, tuple(flags), bool(b.tags.get("create"))))
            if "copy" not in b.tags:
                state.implicit_keep = False
        elif name == "redirect":
            address = self.x(b.positional[0]).strip()
            if not _ADDRESS.match(address):
                raise SieveError(f"redirect: {address!r} is not a mail address", cmd.line)
            state.redirects += 1
            if state.redirects > self.context.max_redirects:
                raise SieveError(f"more than {self.context.max_redirects} redirects", cmd.line)
            state.actions.append(Redirect(address))
            if "copy" not in b.tags:
                state.implicit_keep = False
        elif name in ("reject", "ereject"):
            state.actions.append(Reject(self.x(b.positional[0]), extended=name == "ereject"))
            state.implicit_keep = False
        elif name == "vacation":
            self.vacation(b)
        elif name in ("setflag", "addflag", "removeflag"):
            self.flag_command(name, b)
        elif name == "set":
            self.set_variable(b)

    # imap4flags (RFC 5232)
    @staticmethod
    def flag_list(values: list[str]) -> list[str]:
        out: list[str] = []
        for value in values:
            for flag in value.split():
                flag = SYSTEM_FLAGS.get(flag.lower(), flag)
                if flag.lower() not in (f.lower() for f in out):
                    out.append(flag)
        return out

    def flag_command(self, name: str, b: Bound) -> None:
        variable, values = b.positional
        new = self.flag_list(self.xs(values))
        current = self.flag_list([self.variables.get(variable.lower(), "")]) if variable else self.flags
        if name == "setflag":
            result = new
        elif name == "addflag":
            result = self.flag_list([" ".join(current + new)])
        else:
            drop = {f.lower() for f in new}
            result = [f for f in current if f.lower() not in drop]
        if variable:
            self.variables[variable.lower()] = " ".join(result)
        else:
            self.flags = result

    # variables (RFC 5229 §4)
    def set_variable(self, b: Bound) -> None:
        name, value = b.positional
        value = self.x(value)
        tags = b.tags
        # Modifiers apply in precedence order: lower/upper, lowerfirst/upperfirst, quotewildcard, length.
        if "lower" in tags:
            value = value.lower()
        if "upper" in tags:
            value = value.upper()
        if "lowerfirst" in tags:
            value = value[:1].lower() + value[1:]
        if "upperfirst" in tags:
            value = value[:1].upper() + value[1:]
        if "quotewildcard" in tags:
            value = re.sub(r"([*?\\])", r"\\\1", value)
        if "length" in tags:
            value = str(len(value))
        self.variables[name.lower()] = value[:MAX_VARIABLE_LENGTH]

    # vacation (RFC 5230)
    def vacation(self, b: Bound) -> None:
        ctx, msg = self.context, self.message
        sender = self.envelope.mail_from
        addresses = [ctx.user, self.envelope.rcpt_to] + ctx.user_addresses + self.xs(b.tags.get("addresses", []))
        why_not = vacation.refusal_reason(msg, sender, addresses)
        if why_not:
            log.info("vacation for %s: no reply to %r: %s", ctx.user, sender, why_not)
            return
        days = int(b.tags.get("days", 7))
        days = max(ctx.vacation_min_days, min(ctx.vacation_max_days, days))
        reason = self.x(b.positional[0])
        original = _decode(msg.get("Subject", "") or "")
        subject = self.x(str(b.tags["subject"])) if "subject" in b.tags else f"Auto: {original}".strip()
        from_ = self.x(str(b.tags["from"])) if "from" in b.tags else (self.envelope.rcpt_to or ctx.user)
        mime = bool(b.tags.get("mime"))
        handle = self.x(str(b.tags["handle"])) if "handle" in b.tags else default_handle(
            reason, subject if "subject" in b.tags else "", from_, mime)
        if ctx.vacation_store is not None:
            now = (ctx.now or dt.datetime.now(dt.timezone.utc)).timestamp()
            if not ctx.vacation_store.check_and_record(sender, handle, days, now):
                log.info("vacation for %s: %s already answered within %d days", ctx.user, sender, days)
                return
        self.state.actions.append(Vacation(
            to=sender, sender=from_, subject=subject, reason=reason, mime=mime,
            in_reply_to=(msg.get("Message-ID") or "").strip(),
            references=" ".join((msg.get("References") or "").split()), handle=handle))

    # tests
    def test(self, test: Test) -> bool:
        name = test.name
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self.test(test.tests[0])
        if name == "allof":
            return all(self.test(t) for t in test.tests)
        if name == "anyof":
            return any(self.test(t) for t in test.tests)
        b = self.bound(test, TESTS)
        if name == "exists":
            return all(self.message.get(h) is not None for h in self.xs(b.positional[0]))
        if name == "size":
            size = len(self.raw)
            return size > b.positional[0] if "over" in b.tags else size < b.positional[0]
        if name == "mailboxexists":
            return all(self.context.mailbox_exists(m) for m in self.xs(b.positional[0]))
        values, keys = self.values_and_keys(name, b)
        if values is None:
            return False
        matcher = match.Matcher(b.tags)
        matcher.want_captures = self.expand
        result = matcher.test(values, self.xs(keys))
        if result and matcher.captures is not None and self.expand:
            self.match_vars = matcher.captures  # RFC 5229 §3.2
        return result

    def values_and_keys(self, name: str, b: Bound) -> tuple[list[str] | None, list[str]]:
        if name in ("address", "envelope"):
            part = next((p for p in ("localpart", "domain", "user", "detail") if p in b.tags), "all")
            addresses = self.envelope_values(b.positional[0]) if name == "envelope" else \
                self.header_addresses(self.xs(b.positional[0]))
            values = [v for v in (_address_part(a, part) for a in addresses) if v is not None]
            return values, b.positional[1]
        if name == "header":
            return self.header_values(self.xs(b.positional[0])), b.positional[1]
        if name == "body":
            return [self.body_text(b.tags)], b.positional[0]
        if name == "string":
            values = self.xs(b.positional[0])
            if "count" in b.tags:
                values = [v for v in values if v != ""]  # RFC 5229 §5
            return values, b.positional[1]
        if name == "hasflag":
            variables = b.positional[0]
            if variables:
                flags = self.flag_list([self.variables.get(v.lower(), "") for v in variables])
            else:
                flags = list(self.flags)
            return flags, b.positional[1]
        if name == "spamtest":
            value = self.spamtest_value(bool(b.tags.get("percent")))
            return (None if value is None else [value]), [b.positional[0]]
        if name == "virustest":
            return [str(self.context.virus_status)], [b.positional[0]]
        if name == "date":
            moment = self.header_date(self.x(b.positional[0]), b.tags)
            if moment is None:
                return None, []
            value = dates.date_part(moment, self.x(b.positional[1]))
            return (None if value is None else [value]), b.positional[2]
        if name == "currentdate":
            now = self.context.now or dt.datetime.now(dt.timezone.utc)
            zone = dates.parse_zone(self.x(str(b.tags["zone"]))) if "zone" in b.tags else self.context.timezone
            if zone is not None:
                now = now.astimezone(zone)
            value = dates.date_part(now, self.x(b.positional[0]))
            return (None if value is None else [value]), b.positional[1]
        raise SieveError(f"unknown test {name!r}")

    def header_values(self, names: list[str]) -> list[str]:
        out = []
        for name in names:
            for value in self.message.get_all(name, []) or []:
                out.append(_decode(str(value)))
        return out

    def header_addresses(self, names: list[str]) -> list[str]:
        raw = []
        for name in names:
            raw.extend(str(v) for v in self.message.get_all(name, []) or [])
        return [addr for _, addr in email.utils.getaddresses(raw) if addr]

    def envelope_values(self, parts: list[str]) -> list[str]:
        out = []
        for part in self.xs(parts):
            if part.lower() == "from":
                out.append(self.envelope.mail_from)
            elif part.lower() == "to":
                out.append(self.envelope.rcpt_to)
        return out

    def body_text(self, tags: dict) -> str:
        if "raw" in tags:
            head_end = self.raw.find(b"\r\n\r\n")
            head_end = self.raw.find(b"\n\n") if head_end < 0 else head_end
            return self.raw[head_end:].lstrip(b"\r\n").decode("utf-8", "replace") if head_end >= 0 else ""
        wanted = [t.lower() for t in tags.get("content", ["text"])]
        texts = []
        for part in self.message.walk():
            if part.is_multipart():
                continue
            ctype = part.get_content_type()
            if not any(w == "" or w == ctype or ("/" not in w and ctype.startswith(w + "/")) for w in wanted):
                continue
            payload = part.get_payload(decode=True) or b""
            charset = part.get_content_charset() or "utf-8"
            try:
                texts.append(payload.decode(charset, "replace"))
            except LookupError:
                texts.append(payload.decode("utf-8", "replace"))
        return "\n".join(texts)

    def spamtest_value(self, percent: bool) -> str | None:
        """RFC 5235 §3.1/§3.2: 0 = not tested, 1..10 (or 0..100 with :percent) by score."""
        score, threshold = self.context.spam_score, self.context.spam_threshold
        if score is None:
            return None if percent else "0"
        ratio = max(0.0, min(1.0, score / threshold)) if threshold > 0 else (1.0 if score >= threshold else 0.0)
        if percent:
            return str(round(ratio * 100))
        return "10" if score >= threshold else str(1 + int(ratio * 8.999))

    def header_date(self, header: str, tags: dict) -> dt.datetime | None:
        value = self.message.get(header)
        if value is None:
            return None
        text = str(value)
        if header.lower() == "received":  # RFC 5260 §4: the date follows the last ";"
            text = text.rpartition(";")[2]
        moment = dates.header_datetime(text)
        if moment is None or "originalzone" in tags:
            return moment
        zone = dates.parse_zone(self.x(str(tags["zone"]))) if "zone" in tags else self.context.timezone
        return moment.astimezone(zone) if zone is not None else moment.astimezone()


def _decode(value: str) -> str:
    """Unfold and decode RFC 2047 encoded words (RFC 5228 §2.7.2)."""
    value = re.sub(r"\r?\n[ \t]", " ", value)
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        return value


def _address_part(address: str, part: str) -> str | None:
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if part == "all":
        return address
    if part == "localpart":
        return local
    if part == "domain":
        return domain
    user, plus, detail = local.partition("+")  # RFC 5233 §4: separator "+"
    if part == "user":
        return user
    return detail if plus else None  # :detail fails for addresses without one


# -- entry points ------------------------------------------------------------------------------

def parse_message(message: bytes | Message) -> tuple[Message, bytes]:
    if isinstance(message, Message):
        return message, message.as_bytes()
    return email.message_from_bytes(message, policy=email.policy.compat32), message


def _run_one(script: Script, msg: Message, raw: bytes, envelope: SieveEnvelope,
             context: SieveContext, state: _State) -> bool:
    """Run one script; True when it executed "stop"."""
    try:
        _Run(script, msg, raw, envelope, context, state).block(script.commands)
    except _Stop:
        return True
    return False


def _finish(state: _State, context: SieveContext) -> list:
    actions = list(state.actions)
    if state.implicit_keep:
        actions.append(Keep(context.default_mailbox, implicit=True))
    rejects = [a for a in actions if isinstance(a, Reject)]
    if rejects and any(isinstance(a, (Keep, FileInto)) and not getattr(a, "implicit", False) for a in actions):
        # RFC 5429 §2.1: reject with keep/fileinto is an error; the message must not be lost.
        raise SieveError("reject cannot be combined with keep or fileinto")
    if not actions:
        actions.append(Discard())
    return _dedupe(actions)


def _dedupe(actions: list) -> list:
    """RFC 5228 §4.1/§4.2: the same folder or address acted on twice means once."""
    out, seen = [], set()
    for action in actions:
        if isinstance(action, (Keep, FileInto)):
            key = ("store", action.mailbox.upper() if action.mailbox.upper() == "INBOX" else action.mailbox)
        elif isinstance(action, Redirect):
            key = ("redirect", action.address.lower())
        else:
            key = (type(action).__name__, id(action))
        if key in seen:
            continue
        seen.add(key)
        out.append(action)
    return out


def evaluate(script: str | Script, message: bytes | Message, envelope: SieveEnvelope,
             context: SieveContext) -> list:
    """The actions for one recipient; on any script error: keep in the default folder, logged."""
    return run_scripts([], script, message, envelope, context).actions


def run_scripts(before: list[str | Script], user: str | Script | None, message: bytes | Message,
                envelope: SieveEnvelope, context: SieveContext) -> Result:
    """Site "before" scripts, then the user's script (skipped when a before script stops).

    The actions of the before scripts stand whatever the user's script does. An error in the
    user's script keeps its partial actions out and the message in the default folder.
    """
    msg, raw = parse_message(message)
    state = _State()
    result = Result()
    stopped = False
    for i, text in enumerate(before):
        snapshot = (list(state.actions), state.implicit_keep, state.redirects)
        try:
            script = text if isinstance(text, Script) else compile_script(text, f"before-{i}")
            stopped = _run_one(script, msg, raw, envelope, context, state)
        except SieveError as exc:
            state.actions, state.implicit_keep, state.redirects = snapshot
            result.errors.append(f"before script {i}: {exc}")
            log.error("sieve before script %d for %s: %s", i, context.user, exc)
        if stopped:
            break
    if user is not None and not stopped:
        snapshot = (list(state.actions), state.implicit_keep, state.redirects)
        try:
            script = user if isinstance(user, Script) else compile_script(user, "user")
            _run_one(script, msg, raw, envelope, context, state)
            result.actions = _finish(state, context)
            return result
        except SieveError as exc:
            result.errors.append(f"user script: {exc}")
            log.error("sieve script of %s failed, message kept: %s", context.user, exc)
            state.actions, state.implicit_keep, state.redirects = snapshot
            state.implicit_keep = True  # RFC 5228 §2.10.6: on error, keep
    try:
        result.actions = _finish(state, context)
    except SieveError as exc:
        result.errors.append(str(exc))
        result.actions = [Keep(context.default_mailbox, implicit=True)]
    return result
