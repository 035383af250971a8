"""SQLAlchemy 2 models of the directory. The schema itself is made only by the Alembic
migrations in ``migrations/versions/``; these classes must describe the same tables.

- ``domains``: the mail domains this installation is the final destination for.
- ``users``: one row per mailbox owner, named by full address (``local@domain``, lower-cased).
  ``password_hash`` carries its scheme prefix (``{BLF-CRYPT}``, ``{SHA512-CRYPT}``).
  ``quota_bytes`` / ``quota_messages``: NULL means no limit.
- ``aliases``: one row per (source, destination) pair, so an alias fans out to many
  destinations. ``source`` is a full address or ``@domain`` (catch-all); ``destination`` is any
  address, local or outside (forwarding).
- ``user_settings``: free key/value pairs per user for other packages (e.g. the filters'
  ``spam.threshold``, ``spam.action``). Keys are namespaced with a dot by the package that owns
  them; values are text (the owner parses them).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Integer, String, Text,
                        UniqueConstraint, func, true)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Domain(Base):
    __tablename__ = "domains"
    __table_args__ = (UniqueConstraint("name", name="uq_domains_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    users: Mapped[list["User"]] = relationship(back_populates="domain", passive_deletes=True)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("address", name="uq_users_address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE", name="fk_users_domain_id"),
                                           nullable=False, index=True)
    address: Mapped[str] = mapped_column(String(320), nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default=true())
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quota_messages: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    domain: Mapped[Domain] = relationship(back_populates="users")


class Alias(Base):
    __tablename__ = "aliases"
    __table_args__ = (UniqueConstraint("source", "destination", name="uq_aliases_source_destination"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE", name="fk_aliases_domain_id"),
                                           nullable=False, index=True)
    source: Mapped[str] = mapped_column(String(320), nullable=False, index=True)
    destination: Mapped[str] = mapped_column(String(320), nullable=False)


class UserSetting(Base):
    __tablename__ = "user_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE", name="fk_user_settings_user_id"),
                                         primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)
