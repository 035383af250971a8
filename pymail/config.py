"""pymail's one configuration file: TOML, validated at start into typed dataclasses.

An unknown key or a bad value raises ``ConfigError`` naming the key and why, so the server stops
with one clear line instead of failing later. Each protocol package owns the dataclass of its own
section (``pymail/<package>/settings.py``); this module only knows how to validate dataclasses.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pymail.imap.settings import ImapSettings
from pymail.pop3.settings import Pop3Settings
from pymail.smtp.settings import SmtpSettings
from pymail.queue.settings import QueueSettings
from pymail.filters.settings import FilterSettings


class ConfigError(Exception):
    """A configuration problem; ``str()`` names the key and the reason."""


ROLES = ("mx", "submission", "lmtp", "imap", "pop3", "managesieve")

# Production listeners of each role (RFC 6409 submission, RFC 8314 implicit TLS ports).
DEFAULT_PORTS: dict[str, list[tuple[int, str]]] = {
    "mx": [(25, "starttls")],
    "submission": [(587, "starttls"), (465, "implicit")],
    "lmtp": [(24, "none")],
    "imap": [(143, "starttls"), (993, "implicit")],
    "pop3": [(110, "starttls"), (995, "implicit")],
    "managesieve": [(4190, "starttls")],
}


@dataclass
class ServerSettings:
    hostname: str = "localhost"
    roles: list[str] = field(default_factory=lambda: list(ROLES))
    var_dir: str = "/var/lib/pymail"
    workers: int = 0  # 0: one worker process per core
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    mail_log: str = ""  # empty: mail log lines go to stderr with the rest
    shutdown_grace: float = 30.0  # seconds open sessions get to finish on SIGTERM


@dataclass
class DirectorySettings:
    url: str = ""  # empty: sqlite:///<var_dir>/directory.sqlite


@dataclass
class StoreSettings:
    mail_root: str = ""  # empty: <var_dir>/mail
    index_root: str = ""  # empty: index files live inside each maildir folder
    fsync: bool = True


@dataclass
class TlsSettings:
    cert: str = ""  # empty: <var_dir>/tls/cert.pem (self-signed, made at first start)
    key: str = ""
    self_signed: bool = True  # make a self-signed pair when cert/key are missing


@dataclass
class AuthSettings:
    failure_delay: float = 2.0  # seconds added to every failed login
    max_failures_per_ip: int = 10
    max_failures_per_user: int = 10
    failure_window: float = 300.0  # seconds
    bcrypt_rounds: int = 12  # cost of new password hashes (4-31)

    def validate(self) -> None:
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ValueError(f"bcrypt_rounds: {self.bcrypt_rounds} is not between 4 and 31")


@dataclass
class ListenerConfig:
    role: Literal["mx", "submission", "lmtp", "imap", "pop3", "managesieve"]
    port: int
    address: str = "127.0.0.1"
    tls: Literal["none", "starttls", "implicit"] = "none"
    allow_plaintext_auth: bool = False  # allow AUTH/LOGIN without TLS (e.g. loopback)
    proxy_protocol: bool = False  # expect a HAProxy PROXY v1/v2 header first
    unix_socket: str = ""  # lmtp: listen on this unix socket instead of address:port

    def describe(self) -> str:
        where = self.unix_socket or f"{self.address}:{self.port}"
        extra = [self.tls] + (["plaintext-auth"] if self.allow_plaintext_auth else [])
        extra += ["proxy"] if self.proxy_protocol else []
        return f"{self.role:<12} {where:<22} {' '.join(extra)}"


@dataclass
class Config:
    server: ServerSettings = field(default_factory=ServerSettings)
    directory: DirectorySettings = field(default_factory=DirectorySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    tls: TlsSettings = field(default_factory=TlsSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    listeners: list[ListenerConfig] = field(default_factory=list)
    imap: ImapSettings = field(default_factory=ImapSettings)
    pop3: Pop3Settings = field(default_factory=Pop3Settings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    filters: FilterSettings = field(default_factory=FilterSettings)
    source: str = ""  # the file it came from (not a TOML key)

    # Derived paths: the defaults hang off var_dir so one setting moves everything.
    @property
    def var_dir(self) -> Path:
        return Path(self.server.var_dir)

    @property
    def directory_url(self) -> str:
        return self.directory.url or f"sqlite:///{self.var_dir / 'directory.sqlite'}"

    @property
    def mail_root(self) -> Path:
        return Path(self.store.mail_root) if self.store.mail_root else self.var_dir / "mail"

    @property
    def index_root(self) -> Path | None:
        return Path(self.store.index_root) if self.store.index_root else None

    @property
    def tls_cert(self) -> Path:
        return Path(self.tls.cert) if self.tls.cert else self.var_dir / "tls" / "cert.pem"

    @property
    def tls_key(self) -> Path:
        return Path(self.tls.key) if self.tls.key else self.var_dir / "tls" / "key.pem"

    def listeners_for(self, roles: list[str]) -> list[ListenerConfig]:
        return [lst for lst in self.listeners if lst.role in roles]


# ---------------------------------------------------------------------------------------------
# Validation of plain TOML data into dataclasses


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for alt in args:
            if alt is type(None):
                if value is None:
                    return None
                continue
            try:
                return _convert(value, alt, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__}")
        return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {type(value).__name__}")
        return {k: _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported setting type {_type_name(tp)}")


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a TOML table; unknown keys and bad values raise ConfigError."""
    where = prefix or "top level"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        name = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(f"{name}: unknown setting (known here: {', '.join(sorted(fields))})")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: required setting is missing")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        try:
            check()
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return obj


