"""pymail-loadtest: drives SMTP, IMAP and POP3 servers (pymail or a peer) on addresses it is given.

Every run is bounded (``--duration`` seconds, and ``--count`` operations where it applies), shows
progress on stderr, and ends with a summary table and one JSON line on stdout (``--json-only``:
the JSON line alone). Exit status: 0 clean, 1 when the server gave a wrong or failed reply,
2 for a bad command line or a target it may not load (not loopback).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pymail_loadtest.common import (Bounds, LoadError, SizeDistribution, Target, User,
                                    check_loopback, load_users, raise_fd_limit)
from pymail_loadtest.conn_load import ConnLoad, run_connections
from pymail_loadtest.idle_load import IdleLoad, run_idle
from pymail_loadtest.imap_load import DEFAULT_MIX, ImapLoad, parse_mix, run_imap
from pymail_loadtest.mailbox_load import MailboxLoad, run_mailbox
from pymail_loadtest.pop3_load import Pop3Load, run_pop3
from pymail_loadtest.smtp_load import SmtpLoad, run_smtp
from pymail_loadtest.stats import Recorder, emit, progress

MAX_DURATION = 3600.0


def positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_DURATION:
        raise argparse.ArgumentTypeError(f"must be above 0 and at most {MAX_DURATION:.0f}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def common_options(p: argparse.ArgumentParser, default_port: int) -> None:
    p.add_argument("--host", default="127.0.0.1", help="server address (loopback unless --allow-remote)")
    p.add_argument("--port", type=int, default=default_port)
    p.add_argument("--tls", choices=("none", "starttls", "implicit"), default="none")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds allowed for any one reply")
    p.add_argument("--users", metavar="FILE", help="file of name:password lines")
    p.add_argument("--user", action="append", metavar="NAME:PASS", help="a user (repeatable)")
    p.add_argument("--duration", type=positive_float, default=30.0, help="stop after this many seconds")
    p.add_argument("--count", type=positive_int, help="stop after this many operations/messages")
    p.add_argument("--progress", type=float, default=2.0, help="seconds between progress lines (0: none)")
    p.add_argument("--json-only", action="store_true", help="print only the final JSON line")
    p.add_argument("--allow-remote", action="store_true", help="allow a target that is not loopback")
    p.add_argument("--seed", type=int, default=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pymail-loadtest",
        description="Load-test an SMTP, IMAP or POP3 server and report rates and latencies.")
    sub = parser.add_subparsers(dest="kind", required=True)

    p = sub.add_parser("smtp", help="sessions sending messages; end-of-DATA latency")
    common_options(p, 25)
    p.add_argument("--sessions", type=positive_int, default=10)
    p.add_argument("--messages-per-session", type=int, default=0,
                   help="reconnect after this many messages (0: one connection per session)")
    p.add_argument("--size", default="5k", help="size or distribution, e.g. 5k or 1k:60,10k:30,1m:10")
    p.add_argument("--from", dest="sender", help="MAIL FROM (default: the authenticated user with "
                   "--auth, else loadtest@example.test)")
    p.add_argument("--to", action="append", help="recipient (repeatable; default: the users)")
    p.add_argument("--auth", action="store_true",
                   help="AUTH PLAIN (submission): session i as user i modulo the number of users")

    p = sub.add_parser("imap", help="clients running a mix of IMAP commands, replies checked")
    common_options(p, 143)
    p.add_argument("--clients", type=positive_int, default=10)
    p.add_argument("--mix", default=DEFAULT_MIX, help="operation=weight list")
    p.add_argument("--mailbox", default="INBOX")
    p.add_argument("--session-ops", type=positive_int, default=20, help="operations between LOGIN and LOGOUT")
    p.add_argument("--window", type=positive_int, default=50, help="messages per FETCH of flags or headers")
    p.add_argument("--idle-time", type=float, default=0.2, help="seconds spent in each IDLE")
    p.add_argument("--size", default="5k", help="size (distribution) of APPENDed messages")
    p.add_argument("--auth", choices=("login", "plain"), default="login",
                   help="LOGIN, or AUTHENTICATE PLAIN (SASL-IR when offered) as Thunderbird does")

    p = sub.add_parser("mailbox", help="big-mailbox command timings, cold then warm, one client")
    common_options(p, 143)
    p.add_argument("--mailbox", default="INBOX")
    p.add_argument("--passes", type=positive_int, default=2, help="1st pass is cold, the rest warm")
    p.add_argument("--store-count", type=positive_int, default=1000, help="messages in the timed STORE")
    p.add_argument("--search", default="Message 5 of", help="text for UID SEARCH HEADER SUBJECT")

    p = sub.add_parser("pop3", help="login, STAT, UIDL, LIST, RETR, DELE, QUIT cycles")
    common_options(p, 110)
    p.add_argument("--clients", type=positive_int, default=10)
    p.add_argument("--retr", type=int, default=5, help="messages retrieved per cycle")
    p.add_argument("--dele", type=int, default=0, help="messages deleted per cycle")

    p = sub.add_parser("connections", help="hold N SMTP connections after EHLO and measure the "
                                           "server's memory")
    common_options(p, 25)
    p.add_argument("--connections", type=positive_int, default=100)
    p.add_argument("--hold", type=float, default=3.0, help="seconds to hold them once all open")
    p.add_argument("--connect-concurrency", type=positive_int, default=50)
    p.add_argument("--pid", type=int, help="server process whose memory (with its children) to report")

    for name, text in (("idle", "hold N IDLE sessions and measure the server's memory"),
                       ("delivery", "time from end-of-DATA 250 to the IDLE EXISTS")):
        p = sub.add_parser(name, help=text)
        common_options(p, 143)
        p.add_argument("--connections", type=positive_int, default=100 if name == "idle" else 0)
        p.add_argument("--hold", type=float, default=5.0 if name == "idle" else 0.0,
                       help="seconds to hold the sessions once all idle")
        p.add_argument("--connect-concurrency", type=positive_int, default=100)
        p.add_argument("--pid", type=int, help="server process whose memory (with its children) to report")
        p.add_argument("--smtp-host", default=None, help="SMTP server for deliveries (default --host)")
        p.add_argument("--smtp-port", type=int, default=None if name == "idle" else 25)
        p.add_argument("--smtp-tls", choices=("none", "starttls", "implicit"), default="none")
        p.add_argument("--deliveries", type=int, default=0 if name == "idle" else 100)
        p.add_argument("--delivery-concurrency", type=positive_int, default=4)
        p.add_argument("--notify-timeout", type=float, default=10.0)
        p.add_argument("--from", dest="sender", default="loadtest@example.test")
    return parser


def make_run(args: argparse.Namespace, users: list[User], target: Target):
    bounds = Bounds(args.duration, args.count)
    params = {k: v for k, v in vars(args).items() if k not in ("user",)}
    if args.kind == "smtp":
        recipients = args.to or [u.name for u in users]
        if not recipients:
            raise LoadError("no recipients: give --to ADDRESS or users")
        if args.auth and not users:
            raise LoadError("--auth needs a user (--users FILE or --user NAME:PASS)")
        load = SmtpLoad(target, args.sessions, bounds, SizeDistribution.parse(args.size),
                        args.sender or "loadtest@example.test", recipients, args.messages_per_session,
                        users if args.auth else None, args.seed, sender_is_user=args.auth and not args.sender)
        return load.sessions, params, lambda rec: run_smtp(load, rec)
    if args.kind == "imap":
        load = ImapLoad(target, args.clients, users, bounds, parse_mix(args.mix), SizeDistribution.parse(args.size),
                        args.mailbox, args.session_ops, args.window, args.idle_time, args.seed, args.auth)
        return load.clients, params, lambda rec: run_imap(load, rec)
    if args.kind == "mailbox":
        load = MailboxLoad(target, users[0] if users else None, bounds, args.mailbox, args.passes,
                           args.store_count, args.search)
        return 1, params, lambda rec: run_mailbox(load, rec)
    if args.kind == "connections":
        load = ConnLoad(target, args.connections, bounds, args.hold, args.connect_concurrency, args.pid)
        return load.connections, params, lambda rec: run_connections(load, rec)
    if args.kind == "pop3":
        load = Pop3Load(target, args.clients, users, bounds, args.retr, args.dele, args.seed)
        return load.clients, params, lambda rec: run_pop3(load, rec)
    # idle / delivery
    connections = args.connections or len(users)
    smtp = None
    if args.smtp_port:
        smtp_host = args.smtp_host or args.host
        check_loopback(smtp_host, args.allow_remote)
        smtp = Target(smtp_host, args.smtp_port, args.smtp_tls, args.timeout)
    if args.kind == "delivery" and smtp is None:
        raise LoadError("delivery needs --smtp-port")
    load = IdleLoad(target, connections, users, bounds, args.hold, args.connect_concurrency, args.pid,
                    smtp, args.deliveries, args.delivery_concurrency, args.notify_timeout, args.sender,
                    args.seed)
    return connections, params, lambda rec: run_idle(load, rec)


async def run(args: argparse.Namespace, users: list[User]) -> dict:
    target = Target(args.host, args.port, args.tls, args.timeout)
    concurrency, params, body = make_run(args, users, target)
    raise_fd_limit(concurrency * 2 + 256)
    rec = Recorder()
    ticker = asyncio.create_task(progress(rec, args.progress)) if args.progress > 0 else None
    try:
        # The hard stop: the run's own bounds plus one reply timeout to finish what is in flight.
        await asyncio.wait_for(body(rec), args.duration + args.timeout + 5)
    except asyncio.TimeoutError:
        rec.error("run", "stopped at the hard time limit")
    finally:
        rec.finish()
        if ticker:
            ticker.cancel()
    return rec.summary(args.kind, params)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_loopback(args.host, args.allow_remote)
        users = load_users(args.users, args.user)
        summary = asyncio.run(run(args, users))
    except LoadError as exc:
        print(f"pymail-loadtest: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pymail-loadtest: interrupted", file=sys.stderr)
        return 130
    emit(summary, table=not args.json_only)
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
