"""Queue administration, as Postfix's ``mailq`` / ``postqueue -f`` / ``postsuper -h/-H/-d``.

Functions work on the queue directory directly (no running server needed) and take each
message's lock, so they never change a message while a runner is delivering it:

- ``list_queue(qdir)`` → [QueueEntry]; ``format_list(entries)`` → mailq-style text
- ``show(qdir, id)`` → envelope and header text
- ``flush(qdir)`` → number of messages made due now (a running server picks them up within
  ``queue.scan_interval`` seconds)
- ``hold(qdir, id)``, ``release(qdir, id)``, ``delete(qdir, id)``

``register_cli(subparsers)`` adds ``pymail queue list|show|flush|hold|release|delete``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from pymail.queue import maillog
from pymail.queue.envelope import Envelope
from pymail.queue.spool import QueueDir, QueueError

LOCK_WAIT = 5.0


@dataclass
class QueueEntry:
    queue_id: str
    size: int
    arrival: float
    sender: str
    held: bool
    attempts: int
    next_attempt: float
    pending: list[tuple[str, str]]  # (recipient, last error)


def open_dir(path: str | Path) -> QueueDir:
    path = Path(path)
    if not path.is_dir():
        raise QueueError(f"{path}: no queue directory there")
    return QueueDir(path)


def list_queue(qdir: QueueDir) -> list[QueueEntry]:
    out = []
    for env in qdir.envelopes():
        out.append(QueueEntry(env.queue_id, env.size, env.created, env.sender, env.held, env.attempts,
                              env.next_attempt, [(r.address, r.last_error) for r in env.pending()]))
    return out


def format_list(entries: list[QueueEntry]) -> str:
    if not entries:
        return "Mail queue is empty"
    lines = ["-Queue ID-          --Size-- ----Arrival Time---- -Sender/Recipient-------"]
    for e in entries:
        mark = "!" if e.held else " "
        when = time.strftime("%a %b %d %H:%M:%S", time.localtime(e.arrival))
        lines.append(f"{e.queue_id}{mark} {e.size:>8} {when}  {e.sender or 'MAILER-DAEMON'}")
        for rcpt, error in e.pending:
            if error:
                lines.append(f"{'':>50}({error[:70]})")
            lines.append(f"{'':>50}{rcpt}")
        lines.append("")
    total = sum(e.size for e in entries)
    n = len(entries)
    lines.append(f"-- {(total + 1023) // 1024} Kbytes in {n} Request{'s' if n != 1 else ''}.")
    return "\n".join(lines)


def show(qdir: QueueDir, queue_id: str) -> str:
    env = qdir.load(queue_id)
    out = [f"queue_id: {env.queue_id}", f"sender: <{env.sender}>",
           f"arrival: {time.strftime('%Y-%m-%d %H:%M:%S %z', time.localtime(env.created))}",
           f"size: {env.size}", f"held: {'yes' if env.held else 'no'}", f"attempts: {env.attempts}",
           f"next_attempt: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(env.next_attempt)) if env.next_attempt else 'now'}",
           f"client: [{env.client_ip}] helo={env.helo}" + (f" sasl_username={env.auth_user}" if env.auth_user else "")]
    if env.ret or env.envid:
        out.append(f"dsn: ret={env.ret or '-'} envid={env.envid or '-'}")
    for r in env.recipients:
        extra = f" ({r.last_error})" if r.last_error else ""
        out.append(f"recipient: <{r.address}> {'local' if r.local else 'remote'} {r.status}{extra}")
    out.append("")
    try:
        with open(qdir.data_path(queue_id), "rb") as f:
            head = f.read(min(64 * 1024, qdir.message_length(queue_id)))
    except FileNotFoundError:
        raise QueueError(f"{queue_id}: message file is missing") from None
    end = head.find(b"\r\n\r\n")
    out.append(head[: end if end >= 0 else len(head)].decode("utf-8", "replace"))
    return "\n".join(out)


def _change(qdir: QueueDir, queue_id: str, fn) -> Envelope:
    qdir.load(queue_id)  # a clear error for unknown IDs
    with qdir.locked(queue_id, wait=LOCK_WAIT) as got:
        if not got:
            raise QueueError(f"{queue_id}: is being delivered right now, try again")
        env = qdir.load(queue_id)
        fn(env)
        qdir.save(env)
        return env


def hold(qdir: QueueDir, queue_id: str) -> None:
    def op(env):
        env.held = True
    _change(qdir, queue_id, op)
    maillog.event(queue_id, "held by the administrator")


def release(qdir: QueueDir, queue_id: str) -> None:
    def op(env):
        env.held = False
        env.next_attempt = 0.0
    _change(qdir, queue_id, op)
    maillog.event(queue_id, "released by the administrator")


def flush(qdir: QueueDir) -> int:
    """Make every deferred (not held) message due now; returns how many."""
    n = 0
    for qid in qdir.ids():
        try:
            env = qdir.load(qid)
            if env.held or env.next_attempt == 0.0:
                continue

            def op(e):
                e.next_attempt = 0.0
            _change(qdir, qid, op)
            n += 1
        except QueueError:
            continue  # delivered or being delivered meanwhile
    return n


def delete(qdir: QueueDir, queue_id: str) -> None:
    qdir.load(queue_id)
    with qdir.locked(queue_id, wait=LOCK_WAIT) as got:
        if not got:
            raise QueueError(f"{queue_id}: is being delivered right now, try again")
        qdir.remove(queue_id)
    maillog.event(queue_id, "removed by the administrator")


# -- the ``pymail queue`` command ------------------------------------------------------------------

def register_cli(subparsers, parser_class=None) -> argparse.ArgumentParser:
    """Add ``queue`` with its subcommands; handlers are called as ``args.func(args, site)``."""
    kw = {"parser_class": parser_class} if parser_class else {}
    parser = subparsers.add_parser("queue", help="the mail queue (like mailq/postsuper)",
                                   description="Inspect and manage the mail queue.")
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $PYMAIL_CONFIG, ./conf/pymail.toml, /etc/pymail/pymail.toml)")
    inner = parser.add_subparsers(dest="queue_command", metavar="COMMAND", **kw)
    inner.required = True
    inner.add_parser("list", help="list queued messages (mailq)")
    p = inner.add_parser("show", help="envelope and header of one message")
    p.add_argument("queue_id")
    inner.add_parser("flush", help="retry every deferred message now (postqueue -f)")
    for name, text in (("hold", "put messages on hold (postsuper -h)"),
                       ("release", "release held messages (postsuper -H)"),
                       ("delete", "delete messages from the queue (postsuper -d)")):
        p = inner.add_parser(name, help=text)
        p.add_argument("queue_ids", nargs="+", metavar="queue_id")
    for sub in [parser, *inner.choices.values()]:
        sub.set_defaults(func=cli_main)
    return parser


def queue_path_from_config(config_path: str | Path | None) -> Path:
    from pymail.config import default_config_path, load_config

    config = load_config(Path(config_path) if config_path else default_config_path())
    return Path(config.queue.directory) if config.queue.directory else config.var_dir / "queue"


def run(command: str, qdir: QueueDir, ids: list[str] | None = None) -> str:
    """Run one admin command; returns the text to print. Raises QueueError."""
    if command == "list":
        return format_list(list_queue(qdir))
    if command == "show":
        return show(qdir, ids[0])
    if command == "flush":
        return f"{flush(qdir)} message(s) will be retried now"
    actions = {"hold": hold, "release": release, "delete": delete}
    done = []
    for qid in ids or []:
        actions[command](qdir, qid)
        done.append(qid)
    verb = {"hold": "held", "release": "released", "delete": "deleted"}[command]
    return "\n".join(f"{qid}: {verb}" for qid in done)


def cli_main(args, site=None) -> int:
    """Handler for ``pymail queue ...``; errors become the CLI's one-line CliError."""
    try:
        from pymail.cli.errors import CliError
    except ImportError:  # the CLI package is optional for this module
        CliError = SystemExit  # noqa: N806
    config_path = getattr(site, "config_path", None) or getattr(args, "config", None)
    try:
        qdir = open_dir(queue_path_from_config(config_path))
        ids = [args.queue_id] if getattr(args, "queue_id", None) else getattr(args, "queue_ids", None)
        print(run(args.queue_command, qdir, ids))
    except QueueError as exc:
        raise CliError(f"queue: {exc}") from None
    except Exception as exc:
        from pymail.config import ConfigError

        if isinstance(exc, ConfigError):
            raise CliError(f"config: {exc}") from None
        raise
    return 0
