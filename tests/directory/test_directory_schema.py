"""Schema through Alembic only: idempotent upgrade, WAL, models in step with the migrations."""

from __future__ import annotations

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pymail.directory import Directory, DirectoryError, schema
from pymail.directory.models import Base


@pytest.fixture
def directory(tmp_path):
    d = Directory(tmp_path / "dir.sqlite", bcrypt_rounds=4)
    d.create_schema()
    yield d
    d.close()


def test_create_schema_is_idempotent_and_at_head(tmp_path):
    d = Directory(f"sqlite:///{tmp_path}/a/b/dir.sqlite", bcrypt_rounds=4)
    assert d.schema_revision() is None
    d.create_schema()
    d.create_schema()
    assert d.schema_revision() == schema.head_revision() == schema.HEAD
    d.add_domain("example.com")
    d.create_schema()  # data survives a second upgrade
    assert d.list_domains() == ["example.com"]
    d.close()


def test_sqlite_uses_wal_and_foreign_keys(directory, tmp_path):
    with sqlite3.connect(tmp_path / "dir.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with directory.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000


def test_models_match_migrations(directory):
    with directory.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_downgrade_to_base_and_up_again(directory):
    directory.add_domain("example.com")
    schema.downgrade(directory.engine, "base")
    assert directory.schema_revision() is None
    with pytest.raises(DirectoryError):
        directory.list_domains()
    directory.create_schema()
    assert directory.list_domains() == []


def test_migrations_are_shipped_as_package_files():
    files = {p.name for p in schema.MIGRATIONS.iterdir()} | {p.name for p in (schema.MIGRATIONS / "versions").iterdir()}
    assert {"env.py", "0001_initial.py"} <= files


def test_bad_urls_are_directory_errors(tmp_path):
    with pytest.raises(DirectoryError, match="unsupported directory database"):
        Directory("mysql://localhost/x")
    with pytest.raises(DirectoryError, match="bad directory URL"):
        Directory("not a url://")
    with pytest.raises(DirectoryError, match="bcrypt rounds"):
        Directory(tmp_path / "x.sqlite", bcrypt_rounds=3)


def test_unmigrated_database_gives_a_clear_error(tmp_path):
    d = Directory(tmp_path / "empty.sqlite")
    with pytest.raises(DirectoryError, match="directory database error: no such table"):
        d.add_domain("example.com")


def test_concurrent_first_start_migrates_once(tmp_path):
    """Several processes creating the schema of one new database at once all succeed."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from pymail.directory import Directory; d = Directory(sys.argv[1]); "
            "d.create_schema(); print(d.schema_revision())")
    db = str(tmp_path / "race.sqlite")
    root = str(Path(__file__).resolve().parents[2])
    procs = [subprocess.Popen([sys.executable, "-c", code, db], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=root) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, results
    assert {out.strip() for out, _ in results} == {schema.HEAD}


def test_database_from_a_newer_pymail_is_a_clear_error(directory):
    with directory.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(DirectoryError, match="cannot migrate the directory database: Can't locate revision"):
        directory.create_schema()
