"""Engines for the directory database: SQLite (WAL) by default, PostgreSQL by URL.

SQLite: every connection gets ``journal_mode=WAL`` (readers never wait for the writer),
``busy_timeout`` (a writer waits for another process's write instead of failing at once) and
``foreign_keys=ON`` (so deleting a domain deletes its users and aliases). The parent folder of
the database file is created when missing.

PostgreSQL: ``postgresql://...`` URLs use psycopg 3 (``postgresql+psycopg``), installed with
pymail's ``postgres`` extra.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from pymail.directory.errors import DirectoryError

SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalise_url(url: str | os.PathLike) -> str:
    """Accept a plain file path as an SQLite database; map ``postgresql://`` to psycopg 3."""
    text = os.fspath(url)
    if "://" not in text:
        return f"sqlite:///{Path(text).resolve()}"
    for plain in ("postgresql://", "postgres://"):
        if text.startswith(plain):
            return "postgresql+psycopg://" + text[len(plain):]
    return text


def make_engine(url: str | os.PathLike) -> Engine:
    text = normalise_url(url)
    try:
        parsed = make_url(text)
    except ArgumentError:
        raise DirectoryError(f"bad directory URL {text!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        try:
            return create_engine(parsed, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            raise DirectoryError(f"PostgreSQL needs the psycopg package ({exc.name} is missing): "
                                 "pip install 'pymail[postgres]'") from None
    raise DirectoryError(f"unsupported directory database {backend!r} (use sqlite or postgresql)")


def _sqlite_engine(parsed) -> Engine:
    database = parsed.database or ""
    in_memory = database in ("", ":memory:")
    if in_memory:
        engine = create_engine(parsed, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        if not in_memory:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine
