"""Admin CLI for the filters: per-user spam settings and Sieve scripts.

The lead wires it into ``pymail`` with ``register_cli(top)`` in ``pymail.cli.main.build_parser``
(``top`` being the AREA subparsers). Commands take ``(args, site)`` like the others and raise
``CliError`` for a failure (one line, exit 1)::

    pymail spam show ADDRESS
    pymail spam set ADDRESS [--threshold N|default] [--action tag|junk|reject|default] [--reject-score N]
    pymail spam allow|block ADDRESS ENTRY...        (ENTRY: user@domain or domain)
    pymail spam unallow|unblock ADDRESS ENTRY...
    pymail sieve list ADDRESS
    pymail sieve show ADDRESS NAME
    pymail sieve put ADDRESS NAME FILE [--activate]   (FILE "-" reads standard input)
    pymail sieve activate ADDRESS NAME                (NAME "" deactivates)
    pymail sieve del ADDRESS NAME
    pymail sieve check FILE
    pymail dkim keygen DOMAIN [--selector S] [--bits N] [--keys-dir DIR]   (prints the DNS TXT record)
"""

from __future__ import annotations

import argparse
import sys

from pymail.filters import usersettings
from pymail.filters.sieve import SieveError, compile_script
from pymail.filters.sieve.storage import ScriptStore, ScriptStoreError


def _fail(message: str):
    from pymail.cli.errors import CliError

    return CliError(message)


def _add(sub, name: str, fn, text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=text, description=text)
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")
    parser.set_defaults(func=fn)
    return parser


def _group(top, name: str, text: str):
    parser = top.add_parser(name, help=text, description=text)
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")
    inner = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=type(parser))
    inner.required = True
    return inner


def register_cli(top) -> None:
    spam = _group(top, "spam", "per-user spam settings (threshold, action, allow and block lists)")
    p = _add(spam, "show", spam_show, "show a user's spam settings")
    p.add_argument("address")
    p = _add(spam, "set", spam_set, "change a user's threshold, action or reject score")
    p.add_argument("address")
    p.add_argument("--threshold", metavar="SCORE", help="spam at or above this score ('default': site value)")
    p.add_argument("--action", choices=list(usersettings.ACTIONS) + ["default"])
    p.add_argument("--reject-score", metavar="SCORE", help="with --action reject: refuse at or above")
    for name, which, adding in (("allow", "allow", True), ("unallow", "allow", False),
                                ("block", "block", True), ("unblock", "block", False)):
        verb = "add to" if adding else "remove from"
        p = _add(spam, name, spam_list_edit, f"{verb} the user's {which} list (user@domain or domain)")
        p.add_argument("address")
        p.add_argument("entries", nargs="+", metavar="ENTRY")
        p.set_defaults(which=which, adding=adding)

    sieve = _group(top, "sieve", "users' Sieve scripts (the ones ManageSieve edits)")
    p = _add(sieve, "list", sieve_list, "list a user's scripts")
    p.add_argument("address")
    p = _add(sieve, "show", sieve_show, "print a script")
    p.add_argument("address")
    p.add_argument("name")
    p = _add(sieve, "put", sieve_put, "store a script (checked first)")
    p.add_argument("address")
    p.add_argument("name")
    p.add_argument("file", help="script file, or - for standard input")
    p.add_argument("--activate", action="store_true")
    p = _add(sieve, "activate", sieve_activate, "make a script the active one ('' for none)")
    p.add_argument("address")
    p.add_argument("name")
    p = _add(sieve, "del", sieve_del, "delete a script")
    p.add_argument("address")
    p.add_argument("name")
    p = _add(sieve, "check", sieve_check, "check a script file; errors name the line")
    p.add_argument("file")

    dk = _group(top, "dkim", "DKIM keys for signing mail sent by authenticated users")
    p = _add(dk, "keygen", dkim_keygen, "make a signing key for a domain and print its DNS TXT record")
    p.add_argument("domain")
    p.add_argument("--selector", help="DNS selector (default: [filters] dkim_selector, 'pymail')")
    p.add_argument("--bits", type=int, default=2048)
    p.add_argument("--keys-dir", metavar="DIR", help="default: [filters] dkim_keys_dir, else <var_dir>/dkim")
    p.add_argument("--force", action="store_true", help="replace an existing key")


def _known_user(directory, address: str) -> str:
    user = directory.get_user(address)
    if user is None:
        raise _fail(f"no such user {address}")
    return user.address


