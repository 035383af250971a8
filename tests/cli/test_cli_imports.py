"""``pymail import-passwd``, ``import-mbox`` and ``index rebuild`` in a subprocess, checked
against the directory and the store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pymail.cli.passwdfile import PasswdFileError, parse_passwd_file
from pymail.directory import Directory
from pymail.store import Store

ROOT = Path(__file__).resolve().parents[2]
BCRYPT_2Y = "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"  # "U*U"
SHA512 = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"  # "Hello world!"


@pytest.fixture
def cli(tmp_path):
    config = tmp_path / "pymail.toml"
    config.write_text(f'[server]\nvar_dir = "{tmp_path / "var"}"\n')

    def pymail(*args, input=None, expect=0):
        env = {k: v for k, v in os.environ.items() if k != "PYMAIL_CONFIG"}
        env["PYTHONPATH"] = str(ROOT)
        done = subprocess.run([sys.executable, "-m", "pymail.cli.main", "--config", str(config), *args],
                              input=input, stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        if expect:
            assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("pymail: error: ")
        return done

    pymail.var = tmp_path / "var"
    pymail.tmp = tmp_path
    return pymail


def directory(cli) -> Directory:
    return Directory(cli.var / "directory.sqlite")


PASSWD = f"""\
# users moved from Dovecot
bob@example.com:{{BLF-CRYPT}}{BCRYPT_2Y}:1000:1000::/home/bob::userdb_quota_rule=*:storage=1G userdb_quota_rule2=*:messages=5000
ann@example.com:{{SHA512-CRYPT}}{SHA512}:1000:1000::/home/ann
carl@example.org:{BCRYPT_2Y}::::::nologin
dora:{SHA512}
"""


def test_import_passwd_keeps_hashes_and_reads_quota_rules(cli):
    (cli.tmp / "passwd").write_text(PASSWD)
    cli("domain", "add", "example.com")
    err = cli("import-passwd", "passwd", expect=1).stderr
    assert "dora" in err and "--domain" in err and "nothing imported" in err
    err = cli("import-passwd", "passwd", "--domain", "example.com", expect=1).stderr
    assert "unknown domain(s) example.org" in err and "--create-domains" in err
    migrated = cli.var / "mail" / "example.com" / "bob" / "Maildir"  # copied over from Dovecot
    for sub in ("cur", "new", "tmp"):
        (migrated / sub).mkdir(parents=True)
    out = cli("import-passwd", "passwd", "--domain", "example.com", "--create-domains").stdout
    assert out == "added domain example.org\nimported 4 user(s) from passwd\ncreated 3 new maildir(s)\n"
    assert sorted(p.name for p in migrated.iterdir()) == ["cur", "new", "tmp"]  # untouched
    assert (cli.var / "mail" / "example.org" / "carl" / "Maildir" / "cur").is_dir()
    d = directory(cli)
    assert d.verify_password("bob@example.com", "U*U") == "bob@example.com"
    assert d.verify_password("dora@example.com", "Hello world!") == "dora@example.com"
    assert d.verify_password("carl@example.org", "U*U") is None  # nologin
    assert d.get_user("carl@example.org").enabled is False
    bob = d.get_user("bob@example.com")
    assert (bob.quota_bytes, bob.quota_messages) == (1024**3, 5000)
    assert d.get_user("ann@example.com").password_scheme == "SHA512-CRYPT"
    # again: everyone exists
    err = cli("import-passwd", "passwd", "--domain", "example.com", expect=1).stderr
    assert "already exist" in err and "--replace" in err
    assert cli("import-passwd", "passwd", "--domain", "example.com", "--replace").stdout == \
        "imported 4 user(s) from passwd\n"  # maildirs exist now: left alone


def test_import_passwd_refuses_malformed_files_whole(cli):
    cli("domain", "add", "example.com")
    (cli.tmp / "bad").write_text(textwrap.dedent(f"""\
        ok@example.com:{SHA512}
        no-colon-here
        plain@example.com:{{PLAIN}}secret
        md5@example.com:$1$abc$xyz
        bad address@example.com:{SHA512}
        """))
    err = cli("import-passwd", "bad", expect=1).stderr
    for fragment in ("line 2: expected user:password", "line 3: plain@example.com: unsupported password scheme PLAIN",
                     "line 4:", "line 5: bad address", "nothing imported"):
        assert fragment in err
    assert directory(cli).list_users() == []
    assert "cannot read missing: No such file or directory" in cli("import-passwd", "missing", expect=1).stderr
    (cli.tmp / "empty").write_text("# nothing\n\n")
    assert "no users found" in cli("import-passwd", "empty", expect=1).stderr


def test_parse_passwd_file_details():
    entries = parse_passwd_file(f"A@Example.COM:{SHA512}:::::: userdb_quota_rule=*:storage=0 quota_rule=Trash:storage=+10%\n"
                                f"b:{BCRYPT_2Y}:1:1::/h::userdb_quota_rule=*:storage=512M\n", default_domain="example.com")
    assert [(e.address, e.quota_bytes, e.enabled) for e in entries] == [
        ("a@example.com", None, True), ("b@example.com", 512 * 1024**2, True)]
    with pytest.raises(PasswdFileError, match="line 2: a@example.com already appears on line 1"):
        parse_passwd_file(f"a@example.com:{SHA512}\na@example.com:{SHA512}\n")
    with pytest.raises(PasswdFileError, match="bad quota rule"):
        parse_passwd_file(f"a@example.com:{SHA512}::::::userdb_quota_rule=*:storage=lots\n")
    with pytest.raises(PasswdFileError, match="has no password hash"):
        parse_passwd_file("a@example.com:\n")


MBOX = b"""\
From alice@example.org Wed Nov 25 10:00:00 2026
From: alice@example.org
To: bob@example.com
Subject: one
Status: RO
X-Status: AF

