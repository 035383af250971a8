"""Sieve (RFC 5228) lexer and parser: script text → a tree of commands, with line numbers.

Grammar (RFC 5228 §8.2)::

    commands = *command
    command  = identifier arguments (";" / block)
    block    = "{" commands "}"
    arguments = *argument [ test / test-list ]
    argument = string-list / number / tag
    test     = identifier arguments
    test-list = "(" test *("," test) ")"

Strings are "quoted" (only \\" and \\\\ are escapes, §2.4.2) or multi-line ``text:`` ending with a
line holding a lone ".", where a leading ".." is unstuffed (§2.4.2). Numbers take K, M, G
(§2.4.1). Comments are ``#`` to end of line and ``/* ... */`` (§2.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Union


class SieveError(Exception):
    """A script that cannot be parsed or run; ``line`` is 1-based (0 when unknown)."""

    def __init__(self, message: str, line: int = 0):
        super().__init__(f"line {line}: {message}" if line else message)
        self.message = message
        self.line = line


@dataclass
class Tag:
    name: str  # without the colon, lower-cased
    line: int = 0


@dataclass
class StringList:
    items: list[str]
    is_list: bool  # written as [ ... ] (a one-string list is still a list)
    line: int = 0


Argument = Union[Tag, int, StringList]


@dataclass
class Test:
    name: str
    args: list[Argument] = field(default_factory=list)
    tests: list["Test"] = field(default_factory=list)
    line: int = 0


@dataclass
class Command:
    name: str
    args: list[Argument] = field(default_factory=list)
    tests: list[Test] = field(default_factory=list)
    block: list["Command"] | None = None
    line: int = 0


_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<hash>\#[^\n]*)
  | (?P<bracket>/\*.*?\*/)
  | (?P<text>text:[ \t]*(?:\#[^\n]*)?\r?\n)
  | (?P<quoted>"(?:[^"\\]|\\.)*")
  | (?P<number>[0-9]+[KkMmGg]?)
  | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[\[\](){},;])
""", re.X | re.S)

_MULTIPLIER = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
MAX_SCRIPT_BYTES = 1024 * 1024
MAX_NESTING = 64


@dataclass
class _Tok:
    kind: str
    value: object
    line: int


def tokenize(script: str) -> list[_Tok]:
    if len(script.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_BYTES:
        raise SieveError(f"script larger than {MAX_SCRIPT_BYTES} bytes")
    tokens: list[_Tok] = []
    pos, line, n = 0, 1, len(script)
    while pos < n:
        m = _TOKEN.match(script, pos)
        if not m:
            if script.startswith("/*", pos):
                raise SieveError("unterminated /* comment", line)
            if script[pos] == '"':
                raise SieveError("unterminated string", line)
            raise SieveError(f"unexpected character {script[pos]!r}", line)
        kind, text = m.lastgroup, m.group()
        start_line = line
        if kind == "text":
            pos = m.end()
            line += text.count("\n")
            body, pos, consumed = _multiline(script, pos, start_line)
            tokens.append(_Tok("string", body, start_line))
            line += consumed
            continue
        pos = m.end()
        line += text.count("\n")
        if kind in ("ws", "hash", "bracket"):
            continue
        if kind == "quoted":
            tokens.append(_Tok("string", re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S), start_line))
        elif kind == "number":
            mult = _MULTIPLIER.get(text[-1].lower(), 1)
            digits = text[:-1] if mult > 1 else text
            value = int(digits) * mult
            if value >= 1 << 63:
                raise SieveError("number too large", start_line)
            tokens.append(_Tok("number", value, start_line))
        elif kind == "tag":
            tokens.append(_Tok("tag", text[1:].lower(), start_line))
        elif kind == "ident":
            tokens.append(_Tok("ident", text.lower(), start_line))
        else:
            tokens.append(_Tok(text, text, start_line))
    tokens.append(_Tok("eof", None, line))
    return tokens


def _multiline(script: str, pos: int, line: int) -> tuple[str, int, int]:
    """The body of a ``text:`` string: lines up to a lone "." (§2.4.2), dot-unstuffed."""
    lines, consumed = [], 0
    while True:
        end = script.find("\n", pos)
        if end < 0:
            raise SieveError("unterminated multi-line string (no line with a lone '.')", line)
        raw = script[pos:end]
        consumed += 1
        pos = end + 1
        if raw.rstrip("\r") == ".":
            return "".join(lines), pos, consumed
        if raw.startswith(".."):
            raw = raw[1:]
        lines.append(raw.rstrip("\r") + "\r\n")


class _Parser:
    def __init__(self, tokens: list[_Tok]):
        self.tokens = tokens
        self.i = 0

    def peek(self) -> _Tok:
        return self.tokens[self.i]

    def take(self) -> _Tok:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, kind: str, what: str) -> _Tok:
        tok = self.take()
        if tok.kind != kind:
            raise SieveError(f"expected {what}, found {_describe(tok)}", tok.line)
        return tok

    def commands(self, depth: int, until: str) -> list[Command]:
        out = []
        while self.peek().kind != until:
            out.append(self.command(depth))
        return out

    def command(self, depth: int) -> Command:
        if depth > MAX_NESTING:
            raise SieveError("blocks nested too deeply", self.peek().line)
        tok = self.expect("ident", "a command")
        cmd = Command(tok.value, line=tok.line)
        cmd.args, cmd.tests = self.arguments(depth)
        end = self.take()
        if end.kind == ";":
            return cmd
        if end.kind == "{":
            cmd.block = self.commands(depth + 1, "}")
            self.take()
            return cmd
        raise SieveError(f"expected ';' or '{{' after {cmd.name!r}, found {_describe(end)}", end.line)

    def arguments(self, depth: int) -> tuple[list[Argument], list[Test]]:
        args: list[Argument] = []
        while True:
            tok = self.peek()
            if tok.kind == "tag":
                self.take()
                args.append(Tag(tok.value, tok.line))
            elif tok.kind == "number":
                self.take()
                args.append(tok.value)
            elif tok.kind == "string":
                self.take()
                args.append(StringList([tok.value], False, tok.line))
            elif tok.kind == "[":
                args.append(self.string_list())
            else:
                break
        tests: list[Test] = []
        tok = self.peek()
        if tok.kind == "ident":
            tests = [self.test(depth)]
        elif tok.kind == "(":
            self.take()
            tests = [self.test(depth)]
            while self.peek().kind == ",":
                self.take()
                tests.append(self.test(depth))
            self.expect(")", "',' or ')' in a test list")
        return args, tests

    def string_list(self) -> StringList:
        start = self.take()
        items = [self.expect("string", "a string").value]
        while self.peek().kind == ",":
            self.take()
            items.append(self.expect("string", "a string").value)
        self.expect("]", "',' or ']' in a string list")
        return StringList(items, True, start.line)

    def test(self, depth: int) -> Test:
        if depth > MAX_NESTING:
            raise SieveError("tests nested too deeply", self.peek().line)
        tok = self.expect("ident", "a test")
        test = Test(tok.value, line=tok.line)
        test.args, test.tests = self.arguments(depth + 1)
        return test


def _describe(tok: _Tok) -> str:
    if tok.kind == "eof":
        return "end of script"
    if tok.kind == "string":
        return "a string"
    if tok.kind == "tag":
        return f"':{tok.value}'"
    return repr(str(tok.value))


def parse(script: str) -> list[Command]:
    """Parse a script into commands; raises SieveError with the line number."""
    parser = _Parser(tokenize(script))
    commands = parser.commands(0, "eof")
    return commands
