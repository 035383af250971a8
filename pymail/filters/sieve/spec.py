"""What each Sieve command and test accepts, and the extension that provides it.

``bind(node, spec)`` checks a parsed node's arguments against its spec and returns
``Bound(tags, positional)``; the validator runs it over the whole script before anything runs,
so CHECKSCRIPT/PUTSCRIPT report every such error with its line number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymail.filters.sieve.parser import Command, SieveError, StringList, Tag, Test

# Extensions pymail implements (the ManageSieve SIEVE capability lists these).
EXTENSIONS = (
    "fileinto", "reject", "ereject", "envelope", "subaddress", "copy", "imap4flags", "body",
    "variables", "vacation", "relational", "spamtest", "spamtestplus", "virustest", "mailbox",
    "date", "comparator-i;ascii-numeric",
)
COMPARATORS = {"i;octet": None, "i;ascii-casemap": None, "i;ascii-numeric": "comparator-i;ascii-numeric"}
RELATIONAL_OPS = ("gt", "ge", "lt", "le", "eq", "ne")


@dataclass(frozen=True)
class TagSpec:
    arg: str | None = None  # None, "string", "strings", "number"
    group: str = ""  # tags of one group exclude each other
    extension: str | None = None


@dataclass(frozen=True)
class Spec:
    positional: tuple[str, ...] = ()  # "string", "strings", "number"
    tags: dict[str, TagSpec] = field(default_factory=dict)
    extension: str | None = None
    tests: str = "none"  # "none", "one", "list"
    block: bool = False
    optional_first: bool = False  # hasflag/setflag: [<variablename>] <flags>


MATCH = {
    "is": TagSpec(group="match"), "contains": TagSpec(group="match"),
    "matches": TagSpec(group="match"),
    "count": TagSpec("string", "match", "relational"), "value": TagSpec("string", "match", "relational"),
}
COMPARATOR = {"comparator": TagSpec("string")}
ADDRESS_PART = {
    "all": TagSpec(group="part"), "localpart": TagSpec(group="part"), "domain": TagSpec(group="part"),
    "user": TagSpec(group="part", extension="subaddress"),
    "detail": TagSpec(group="part", extension="subaddress"),
}
ZONE = {"zone": TagSpec("string", "zone"), "originalzone": TagSpec(group="zone")}

COMMANDS: dict[str, Spec] = {
    "require": Spec(("strings",)),
    "if": Spec(tests="one", block=True),
    "elsif": Spec(tests="one", block=True),
    "else": Spec(block=True),
    "stop": Spec(),
    "keep": Spec(tags={"flags": TagSpec("strings", extension="imap4flags")}),
    "discard": Spec(),
    "fileinto": Spec(("string",), {"copy": TagSpec(extension="copy"),
                                   "flags": TagSpec("strings", extension="imap4flags"),
                                   "create": TagSpec(extension="mailbox")}, "fileinto"),
    "redirect": Spec(("string",), {"copy": TagSpec(extension="copy")}),
    "reject": Spec(("string",), extension="reject"),
    "ereject": Spec(("string",), extension="ereject"),
    "vacation": Spec(("string",), {
        "days": TagSpec("number"), "subject": TagSpec("string"), "from": TagSpec("string"),
        "addresses": TagSpec("strings"), "mime": TagSpec(), "handle": TagSpec("string")}, "vacation"),
    "setflag": Spec(("string", "strings"), extension="imap4flags", optional_first=True),
    "addflag": Spec(("string", "strings"), extension="imap4flags", optional_first=True),
    "removeflag": Spec(("string", "strings"), extension="imap4flags", optional_first=True),
    "set": Spec(("string", "string"), {
        name: TagSpec(group=group) for name, group in (
            ("lower", "case"), ("upper", "case"), ("lowerfirst", "first"), ("upperfirst", "first"),
            ("quotewildcard", "quote"), ("length", "length"))}, "variables"),
}

TESTS: dict[str, Spec] = {
    "address": Spec(("strings", "strings"), {**COMPARATOR, **ADDRESS_PART, **MATCH}),
    "envelope": Spec(("strings", "strings"), {**COMPARATOR, **ADDRESS_PART, **MATCH}, "envelope"),
    "header": Spec(("strings", "strings"), {**COMPARATOR, **MATCH}),
    "exists": Spec(("strings",)),
    "size": Spec(("number",), {"over": TagSpec(group="size"), "under": TagSpec(group="size")}),
    "allof": Spec(tests="list"),
    "anyof": Spec(tests="list"),
    "not": Spec(tests="one"),
    "true": Spec(),
    "false": Spec(),
    "body": Spec(("strings",), {**COMPARATOR, **MATCH, "raw": TagSpec(group="transform"),
                                "content": TagSpec("strings", "transform"),
                                "text": TagSpec(group="transform")}, "body"),
    "string": Spec(("strings", "strings"), {**COMPARATOR, **MATCH}, "variables"),
    "hasflag": Spec(("strings", "strings"), {**COMPARATOR, **MATCH}, "imap4flags", optional_first=True),
    "spamtest": Spec(("string",), {**COMPARATOR, **MATCH,
                                   "percent": TagSpec(extension="spamtestplus")}, "spamtest"),
    "virustest": Spec(("string",), {**COMPARATOR, **MATCH}, "virustest"),
    "mailboxexists": Spec(("strings",), extension="mailbox"),
    "date": Spec(("string", "string", "strings"), {**COMPARATOR, **MATCH, **ZONE}, "date"),
    "currentdate": Spec(("string", "strings"), {**COMPARATOR, **MATCH,
                                                 "zone": TagSpec("string", "zone")}, "date"),
}
# RFC 5235 §3.2: spamtestplus implies spamtest.
IMPLIES = {"spamtestplus": "spamtest"}


@dataclass
class Bound:
    tags: dict[str, object]
    positional: list[object]


def _value(arg: object, kind: str, what: str, line: int) -> object:
    if kind == "number":
        if not isinstance(arg, int):
            raise SieveError(f"{what} needs a number", line)
        return arg
    if not isinstance(arg, StringList):
        raise SieveError(f"{what} needs a {'string' if kind == 'string' else 'string list'}", line)
    if kind == "string":
        if arg.is_list and len(arg.items) != 1:
            raise SieveError(f"{what} needs a single string, not a list", line)
        return arg.items[0]
    return list(arg.items)


def bind(node: Command | Test, spec: Spec, required: set[str]) -> Bound:
    what = f"{node.name!r}"
    if spec.extension and spec.extension not in required:
        raise SieveError(f"{what} needs require \"{spec.extension}\"", node.line)
    tags: dict[str, object] = {}
    groups: dict[str, str] = {}
    positional: list[object] = []
    args = list(node.args)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if isinstance(arg, Tag):
            if positional:
                raise SieveError(f"tag :{arg.name} must come before the other arguments of {what}", arg.line)
            tag = spec.tags.get(arg.name)
            if tag is None:
                raise SieveError(f"{what} has no tag :{arg.name}", arg.line)
            if tag.extension and tag.extension not in required:
                raise SieveError(f":{arg.name} needs require \"{tag.extension}\"", arg.line)
            if arg.name in tags:
                raise SieveError(f"tag :{arg.name} given twice", arg.line)
            if tag.group:
                if tag.group in groups:
                    raise SieveError(f":{arg.name} cannot be used with :{groups[tag.group]}", arg.line)
                groups[tag.group] = arg.name
            value: object = True
            if tag.arg:
                if i >= len(args):
                    raise SieveError(f":{arg.name} needs an argument", arg.line)
                value = _value(args[i], tag.arg, f":{arg.name}", arg.line)
                i += 1
            tags[arg.name] = value
        else:
            positional.append(arg)
    if spec.optional_first and len(positional) == len(spec.positional) - 1:
        positional.insert(0, None)  # the optional variable name was left out
    if len(positional) != len(spec.positional):
        raise SieveError(f"{what} takes {len(spec.positional)} argument(s), got {len(positional)}", node.line)
    values = [None if arg is None else _value(arg, kind, what, node.line)
              for arg, kind in zip(positional, spec.positional)]
    _check_comparator(tags, node.line, required)
    _check_relational(tags, node.line)
    return Bound(tags, values)


def _check_comparator(tags: dict[str, object], line: int, required: set[str]) -> None:
    name = tags.get("comparator")
    if name is None:
        return
    if name not in COMPARATORS:
        raise SieveError(f"unknown comparator {name!r}", line)
    needed = COMPARATORS[name]
    if needed and needed not in required:
        raise SieveError(f"comparator {name!r} needs require \"{needed}\"", line)
    if name == "i;ascii-numeric" and ("contains" in tags or "matches" in tags):
        raise SieveError("i;ascii-numeric supports only :is, :count and :value", line)


def _check_relational(tags: dict[str, object], line: int) -> None:
    for key in ("count", "value"):
        op = tags.get(key)
        if op is not None and str(op).lower() not in RELATIONAL_OPS:
            raise SieveError(f"relational operator must be one of {', '.join(RELATIONAL_OPS)}", line)
