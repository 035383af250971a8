"""``pymail-server``: serve the configured roles (all of them, or those named by --roles).

    pymail-server --demo                      # embedded default under ./var, printed at start
    pymail-server --config /etc/pymail/pymail.toml --roles imap,pop3 --workers 2
    pymail-server --config FILE --check       # validate the configuration and exit
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from pymail.config import ROLES, Config, ConfigError, default_config_path, load_config

log = logging.getLogger("pymail.server")


class StartupError(Exception):
    """Anything that stops the server before it serves; printed as one line, exit code 1."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pymail-server", description="Serve pymail's mail roles.")
    p.add_argument("--config", help="configuration file (default: $PYMAIL_CONFIG, "
                   "./conf/pymail.toml, /etc/pymail/pymail.toml)")
    p.add_argument("--demo", action="store_true",
                   help="run the embedded demo under --var-dir (default ./var): SQLite, a demo "
                        "user, a self-signed certificate, localhost ports")
    p.add_argument("--var-dir", default="var", help="demo data folder (with --demo)")
    p.add_argument("--roles", help=f"comma-separated roles to serve ({','.join(ROLES)})")
    p.add_argument("--workers", type=int, help="worker processes (0: one per core)")
    p.add_argument("--check", action="store_true", help="validate the configuration and exit")
    p.add_argument("--worker-fds", help=argparse.SUPPRESS)  # set by the supervisor
    return p.parse_args(argv)


def choose_roles(args: argparse.Namespace, config: Config) -> list[str]:
    if not args.roles:
        return list(config.server.roles)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    for role in roles:
        if role not in ROLES:
            raise ConfigError(f"--roles: unknown role {role!r} (roles: {', '.join(ROLES)})")
    return roles


def setup_logging(config: Config) -> None:
    level = getattr(logging, config.server.log_level.upper())
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    if config.server.mail_log:
        handler = logging.FileHandler(config.server.mail_log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(message)s"))
        logging.getLogger("pymail.maillog").addHandler(handler)
        logging.getLogger("pymail.maillog").propagate = False


def prepare_state(config: Config, demo: bool) -> None:
    """One-time, before forking workers: folders, TLS material, schema migrations, demo user."""
    from pymail.tls import ensure_self_signed

    config.var_dir.mkdir(parents=True, exist_ok=True)
    config.mail_root.mkdir(parents=True, exist_ok=True)
    if config.tls.self_signed and ensure_self_signed(config.tls_cert, config.tls_key,
                                                     config.server.hostname):
        print(f"pymail: made a self-signed certificate {config.tls_cert}")
    from pymail.directory import Directory
    from pymail.store import Store

    directory = Directory(config.directory_url, bcrypt_rounds=config.auth.bcrypt_rounds)
    directory.create_schema()
    if demo:
        from pymail.server.demo import ensure_demo_user

        ensure_demo_user(directory, Store(config.mail_root, config.index_root,
                                          fsync=config.store.fsync))


def bind_listeners(config: Config, roles: list[str], explicit: bool):
    from pymail.server.listen import ListenError, bind
    from pymail.server.roles import RoleUnavailable, factory_maker

    bound = []
    for listener in config.listeners_for(roles):
        try:
            factory_maker(listener.role)
        except RoleUnavailable as exc:
            if explicit:
                raise StartupError(str(exc)) from None
            print(f"pymail: skipping {listener.role} on port {listener.port}: {exc}")
            continue
        try:
            bound.append(bind(listener))
        except ListenError as exc:
            raise StartupError(str(exc)) from None
    if not bound:
        raise StartupError("no listeners for the chosen roles: add [[listeners]] to the configuration")
    return bound


def report(config: Config, bound, workers: int) -> None:
    print(f"pymail: serving from {config.source or 'built-in defaults'} with {workers} "
          f"worker(s); data in {config.var_dir}")
    for bl in bound:
        print(f"  {bl.describe()}")
    run_dir = config.var_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "listeners.json").write_text(json.dumps([bl.as_dict() for bl in bound], indent=1))
    sys.stdout.flush()


def serve_here(config: Config, roles: list[str], bound, worker: bool = False) -> None:
    # Until the reactor takes over signals, a stop request just ends the process: nothing has
    # been accepted yet (connections wait in the listen backlog).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from pymail import runtime

    runtime.install_reactor()
    from pymail.server.serve import Server, build_context

    extra = {"ready_message": f"pymail: worker {os.getpid()} serving"} if worker else {}
    server = Server(build_context(config, roles), bound, grace=config.server.shutdown_grace, **extra)
    server.run()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.demo:
            from pymail.server.demo import prepare

            config_path = prepare(Path(args.var_dir))
        else:
            config_path = Path(args.config) if args.config else default_config_path()
        config = load_config(config_path)
        roles = choose_roles(args, config)
        if args.workers is not None:
            if args.workers < 0:
                raise ConfigError("--workers: must be 0 (one per core) or more")
            config.server.workers = args.workers
        if args.check:
            print(f"pymail: {config_path}: configuration is valid")
            return 0
        setup_logging(config)
        if args.worker_fds:
            from pymail.server.supervisor import adopt_inherited

            serve_here(config, roles, adopt_inherited(config, args.worker_fds), worker=True)
            return 0
        prepare_state(config, args.demo)
        bound = bind_listeners(config, roles, explicit=bool(args.roles))
        workers = config.server.workers or os.cpu_count() or 1
        report(config, bound, workers)
        if workers == 1:
            serve_here(config, roles, bound)
        else:
            from pymail.server.supervisor import Supervisor

            print(f"pymail: ready, {workers} workers (Ctrl-C or SIGTERM stops them cleanly)",
                  flush=True)
            return Supervisor(config_path, roles, bound, workers,
                              grace=config.server.shutdown_grace).run()
        return 0
    except ConfigError as exc:
        print(f"pymail-server: configuration error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"pymail-server: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        # Directory and store failures at start-up (database unreachable, mail root not
        # writable) are operator problems: one clear line, not a traceback.
        from pymail.directory.errors import DirectoryError
        from pymail.store.errors import StoreError

        if isinstance(exc, (DirectoryError, StoreError, OSError)):
            print(f"pymail-server: cannot start: {exc}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