def _check(config: Config) -> None:
    for i, role in enumerate(config.server.roles):
        if role not in ROLES:
            raise ConfigError(f"server.roles[{i}]: unknown role {role!r} (roles: {', '.join(ROLES)})")
    if config.server.workers < 0:
        raise ConfigError("server.workers: must be 0 (one per core) or more")
    seen: dict[tuple[str, int], int] = {}
    for i, lst in enumerate(config.listeners):
        key = f"listeners[{i}]"
        if lst.unix_socket:
            if lst.role != "lmtp":
                raise ConfigError(f"{key}.unix_socket: only the lmtp role listens on a unix socket")
            continue
        if not 0 <= lst.port <= 65535:
            raise ConfigError(f"{key}.port: {lst.port} is not a TCP port (0-65535)")
        if lst.port and (lst.address, lst.port) in seen:
            other = seen[(lst.address, lst.port)]
            raise ConfigError(f"{key}.port: {lst.address}:{lst.port} is already used by listeners[{other}]")
        seen[(lst.address, lst.port)] = i
        if lst.role == "lmtp" and lst.tls == "implicit":
            raise ConfigError(f"{key}.tls: LMTP has no implicit-TLS port; use 'none' or 'starttls'")


def parse_config(data: dict[str, Any], source: str = "") -> Config:
    config = from_dict(Config, data)
    config.source = source
    _check(config)
    return config


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a TOML file; raises ConfigError with the file and key on any problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        config = parse_config(data, str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    # Relative paths in a config file are relative to the file's folder.
    base = path.resolve().parent
    for obj, attr in ((config.server, "var_dir"), (config.store, "mail_root"),
                      (config.store, "index_root"), (config.tls, "cert"), (config.tls, "key")):
        value = getattr(obj, attr)
        if value and not os.path.isabs(value):
            setattr(obj, attr, str(base / value))
    return config


def default_config_path() -> Path:
    """$PYMAIL_CONFIG, else ./conf/pymail.toml if present, else /etc/pymail/pymail.toml."""
    env = os.environ.get("PYMAIL_CONFIG")
    if env:
        return Path(env)
    local = Path("conf/pymail.toml")
    if local.exists():
        return local
    return Path("/etc/pymail/pymail.toml")
