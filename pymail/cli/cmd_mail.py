"""``pymail index rebuild`` and ``pymail import-mbox``: commands that go through the store
(``Account.rebuild_index``, ``Account.import_mbox``; the store owns every byte on disk)."""

from __future__ import annotations

import sys

from pymail.cli.errors import CliError


def _account(site, address: str):
    rec = site.directory().get_user(address)
    if rec is None:
        raise CliError(f"no such user {address}")
    return rec, site.store().account(rec.address, rec.quota_bytes, rec.quota_messages)


def index_rebuild(args, site) -> int:
    rec, account = _account(site, args.address)
    for name in account.rebuild_index(args.folder):
        with account.mailbox(name) as box:
            print(f"{rec.address} {name}: index rebuilt, {box.count()} messages, uidvalidity {box.uidvalidity}")
    return 0


def import_mbox(args, site) -> int:
    rec, account = _account(site, args.address)
    folder = args.folder or "INBOX"
    try:
        with open(args.file, "rb") as fh:
            first = fh.read(5)
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    if first != b"From ":  # RFC 4155: an mbox starts with a "From " separator line
        raise CliError(f"{args.file}: not an mbox file (it does not start with a 'From ' line)")
    account.ensure()
    result = account.import_mbox(args.file, folder)
    print(f"imported {result.imported} message(s) into {rec.address} {folder}")
    if result.keywords_dropped:
        print(f"warning: keywords not kept (a maildir folder holds at most 26): "
              f"{' '.join(result.keywords_dropped)}", file=sys.stderr)
    return 0
