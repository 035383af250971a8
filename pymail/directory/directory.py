"""``Directory``: domains, users, aliases, quotas and per-user settings in SQL.

All methods are blocking (SQL, bcrypt): protocol code calls them through
``pymail.runtime.run_blocking``. Each method runs in its own short transaction, so one
``Directory`` is shared by every thread of a process, and several processes (or hosts, with
PostgreSQL) share one database.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

import bcrypt
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pymail.directory import passwords, schema
from pymail.directory.addresses import (normalise_address, normalise_alias_source, normalise_domain,
                                        split_address)
from pymail.directory.db import make_engine, normalise_url
from pymail.directory.errors import DirectoryError
from pymail.directory.models import Alias, Domain, User, UserSetting
from pymail.directory.records import AliasRecord, Resolution, UserRecord
from pymail.directory.resolve import resolve

log = logging.getLogger("pymail.directory")

KEEP = object()  # "leave this value as it is" for set_quota
MAX_SETTING_KEY = 100


class Directory:
    def __init__(self, url: str | os.PathLike, bcrypt_rounds: int = passwords.DEFAULT_ROUNDS) -> None:
        if not 4 <= bcrypt_rounds <= 31:
            raise DirectoryError(f"bcrypt rounds must be between 4 and 31, not {bcrypt_rounds}")
        self.url = normalise_url(url)
        self.bcrypt_rounds = bcrypt_rounds
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._dummy_hash: bytes | None = None
        self._dummy_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Directory({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- schema ---------------------------------------------------------------------------------

    def create_schema(self) -> None:
        """Run the Alembic migrations up to head (idempotent)."""
        from alembic.util import CommandError

        try:
            schema.upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise DirectoryError(f"cannot migrate the directory database: {_reason(exc)}") from None
        except CommandError as exc:  # e.g. a database migrated by a newer pymail
            raise DirectoryError(f"cannot migrate the directory database: {exc}") from None

    def schema_revision(self) -> str | None:
        try:
            return schema.current_revision(self.engine)
        except SQLAlchemyError as exc:
            raise DirectoryError(f"cannot read the directory database: {_reason(exc)}") from None

    def close(self) -> None:
        self.engine.dispose()

    def _session(self) -> Session:
        return self._sessions()

    def _run(self, fn, *args):
        """Run ``fn(session, *args)`` in one transaction; database errors become DirectoryError."""
        try:
            with self._session() as session, session.begin():
                return fn(session, *args)
        except DirectoryError:
            raise
        except IntegrityError as exc:
            raise DirectoryError(f"conflicting change: {_reason(exc)}") from None
        except SQLAlchemyError as exc:
            raise DirectoryError(f"directory database error: {_reason(exc)}") from None

    # -- domains --------------------------------------------------------------------------------

    def add_domain(self, name: str) -> str:
        domain = normalise_domain(name)

        def op(s: Session) -> str:
            if s.scalar(select(Domain.id).where(Domain.name == domain)) is not None:
                raise DirectoryError(f"domain {domain} already exists")
            s.add(Domain(name=domain))
            return domain

        return self._run(op)

    def list_domains(self) -> list[str]:
        return self._run(lambda s: list(s.scalars(select(Domain.name).order_by(Domain.name))))

    def is_local_domain(self, domain: str) -> bool:
        try:
            name = normalise_domain(domain)
        except DirectoryError:
            return False
        return self._run(lambda s: s.scalar(select(Domain.id).where(Domain.name == name)) is not None)

    def delete_domain(self, name: str, force: bool = False) -> None:
        """Delete a domain; with users or aliases in it only when ``force`` (they go too)."""
        domain = normalise_domain(name)

        def op(s: Session) -> None:
            row = _domain(s, domain)
            users = s.scalar(select(func.count(User.id)).where(User.domain_id == row.id))
            aliases = s.scalar(select(func.count(Alias.id)).where(Alias.domain_id == row.id))
            if (users or aliases) and not force:
                raise DirectoryError(f"domain {domain} still has {users} user(s) and {aliases} alias "
                                     "row(s); delete them first or force it")
            user_ids = select(User.id).where(User.domain_id == row.id)
            s.execute(delete(UserSetting).where(UserSetting.user_id.in_(user_ids)))
            s.execute(delete(User).where(User.domain_id == row.id))
            s.execute(delete(Alias).where(Alias.domain_id == row.id))
            s.delete(row)

        self._run(op)

    # -- users ----------------------------------------------------------------------------------

    def add_user(self, address: str, password: str | bytes, quota_bytes: int | None = None,
                 quota_messages: int | None = None, enabled: bool = True) -> UserRecord:
        try:
            hashed = passwords.hash_password(password, self.bcrypt_rounds)
        except ValueError as exc:
            raise DirectoryError(str(exc)) from None
        return self.import_user(address, hashed, quota_bytes, quota_messages, enabled=enabled)

    def import_user(self, address: str, password_hash: str, quota_bytes: int | None = None,
                    quota_messages: int | None = None, enabled: bool = True,
                    replace: bool = False) -> UserRecord:
        """Add a user with an existing hash (a Dovecot passwd-file line), kept as it is."""
        return self.import_users([(address, password_hash, quota_bytes, quota_messages, enabled)], replace)[0]

    def import_users(self, entries, replace: bool = False) -> list[UserRecord]:
        """Add many ``(address, password_hash, quota_bytes, quota_messages, enabled)`` in one
        transaction: all of them or, on any error, none."""
        checked = []
        for address, password_hash, quota_bytes, quota_messages, enabled in entries:
            local, domain = split_address(address)
            canonical = f"{local}@{domain}"
            if not passwords.is_supported(password_hash):
                raise DirectoryError(f"{canonical}: unsupported password hash scheme "
                                     "(pymail verifies {BLF-CRYPT}/$2y$ and {SHA512-CRYPT}/$6$)")
            _check_quota("quota_bytes", quota_bytes)
            _check_quota("quota_messages", quota_messages)
            checked.append((canonical, domain, password_hash, quota_bytes, quota_messages, bool(enabled)))

        def op(s: Session) -> list[UserRecord]:
            out = []
            domains: dict[str, Domain] = {}
            for canonical, domain, password_hash, quota_bytes, quota_messages, enabled in checked:
                if domain not in domains:
                    domains[domain] = _domain(s, domain)
                user = s.scalar(select(User).where(User.address == canonical))
                if user is not None and not replace:
                    raise DirectoryError(f"user {canonical} already exists")
                if user is None:
                    user = User(domain_id=domains[domain].id, address=canonical)
                    s.add(user)
                user.password_hash = password_hash
                user.quota_bytes = quota_bytes
                user.quota_messages = quota_messages
                user.enabled = enabled
                s.flush()
                out.append(_record(user, domain))
            return out

        return self._run(op)

    def set_password(self, address: str, password: str | bytes) -> None:
        try:
            hashed = passwords.hash_password(password, self.bcrypt_rounds)
        except ValueError as exc:
            raise DirectoryError(str(exc)) from None
        canonical = normalise_address(address)
        self._run(lambda s: setattr(_user(s, canonical), "password_hash", hashed))

    def set_enabled(self, address: str, enabled: bool) -> None:
        canonical = normalise_address(address)
        self._run(lambda s: setattr(_user(s, canonical), "enabled", bool(enabled)))

    def set_quota(self, address: str, quota_bytes=KEEP, quota_messages=KEEP) -> UserRecord:
        """Change quota limits; None removes a limit, ``KEEP`` (the default) leaves it alone."""
        canonical = normalise_address(address)
        if quota_bytes is not KEEP:
            _check_quota("quota_bytes", quota_bytes)
        if quota_messages is not KEEP:
            _check_quota("quota_messages", quota_messages)

        def op(s: Session) -> UserRecord:
            user = _user(s, canonical)
            if quota_bytes is not KEEP:
                user.quota_bytes = quota_bytes
            if quota_messages is not KEEP:
                user.quota_messages = quota_messages
            return _record(user, canonical.rpartition("@")[2])

        return self._run(op)

    def delete_user(self, address: str) -> None:
        """Delete a user and its settings. Aliases naming it stay (and lead nowhere)."""
        canonical = normalise_address(address)

        def op(s: Session) -> None:
            user = _user(s, canonical)
            s.execute(delete(UserSetting).where(UserSetting.user_id == user.id))
            s.delete(user)

        self._run(op)

    def get_user(self, address: str) -> UserRecord | None:
        try:
            canonical = normalise_address(address)
        except DirectoryError:
            return None

        def op(s: Session) -> UserRecord | None:
            user = s.scalar(select(User).where(User.address == canonical))
            return _record(user, canonical.rpartition("@")[2]) if user else None

        return self._run(op)

    def list_users(self, domain: str | None = None) -> list[UserRecord]:
        name = normalise_domain(domain) if domain is not None else None

        def op(s: Session) -> list[UserRecord]:
            query = select(User, Domain.name).join(Domain, User.domain_id == Domain.id)
            if name is not None:
                _domain(s, name)
                query = query.where(Domain.name == name)
            return [_record(u, d) for u, d in s.execute(query.order_by(User.address))]

        return self._run(op)

    # -- aliases --------------------------------------------------------------------------------

    def add_alias(self, source: str, destinations: str | Iterable[str]) -> AliasRecord:
        """Add destinations to an alias (creating it); ``@domain`` makes a catch-all."""
        src = normalise_alias_source(source)
        if isinstance(destinations, str):
            destinations = [destinations]
        dests = list(dict.fromkeys(normalise_address(d) for d in destinations))
        if not dests:
            raise DirectoryError(f"alias {src}: no destination given")
        domain = src.rpartition("@")[2]

        def op(s: Session) -> AliasRecord:
            dom = _domain(s, domain)
            have = set(s.scalars(select(Alias.destination).where(Alias.source == src)))
            new = [d for d in dests if d not in have]
            if not new:
                raise DirectoryError(f"alias {src} -> {', '.join(dests)} already exists")
            for d in new:
                s.add(Alias(domain_id=dom.id, source=src, destination=d))
            s.flush()
            return AliasRecord(src, tuple(s.scalars(select(Alias.destination).where(Alias.source == src)
                                                    .order_by(Alias.id))))

        return self._run(op)

    def delete_alias(self, source: str, destinations: str | Iterable[str] | None = None) -> int:
        """Delete an alias, or only some of its destinations; returns the rows removed."""
        src = normalise_alias_source(source)
        if isinstance(destinations, str):
            destinations = [destinations]
        dests = [normalise_address(d) for d in destinations] if destinations else None

        def op(s: Session) -> int:
            query = delete(Alias).where(Alias.source == src)
            if dests:
                query = query.where(Alias.destination.in_(dests))
            removed = s.execute(query).rowcount
            if not removed:
                what = f"{src} -> {', '.join(dests)}" if dests else src
                raise DirectoryError(f"no alias {what}")
            return removed

        return self._run(op)

    def list_aliases(self, domain: str | None = None) -> list[AliasRecord]:
        name = normalise_domain(domain) if domain is not None else None

        def op(s: Session) -> list[AliasRecord]:
            query = select(Alias.source, Alias.destination)
            if name is not None:
                query = query.where(Alias.domain_id == _domain(s, name).id)
            grouped: dict[str, list[str]] = {}
            for src, dst in s.execute(query.order_by(Alias.source, Alias.id)):
                grouped.setdefault(src, []).append(dst)
            return [AliasRecord(src, tuple(d)) for src, d in grouped.items()]

        return self._run(op)

    def resolve_recipient(self, address: str) -> Resolution | None:
        """Where mail for ``address`` goes; None for an unknown recipient (see ``resolve``)."""
        return self._run(resolve, address)

    # -- per-user settings ----------------------------------------------------------------------

    def get_settings(self, address: str) -> dict[str, str]:
        canonical = normalise_address(address)

        def op(s: Session) -> dict[str, str]:
            user = _user(s, canonical)
            rows = s.execute(select(UserSetting.key, UserSetting.value)
                             .where(UserSetting.user_id == user.id).order_by(UserSetting.key))
            return dict(rows.all())

        return self._run(op)

    def set_setting(self, address: str, key: str, value: str | None) -> None:
        """Set one per-user setting (a None value deletes it)."""
        canonical = normalise_address(address)
        if not key or len(key) > MAX_SETTING_KEY or not key.isprintable() or " " in key:
            raise DirectoryError(f"bad setting name {key!r}")

        def op(s: Session) -> None:
            user = _user(s, canonical)
            row = s.get(UserSetting, (user.id, key))
            if value is None:
                if row is not None:
                    s.delete(row)
            elif row is None:
                s.add(UserSetting(user_id=user.id, key=key, value=str(value)))
            else:
                row.value = str(value)

        self._run(op)

    # -- passwords ------------------------------------------------------------------------------

    def verify_password(self, address: str | bytes, password: str | bytes) -> str | None:
        """The canonical address when the password is right and the user enabled, else None.

        Every call runs exactly one bcrypt (against a dummy hash when there is no usable user
        hash), whether the user is unknown, disabled, the password wrong or over 72 bytes, so a
        failure looks the same from outside whatever the reason.
        """
        secret = passwords.to_bytes(password)
        too_long = len(secret) > passwords.MAX_PASSWORD_BYTES
        canonical = None
        try:
            text = address.decode("utf-8") if isinstance(address, bytes) else address
            canonical = normalise_address(text)
        except (DirectoryError, UnicodeDecodeError):
            pass
        row = None
        if canonical is not None:
            row = self._run(lambda s: s.execute(select(User.password_hash, User.enabled)
                                                .where(User.address == canonical)).first())
        if row is None or too_long or not secret:
            passwords.bcrypt_checkpw(secret[: passwords.MAX_PASSWORD_BYTES], self._dummy())
            return None
        stored, enabled = row
        ok = passwords.check_password(secret, stored)
        if passwords.is_legacy(stored):
            # Level the work with bcrypt users; the hash is upgraded after a good login.
            passwords.bcrypt_checkpw(secret, self._dummy())
        if not (ok and enabled):
            return None
        if self._needs_rehash(stored):
            self._rehash(canonical, stored, secret)
        return canonical

    def prepare(self) -> None:
        """Make the dummy bcrypt hash now (a server calls this at start), so that even the first
        failed login costs what every other one costs."""
        self._dummy()

    def _dummy(self) -> bytes:
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = bcrypt.hashpw(os.urandom(16).hex().encode(), bcrypt.gensalt(self.bcrypt_rounds))
            return self._dummy_hash

    def _needs_rehash(self, stored: str) -> bool:
        scheme, value = passwords.split_scheme(stored)
        if scheme != "BLF-CRYPT":
            return True
        return value[4:6] != f"{self.bcrypt_rounds:02d}"

    def _rehash(self, canonical: str, old: str, secret: bytes) -> None:
        new = passwords.hash_password(secret, self.bcrypt_rounds)

        def op(s: Session) -> None:
            user = s.scalar(select(User).where(User.address == canonical))
            if user is not None and user.password_hash == old:
                user.password_hash = new

        try:
            self._run(op)
        except DirectoryError as exc:
            log.warning("could not upgrade the password hash of %s: %s", canonical, exc)


def _domain(s: Session, name: str) -> Domain:
    row = s.scalar(select(Domain).where(Domain.name == name))
    if row is None:
        raise DirectoryError(f"no such domain {name}")
    return row


def _user(s: Session, address: str) -> User:
    row = s.scalar(select(User).where(User.address == address))
    if row is None:
        raise DirectoryError(f"no such user {address}")
    return row


def _record(user: User, domain: str) -> UserRecord:
    return UserRecord(address=user.address, domain=domain, enabled=bool(user.enabled),
                      quota_bytes=user.quota_bytes, quota_messages=user.quota_messages,
                      password_scheme=passwords.split_scheme(user.password_hash)[0],
                      created_at=user.created_at)


def _check_quota(name: str, value) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DirectoryError(f"{name} must be a whole number of at least 1, or None for no limit")


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