Hello.
>From the quoted line.

From carol@example.org Thu Nov 26 11:30:00 2026
From: carol@example.org
Subject: two

Second.
"""


def test_import_mbox_into_a_new_folder_and_rebuild_the_index(cli):
    cli("domain", "add", "example.com")
    cli("user", "add", "bob@example.com", "--password-stdin", input="pw\n")
    (cli.tmp / "old.mbox").write_bytes(MBOX)
    out = cli("import-mbox", "bob@example.com", "old.mbox", "--folder", "Archive/2026").stdout
    assert out == "imported 2 message(s) into bob@example.com Archive/2026\n"
    account = Store(cli.var / "mail").account("bob@example.com")
    with account.mailbox("Archive/2026") as box:
        recs = box.records()
        assert [r.uid for r in recs] == [1, 2]
        assert {"\\Seen", "\\Answered", "\\Flagged"} <= recs[0].flags
        assert box.internal_dates([1])[1] == 1795600800.0  # 2026-11-25 10:00:00 UTC
        first = box.open_message(1).read()
        assert b"\nFrom the quoted line.\n" in first and first.startswith(b"From: alice@example.org")
    assert "imported 2 message(s) into bob@example.com INBOX" in cli("import-mbox", "bob@example.com", "old.mbox").stdout
    out = cli("index", "rebuild", "bob@example.com", "Archive/2026").stdout
    assert out.startswith("bob@example.com Archive/2026: index rebuilt, 2 messages")
    out = cli("index", "rebuild", "bob@example.com").stdout
    assert "INBOX: index rebuilt, 2 messages" in out and "Archive/2026: index rebuilt, 2 messages" in out
    with account.mailbox("Archive/2026") as box:
        assert [r.uid for r in box.records()] == [1, 2]  # a rebuild never renumbers


def test_import_mbox_warns_of_keywords_it_cannot_keep(cli):
    cli("domain", "add", "example.com")
    cli("user", "add", "bob@example.com", "--password-stdin", input="pw\n")
    words = [f"tag{n}" for n in range(28)]
    (cli.tmp / "tags.mbox").write_text(
        "From alice@example.org Wed Nov 25 10:00:00 2026\n"
        f"Subject: tagged\nX-Keywords: {' '.join(words)}\n\nbody\n")
    done = cli("import-mbox", "bob@example.com", "tags.mbox")
    assert done.stdout == "imported 1 message(s) into bob@example.com INBOX\n"
    assert done.stderr == ("warning: keywords not kept (a maildir folder holds at most 26): "
                           "tag8 tag9\n")          # taken in sorted order: tag0 … tag7 kept


def test_import_mbox_and_index_errors(cli):
    cli("domain", "add", "example.com")
    cli("user", "add", "bob@example.com", "--password-stdin", input="pw\n")
    (cli.tmp / "notmbox").write_bytes(b"Subject: hi\n\nnot an mbox\n")
    (cli.tmp / "old.mbox").write_bytes(MBOX)
    assert "not an mbox file" in cli("import-mbox", "bob@example.com", "notmbox", expect=1).stderr
    assert "cannot read missing.mbox" in cli("import-mbox", "bob@example.com", "missing.mbox", expect=1).stderr
    assert "no such user nobody@example.com" in cli("import-mbox", "nobody@example.com", "old.mbox", expect=1).stderr
    assert "no such user" in cli("index", "rebuild", "nobody@example.com", expect=1).stderr
    assert cli("index", "rebuild", "bob@example.com", "No/Such/Folder", expect=1).stderr.startswith("pymail: error: ")
    cli("quota", "set", "bob@example.com", "--messages", "1")
    assert cli("import-mbox", "bob@example.com", "old.mbox", expect=1).stderr.startswith("pymail: error: ")
