"""``pymail index rebuild`` and ``pymail import-mbox``: commands that go through the store."""

from __future__ import annotations

from pymail.cli.errors import CliError
from pymail.cli.mbox import MboxError, read_mbox


def _account(site, address: str):
    rec = site.directory().get_user(address)
    if rec is None:
        raise CliError(f"no such user {address}")
    return rec, site.store().account(rec.address, rec.quota_bytes, rec.quota_messages)


def index_rebuild(args, site) -> int:
    rec, account = _account(site, args.address)
    names = [args.folder] if args.folder else [m.name for m in account.list_mailboxes()]
    for name in names:
        with account.mailbox(name) as box:
            box.rebuild_index()
            print(f"{rec.address} {box.name}: index rebuilt, {box.count()} messages")
    return 0


def import_mbox(args, site) -> int:
    rec, account = _account(site, args.address)
    folder = args.folder or "INBOX"
    try:
        fh = open(args.file, "rb")
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    with fh:
        account.ensure()
        if folder.upper() != "INBOX" and folder not in {m.name for m in account.list_mailboxes()}:
            account.create_mailbox(folder)
        imported = skipped = 0
        try:
            for msg in read_mbox(fh):
                if msg.expunged:
                    skipped += 1
                    continue
                try:
                    account.deliver(msg.data, mailbox=folder, flags=msg.flags, internal_date=msg.internal_date)
                except Exception as exc:
                    raise CliError(f"stopped after {imported} message(s) imported into {folder}: {exc}") from None
                imported += 1
        except MboxError as exc:
            raise CliError(f"{args.file}: {exc}") from None
    extra = f" ({skipped} deleted message(s) skipped)" if skipped else ""
    print(f"imported {imported} message(s) into {rec.address} {folder}{extra}")
    return 0
