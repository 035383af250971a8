"""``pymail import-passwd FILE``: users from a Dovecot passwd-file, hashes kept as they are."""

from __future__ import annotations

from pymail.cli.errors import CliError
from pymail.cli.passwdfile import PasswdFileError, parse_passwd_file
from pymail.directory.addresses import normalise_domain


def import_passwd(args, site) -> int:
    try:
        with open(args.file, "rb") as fh:
            text = fh.read().decode("utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CliError(f"{args.file}: not UTF-8 text") from None
    default_domain = normalise_domain(args.domain) if args.domain else None
    try:
        entries = parse_passwd_file(text, default_domain)
    except PasswdFileError as exc:
        raise CliError(f"{args.file}: {exc}; nothing imported") from None
    if not entries:
        raise CliError(f"{args.file}: no users found")
    directory = site.directory()
    known = set(directory.list_domains())
    missing = sorted({e.address.rpartition("@")[2] for e in entries} - known)
    if missing and not args.create_domains:
        raise CliError(f"unknown domain(s) {', '.join(missing)}: add them first or give --create-domains; "
                       "nothing imported")
    if not args.replace:
        existing = [e.address for e in entries if directory.get_user(e.address) is not None]
        if existing:
            more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
            raise CliError(f"user(s) already exist: {', '.join(existing[:3])}{more} "
                           "(give --replace to overwrite them); nothing imported")
    for name in missing:
        directory.add_domain(name)
        print(f"added domain {name}")
    records = directory.import_users([(e.address, e.password_hash, e.quota_bytes, e.quota_messages, e.enabled)
                                      for e in entries], replace=args.replace)
    print(f"imported {len(entries)} user(s) from {args.file}")
    if not args.no_maildirs:
        made = _make_missing_maildirs(site, records)
        if made:
            print(f"created {made} new maildir(s)")
    return 0


def _make_missing_maildirs(site, records) -> int:
    """Create maildirs for users that have none; an existing (migrated) maildir is not touched."""
    from pymail.store import StoreError

    store, made = site.store(), 0
    for rec in records:
        account = store.account(rec.address, rec.quota_bytes, rec.quota_messages)
        try:
            account.list_mailboxes()
        except StoreError:
            account.ensure()
            made += 1
    return made
