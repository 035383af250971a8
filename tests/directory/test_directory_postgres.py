"""Migrations and a user round trip against a throwaway PostgreSQL cluster made by the test.

Needs Debian's ``postgresql`` package (initdb/pg_ctl under /usr/lib/postgresql/*/bin); skipped
only when those binaries are absent. The cluster listens on a unix socket in its own temporary
folder (no TCP port), with fsync off, and is stopped and removed at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pymail.directory import Directory, schema


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return found[0] if found else shutil.which(name)


INITDB, PG_CTL = _pg_bin("initdb"), _pg_bin("pg_ctl")
pytestmark = pytest.mark.skipif(not (INITDB and PG_CTL), reason="PostgreSQL server binaries are not installed")


def _as_cluster_owner():
    """PostgreSQL refuses to run as root: run it as the 'postgres' (or 'nobody') user then."""
    if os.geteuid() != 0:
        return None, None
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    pytest.fail("running as root and neither a 'postgres' nor a 'nobody' user exists")


@pytest.fixture(scope="module")
def pg_url():
    uid, gid = _as_cluster_owner()
    base = Path(tempfile.mkdtemp(prefix="pymail-pg-", dir="/tmp"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if uid is not None:
        for p in (base, sock):
            os.chown(p, uid, gid)

    def run(*cmd):
        kwargs = {"user": uid, "group": gid, "extra_groups": []} if uid is not None else {}
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=base, **kwargs)

    try:
        done = run(INITDB, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        assert done.returncode == 0, done.stderr
        opts = f"-k {sock} -c listen_addresses='' -c fsync=off -p 5432"
        done = run(PG_CTL, "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "-t", "60", "start")
        assert done.returncode == 0, done.stderr + (base / "log").read_text(errors="replace")
        yield f"postgresql://postgres@/postgres?host={sock}&port=5432"
    finally:
        if (data / "postmaster.pid").exists():
            run(PG_CTL, "-D", str(data), "-m", "immediate", "-w", "-t", "60", "stop")
        shutil.rmtree(base, ignore_errors=True)


def test_migrations_and_user_round_trip_on_postgresql(pg_url):
    d = Directory(pg_url, bcrypt_rounds=4)
    assert d.engine.dialect.name == "postgresql" and d.engine.dialect.driver == "psycopg"
    d.create_schema()
    d.create_schema()
    assert d.schema_revision() == schema.head_revision()
    d.add_domain("Example.com")
    d.add_user("Bob@example.com", "right", quota_bytes=5 * 2**40)
    d.import_user("old@example.com", "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")
    d.add_alias("sales@example.com", ["bob@example.com", "out@partner.net"])
    d.set_setting("bob@example.com", "spam.action", "junk")
    assert d.verify_password("bob@example.com", "right") == "bob@example.com"
    assert d.verify_password("bob@example.com", "wrong") is None
    assert d.verify_password("old@example.com", "Hello world!") == "old@example.com"
    assert d.get_user("bob@example.com").quota_bytes == 5 * 2**40
    res = d.resolve_recipient("sales+x@EXAMPLE.com")
    assert (res.local_users, res.external, res.detail) == (["bob@example.com"], ["out@partner.net"], "x")
    assert d.get_settings("bob@example.com") == {"spam.action": "junk"}
    d.delete_domain("example.com", force=True)
    assert d.list_users() == [] and d.list_aliases() == []
    schema.downgrade(d.engine, "base")
    assert d.schema_revision() is None
    d.close()
