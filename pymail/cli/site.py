"""Where the CLI finds the directory and the mail store: the one place that reads the config.

The config file is ``--config PATH``, else ``$PYMAIL_CONFIG``, else ``./conf/pymail.toml`` if it
exists, else ``/etc/pymail/pymail.toml`` (``pymail.config.default_config_path``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pymail.cli.errors import CliError


@dataclass
class Site:
    config_path: Path
    directory_url: str
    mail_root: Path
    index_root: Path | None
    fsync: bool
    bcrypt_rounds: int = 12

    def directory(self):
        from pymail.directory import Directory

        directory = Directory(self.directory_url, bcrypt_rounds=self.bcrypt_rounds)
        directory.create_schema()
        return directory

    def store(self):
        from pymail.store import Store

        return Store(self.mail_root, self.index_root, fsync=self.fsync)


def load_site(config_path: str | None) -> Site:
    from pymail.config import ConfigError, default_config_path, load_config

    path = Path(config_path) if config_path else default_config_path()
    try:
        config = load_config(path)
    except ConfigError as exc:
        raise CliError(f"config: {exc}") from None
    return Site(config_path=path, directory_url=config.directory_url, mail_root=config.mail_root,
                index_root=config.index_root, fsync=config.store.fsync,
                bcrypt_rounds=config.auth.bcrypt_rounds)
