"""``pymail domain|user|alias|quota ...``: directory administration."""

from __future__ import annotations

from pymail.cli.errors import CliError, UsageError
from pymail.cli.prompts import read_password
from pymail.cli.sizes import parse_limit, show_limit
from pymail.directory import KEEP
from pymail.directory.addresses import normalise_address, normalise_alias_source, normalise_domain


def domain_add(args, site) -> int:
    print(f"added domain {site.directory().add_domain(args.name)}")
    return 0


def domain_list(args, site) -> int:
    for name in site.directory().list_domains():
        print(name)
    return 0


def domain_del(args, site) -> int:
    name = normalise_domain(args.name)
    site.directory().delete_domain(name, force=args.force)
    print(f"deleted domain {name} (maildirs on disk were kept)")
    return 0


def _quota_args(args) -> tuple[int | None, int | None]:
    qb = parse_limit(args.quota_bytes, "byte quota", units=True) if args.quota_bytes else None
    qm = parse_limit(args.quota_messages, "message quota", units=False) if args.quota_messages else None
    return qb, qm


def user_add(args, site) -> int:
    quota_bytes, quota_messages = _quota_args(args)
    directory = site.directory()
    address = normalise_address(args.address)
    if not directory.is_local_domain(address.rpartition("@")[2]):
        raise CliError(f"no such domain {address.rpartition('@')[2]} (add it with 'pymail domain add')")
    if directory.get_user(address) is not None:
        raise CliError(f"user {address} already exists")
    password = read_password(args.password_stdin)
    rec = directory.add_user(args.address, password, quota_bytes, quota_messages, enabled=not args.disabled)
    try:
        site.store().account(rec.address, rec.quota_bytes, rec.quota_messages).ensure()
    except Exception as exc:  # the directory row stays: say exactly what is missing
        raise CliError(f"added user {rec.address}, but its maildir could not be created: {exc}") from None
    print(f"added user {rec.address}")
    if any(a.source == rec.address for a in directory.list_aliases(rec.domain)):
        print(f"note: the alias {rec.address} exists and decides where its mail goes")
    return 0


def user_passwd(args, site) -> int:
    directory = site.directory()
    address = normalise_address(args.address)
    if directory.get_user(address) is None:
        raise CliError(f"no such user {address}")
    directory.set_password(address, read_password(args.password_stdin))
    print(f"changed the password of {address}")
    return 0


def user_del(args, site) -> int:
    address = normalise_address(args.address)
    directory = site.directory()
    directory.delete_user(address)
    print(f"deleted user {address} (its maildir on disk was kept)")
    pointing = [a.source for a in directory.list_aliases() if address in a.destinations]
    if pointing:
        print(f"note: these aliases still name it: {', '.join(pointing)}")
    return 0


def user_enable(args, site) -> int:
    enabled = args.command == "enable"
    address = normalise_address(args.address)
    site.directory().set_enabled(address, enabled)
    print(f"{'enabled' if enabled else 'disabled'} user {address}")
    return 0


def user_list(args, site) -> int:
    for rec in site.directory().list_users(args.domain):
        print(rec.address if rec.enabled else f"{rec.address} (disabled)")
    return 0


def user_show(args, site) -> int:
    directory = site.directory()
    rec = directory.get_user(args.address)
    if rec is None:
        raise CliError(f"no such user {args.address}")
    print(f"address:        {rec.address}")
    print(f"enabled:        {'yes' if rec.enabled else 'no'}")
    print(f"password:       {rec.password_scheme}")
    print(f"quota bytes:    {show_limit(rec.quota_bytes)}")
    print(f"quota messages: {show_limit(rec.quota_messages)}")
    try:
        used_messages, used_bytes = site.store().account(rec.address).quota()
        print(f"used:           {used_messages} messages, {used_bytes} bytes")
    except Exception as exc:  # a missing maildir is worth a line, not a failure
        print(f"used:           unknown ({exc})")
    sources = [a.source for a in directory.list_aliases(rec.domain) if rec.address in a.destinations]
    print(f"aliases:        {', '.join(sources) if sources else '-'}")
    for key, value in directory.get_settings(rec.address).items():
        print(f"setting {key} = {value!r}")
    return 0


def alias_add(args, site) -> int:
    rec = site.directory().add_alias(args.source, args.destinations)
    print(f"{rec.source} -> {', '.join(rec.destinations)}")
    return 0


def alias_del(args, site) -> int:
    source = normalise_alias_source(args.source)
    removed = site.directory().delete_alias(source, args.destinations or None)
    print(f"removed {removed} destination(s) of {source}")
    return 0


def alias_list(args, site) -> int:
    for rec in site.directory().list_aliases(args.domain):
        print(f"{rec.source} -> {', '.join(rec.destinations)}")
    return 0


def quota_set(args, site) -> int:
    if args.bytes is None and args.messages is None:
        raise UsageError("quota set: give --bytes and/or --messages")
    qb = parse_limit(args.bytes, "byte quota", units=True) if args.bytes is not None else KEEP
    qm = parse_limit(args.messages, "message quota", units=False) if args.messages is not None else KEEP
    rec = site.directory().set_quota(args.address, quota_bytes=qb, quota_messages=qm)
    print(f"{rec.address}: {show_limit(rec.quota_bytes)} bytes, {show_limit(rec.quota_messages)} messages")
    return 0


def quota_show(args, site) -> int:
    rec = site.directory().get_user(args.address)
    if rec is None:
        raise CliError(f"no such user {args.address}")
    used_messages, used_bytes = site.store().account(rec.address).quota()
    print(f"{rec.address}: {used_bytes} of {show_limit(rec.quota_bytes)} bytes, "
          f"{used_messages} of {show_limit(rec.quota_messages)} messages")
    return 0