def _score(text: str | None, what: str) -> float | None:
    if text is None or text == "default":
        return None
    try:
        return float(text)
    except ValueError:
        raise _fail(f"{what}: {text!r} is not a number") from None


def spam_show(args, site) -> int:
    directory = site.directory()
    address = _known_user(directory, args.address)
    s = usersettings.load(directory, address)
    raw = directory.get_settings(address)
    print(f"threshold:    {s.threshold:g}{'' if usersettings.KEY_THRESHOLD in raw else ' (site default)'}")
    print(f"action:       {s.action}{'' if usersettings.KEY_ACTION in raw else ' (default)'}")
    print(f"reject score: {s.reject_score:g}")
    print(f"allow:        {', '.join(s.allow) or '-'}")
    print(f"block:        {', '.join(s.block) or '-'}")
    return 0


def spam_set(args, site) -> int:
    directory = site.directory()
    address = _known_user(directory, args.address)
    if args.threshold is None and args.action is None and args.reject_score is None:
        raise _fail("nothing to change: give --threshold, --action or --reject-score")
    try:
        if args.threshold is not None:
            usersettings.set_threshold(directory, address, _score(args.threshold, "--threshold"))
        if args.action is not None:
            usersettings.set_action(directory, address, None if args.action == "default" else args.action)
        if args.reject_score is not None:
            directory.set_setting(address, usersettings.KEY_REJECT_SCORE,
                                  None if args.reject_score == "default"
                                  else repr(_score(args.reject_score, "--reject-score")))
    except usersettings.SettingsError as exc:
        raise _fail(str(exc)) from None
    return 0


def spam_list_edit(args, site) -> int:
    directory = site.directory()
    address = _known_user(directory, args.address)
    for entry in args.entries:
        try:
            if args.adding:
                usersettings.add_entry(directory, address, args.which, entry)
            elif not usersettings.remove_entry(directory, address, args.which, entry):
                raise _fail(f"{entry} is not on {address}'s {args.which} list")
        except usersettings.SettingsError as exc:
            raise _fail(str(exc)) from None
    return 0


def _scripts(site, address: str) -> ScriptStore:
    address = _known_user(site.directory(), address)
    return ScriptStore.for_maildir(site.store().account(address).root)


def sieve_list(args, site) -> int:
    for name, active in _scripts(site, args.address).list():
        print(f"{name}{'  (active)' if active else ''}")
    return 0


def sieve_show(args, site) -> int:
    try:
        sys.stdout.write(_scripts(site, args.address).get(args.name))
    except ScriptStoreError as exc:
        raise _fail(str(exc)) from None
    return 0


def _read(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except UnicodeDecodeError:
        raise _fail(f"{path}: not UTF-8") from None


def sieve_put(args, site) -> int:
    store = _scripts(site, args.address)
    try:
        store.put(args.name, _read(args.file))
        if args.activate:
            store.set_active(args.name)
    except (SieveError, ScriptStoreError) as exc:
        raise _fail(f"{args.file}: {exc}") from None
    return 0


def sieve_activate(args, site) -> int:
    try:
        _scripts(site, args.address).set_active(args.name)
    except ScriptStoreError as exc:
        raise _fail(str(exc)) from None
    return 0


def sieve_del(args, site) -> int:
    try:
        _scripts(site, args.address).delete(args.name)
    except ScriptStoreError as exc:
        raise _fail(str(exc)) from None
    return 0


def sieve_check(args, site) -> int:
    try:
        compile_script(_read(args.file))
    except SieveError as exc:
        raise _fail(f"{args.file}: {exc}") from None
    print(f"{args.file}: ok")
    return 0


def dkim_keygen(args, site) -> int:
    from pymail.filters import dkimsign
    from pymail.filters.registry import keys_dir

    settings, var_dir = None, None
    if site is not None and getattr(site, "config_path", None) and site.config_path.exists():
        from pymail.config import load_config

        config = load_config(site.config_path)
        settings, var_dir = config.filters, str(config.var_dir)
    directory = args.keys_dir or (keys_dir(settings, var_dir) if settings is not None else None)
    if directory is None:
        raise _fail("no config file: give --keys-dir")
    selector = args.selector or (settings.dkim_selector if settings is not None else "pymail")
    try:
        path, txt = dkimsign.generate_key(directory, args.domain, selector, args.bits, overwrite=args.force)
    except dkimsign.DkimKeyError as exc:
        raise _fail(str(exc)) from None
    print(f"; key written to {path}; publish this record:")
    print(dkimsign.dns_record(args.domain.lower().rstrip("."), selector, txt))
    return 0
