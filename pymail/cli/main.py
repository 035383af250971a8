"""``pymail``: the admin command line (domains, users, aliases, quotas, index, imports).

Exit codes: 0 done, 1 the command failed (one ``pymail: error: ...`` line on stderr), 2 the
command line is wrong. Never a traceback. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import sys

from pymail.cli import cmd_directory as d
from pymail.cli import cmd_import, cmd_mail
from pymail.cli.errors import EXIT_ERROR, EXIT_USAGE, CliError, UsageError
from pymail.cli.site import load_site

PROG = "pymail"


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) and no abbreviated options (so that
    ``--password x`` is refused instead of being taken for ``--password-stdin``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $PYMAIL_CONFIG, ./conf/pymail.toml, /etc/pymail/pymail.toml)")


def _command(sub, name: str, fn, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    _config_option(parser)
    parser.set_defaults(func=fn)
    return parser


def _group(sub, name: str, help_text: str):
    parser = sub.add_parser(name, help=help_text, description=help_text)
    _config_option(parser)
    inner = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    inner.required = True
    return inner


def _password_option(parser) -> None:
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of standard input (else prompt)")


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Administer a pymail installation.")
    _config_option(parser)
    top = parser.add_subparsers(dest="area", metavar="AREA", parser_class=Parser)
    top.required = True

    dom = _group(top, "domain", "mail domains this server receives mail for")
    p = _command(dom, "add", d.domain_add, "add a domain")
    p.add_argument("name")
    _command(dom, "list", d.domain_list, "list domains")
    p = _command(dom, "del", d.domain_del, "delete a domain")
    p.add_argument("name")
    p.add_argument("--force", action="store_true", help="also delete its users and aliases")

    usr = _group(top, "user", "mail users (mailbox owners)")
    p = _command(usr, "add", d.user_add, "add a user and create its maildir")
    p.add_argument("address")
    _password_option(p)
    p.add_argument("--quota-bytes", metavar="N", help="e.g. 500M, 2G, none")
    p.add_argument("--quota-messages", metavar="N")
    p.add_argument("--disabled", action="store_true", help="create the user unable to log in")
    p = _command(usr, "passwd", d.user_passwd, "change a user's password")
    p.add_argument("address")
    _password_option(p)
    p = _command(usr, "del", d.user_del, "delete a user (the maildir stays on disk)")
    p.add_argument("address")
    p = _command(usr, "list", d.user_list, "list users")
    p.add_argument("domain", nargs="?")
    p = _command(usr, "show", d.user_show, "show a user")
    p.add_argument("address")
    for name, text in (("enable", "allow a user to log in"), ("disable", "refuse a user's logins (mail still arrives)")):
        p = _command(usr, name, d.user_enable, text)
        p.add_argument("address")

    ali = _group(top, "alias", "aliases, catch-all (@domain) and forwarding")
    p = _command(ali, "add", d.alias_add, "add destinations to an alias")
    p.add_argument("source", help="local@domain, or @domain for a catch-all")
    p.add_argument("destinations", nargs="+", metavar="DESTINATION")
    p = _command(ali, "del", d.alias_del, "delete an alias or some of its destinations")
    p.add_argument("source")
    p.add_argument("destinations", nargs="*", metavar="DESTINATION")
    p = _command(ali, "list", d.alias_list, "list aliases")
    p.add_argument("domain", nargs="?")

    quo = _group(top, "quota", "per-user quotas")
    p = _command(quo, "set", d.quota_set, "set a user's limits (none = no limit)")
    p.add_argument("address")
    p.add_argument("--bytes", metavar="N", help="e.g. 1073741824, 500M, 2G, none")
    p.add_argument("--messages", metavar="N", help="e.g. 10000, none")
    p = _command(quo, "show", d.quota_show, "show a user's usage and limits")
    p.add_argument("address")

    idx = _group(top, "index", "the store's index cache")
    p = _command(idx, "rebuild", cmd_mail.index_rebuild, "rebuild the index cache from the maildir")
    p.add_argument("address")
    p.add_argument("folder", nargs="?", help="one folder (default: all)")

    p = _command(top, "import-mbox", cmd_mail.import_mbox, "import an mbox file into a user's folder")
    p.add_argument("address")
    p.add_argument("file")
    p.add_argument("--folder", metavar="NAME", help="target folder (default INBOX; created if missing)")

    p = _command(top, "import-passwd", cmd_import.import_passwd, "import users from a Dovecot passwd-file")
    p.add_argument("file")
    p.add_argument("--domain", help="domain for lines whose user has no @domain")
    p.add_argument("--create-domains", action="store_true", help="add domains that do not exist yet")
    p.add_argument("--replace", action="store_true", help="overwrite users that already exist")
    p.add_argument("--no-maildirs", action="store_true", help="do not create maildirs for users that have none")

    # Areas owned by other packages register their own commands.
    from pymail.filters.cli import register_cli as register_filter_commands
    from pymail.queue.admin import register_cli as register_queue_commands

    register_queue_commands(top, Parser)
    register_filter_commands(top)
    return parser


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    site = load_site(getattr(args, "config", None))
    return args.func(args, site)


def main(argv: list[str] | None = None) -> int:
    from pymail.directory import DirectoryError

    try:
        from pymail.store import StoreError
    except ImportError:  # a tree without the store still administers the directory
        StoreError = DirectoryError
    try:
        code = run(argv)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (CliError, DirectoryError, StoreError) as exc:
        return _fail(str(exc), getattr(exc, "exit_code", EXIT_ERROR))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        return EXIT_ERROR
    except OSError as exc:
        return _fail(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}", EXIT_ERROR)
    except SystemExit as exc:  # argparse --help / --version
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:  # never a traceback: one line that says what broke
        return _fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_ERROR)
    sys.stdout.flush()
    return code


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
