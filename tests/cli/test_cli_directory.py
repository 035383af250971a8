"""The ``pymail`` admin CLI in a subprocess: domains, users, aliases, quotas, config, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pymail.directory import Directory

ROOT = Path(__file__).resolve().parents[2]


def run(args, cwd=None, input=None, env=None, config=True, tmp=None):
    cmd = [sys.executable, "-m", "pymail.cli.main", *args]
    full_env = {k: v for k, v in os.environ.items() if k != "PYMAIL_CONFIG"}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    stdin = subprocess.DEVNULL if input is None else None
    return subprocess.run(cmd, cwd=cwd or ROOT, input=input, stdin=stdin, capture_output=True, text=True,
                          env=full_env, timeout=60)


def write_config(path: Path, var: Path) -> Path:
    path.write_text(f'[server]\nvar_dir = "{var}"\n[auth]\nbcrypt_rounds = 4\n')
    return path


@pytest.fixture
def cli(tmp_path):
    config = write_config(tmp_path / "pymail.toml", tmp_path / "var")

    def pymail(*args, input=None, expect=0):
        done = run(["--config", str(config), *args], input=input)
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        if expect:
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("pymail: error: "), done.stderr
        return done

    pymail.var = tmp_path / "var"
    pymail.config = config
    return pymail


def directory(cli) -> Directory:
    return Directory(cli.var / "directory.sqlite")


def test_domain_commands(cli):
    assert cli("domain", "add", "Example.COM").stdout == "added domain example.com\n"
    cli("domain", "add", "example.org")
    assert cli("domain", "list").stdout == "example.com\nexample.org\n"
    assert "already exists" in cli("domain", "add", "example.com", expect=1).stderr
    assert "bad domain name" in cli("domain", "add", "not_a_domain", expect=1).stderr
    cli("domain", "del", "example.org")
    assert cli("domain", "list").stdout == "example.com\n"
    assert "no such domain example.net" in cli("domain", "del", "example.net", expect=1).stderr


def test_user_add_creates_the_maildir_and_the_password_works(cli):
    cli("domain", "add", "example.com")
    done = cli("user", "add", "Bob@Example.com", "--password-stdin", "--quota-bytes", "100M", input="pässwörd\n")
    assert done.stdout == "added user bob@example.com\n"
    maildir = cli.var / "mail" / "example.com" / "bob" / "Maildir"
    assert all((maildir / sub).is_dir() for sub in ("cur", "new", "tmp"))
    d = directory(cli)
    assert d.verify_password("bob@example.com", "pässwörd") == "bob@example.com"
    assert d.get_user("bob@example.com").quota_bytes == 100 * 1024 * 1024
    show = cli("user", "show", "bob@example.com").stdout
    assert "quota bytes:    104857600" in show and "enabled:        yes" in show
    assert cli("user", "list").stdout == "bob@example.com\n"
    assert cli("user", "list", "example.com").stdout == "bob@example.com\n"


def test_user_add_errors(cli):
    cli("domain", "add", "example.com")
    assert "no such domain example.net" in cli("user", "add", "bob@example.net", "--password-stdin", input="pw\n", expect=1).stderr
    assert "bad address" in cli("user", "add", "bob", "--password-stdin", input="pw\n", expect=1).stderr
    # no terminal and no --password-stdin: refuse rather than read a password from a pipe
    assert "--password-stdin" in cli("user", "add", "bob@example.com", expect=1).stderr
    assert "no password on standard input" in cli("user", "add", "bob@example.com", "--password-stdin", input="\n", expect=1).stderr
    assert "longer than 72 bytes" in cli("user", "add", "bob@example.com", "--password-stdin", input="x" * 73 + "\n", expect=1).stderr
    assert "bad byte quota" in cli("user", "add", "bob@example.com", "--password-stdin", "--quota-bytes", "lots", input="pw\n", expect=2).stderr
    assert directory(cli).get_user("bob@example.com") is None
    cli("user", "add", "bob@example.com", "--password-stdin", input="pw\n")
    assert "user bob@example.com already exists" in cli("user", "add", "BOB@example.com", "--password-stdin", input="pw\n", expect=1).stderr


def test_passwd_enable_disable_and_delete(cli):
    cli("domain", "add", "example.com")
    cli("user", "add", "bob@example.com", "--password-stdin", input="old\n")
    cli("user", "passwd", "bob@example.com", "--password-stdin", input="new\r\n")
    d = directory(cli)
    assert d.verify_password("bob@example.com", "new") == "bob@example.com"
    assert d.verify_password("bob@example.com", "old") is None
    cli("user", "disable", "bob@example.com")
    assert cli("user", "list").stdout == "bob@example.com (disabled)\n"
    assert d.verify_password("bob@example.com", "new") is None
    cli("user", "enable", "bob@example.com")
    assert "no such user nobody@example.com" in cli("user", "passwd", "nobody@example.com", "--password-stdin", input="x\n", expect=1).stderr
    assert "no such user" in cli("user", "show", "nobody@example.com", expect=1).stderr
    cli("alias", "add", "info@example.com", "bob@example.com")
    out = cli("user", "del", "bob@example.com").stdout
    assert "maildir on disk was kept" in out and "note: these aliases still name it: info@example.com" in out
    assert (cli.var / "mail" / "example.com" / "bob" / "Maildir").is_dir()
    assert "no such user" in cli("user", "del", "bob@example.com", expect=1).stderr
    assert "still has 0 user(s) and 1 alias row(s)" in cli("domain", "del", "example.com", expect=1).stderr


def test_domain_del_needs_force_when_not_empty(cli):
    cli("domain", "add", "example.com")
    cli("user", "add", "bob@example.com", "--password-stdin", input="pw\n")
    assert "still has 1 user(s)" in cli("domain", "del", "example.com", expect=1).stderr
    cli("domain", "del", "example.com", "--force")
    assert cli("domain", "list").stdout == ""


def test_alias_commands(cli):
    cli("domain", "add", "example.com")
    cli("user", "add", "bob@example.com", "--password-stdin", input="pw\n")
    assert cli("alias", "add", "sales@example.com", "bob@example.com", "rep@partner.net").stdout == \
        "sales@example.com -> bob@example.com, rep@partner.net\n"
    cli("alias", "add", "@example.com", "bob@example.com")
    assert cli("alias", "list").stdout == "@example.com -> bob@example.com\nsales@example.com -> bob@example.com, rep@partner.net\n"
    assert "already exists" in cli("alias", "add", "sales@example.com", "bob@example.com", expect=1).stderr
    assert "no such domain" in cli("alias", "add", "x@example.net", "bob@example.com", expect=1).stderr
    assert "aliases:        @example.com, sales@example.com" in cli("user", "show", "bob@example.com").stdout
    res = directory(cli).resolve_recipient("sales+q1@example.com")
    assert (res.local_users, res.external, res.detail) == (["bob@example.com"], ["rep@partner.net"], "q1")
    cli("alias", "del", "sales@example.com", "rep@partner.net")
    assert "sales@example.com -> bob@example.com\n" in cli("alias", "list", "example.com").stdout
    cli("alias", "del", "sales@example.com")
    assert "no alias sales@example.com" in cli("alias", "del", "sales@example.com", expect=1).stderr
    assert "arguments are required" in cli("alias", "add", "x@example.com", expect=2).stderr


def test_quota_commands(cli):
    cli("domain", "add", "example.com")
    cli("user", "add", "bob@example.com", "--password-stdin", input="pw\n")
    assert cli("quota", "set", "bob@example.com", "--bytes", "2G", "--messages", "1000").stdout == \
        "bob@example.com: 2147483648 bytes, 1000 messages\n"
    assert cli("quota", "set", "bob@example.com", "--bytes", "none").stdout == \
        "bob@example.com: unlimited bytes, 1000 messages\n"
    assert cli("quota", "show", "bob@example.com").stdout == \
        "bob@example.com: 0 of unlimited bytes, 0 of 1000 messages\n"
    assert "give --bytes and/or --messages" in cli("quota", "set", "bob@example.com", expect=2).stderr
    assert "bad message quota" in cli("quota", "set", "bob@example.com", "--messages", "10K", expect=2).stderr
    assert "bad byte quota" in cli("quota", "set", "bob@example.com", "--bytes", "-5", expect=2).stderr
    assert "no such user" in cli("quota", "set", "nobody@example.com", "--bytes", "1M", expect=1).stderr


def test_usage_errors_exit_2_with_one_line(cli):
    assert "required" in cli(expect=2).stderr
    assert "invalid choice: 'frobnicate'" in cli("frobnicate", expect=2).stderr
    assert "invalid choice" in cli("user", "rename", expect=2).stderr
    assert "unrecognized arguments: --password" in cli("user", "add", "bob@example.com", "--password", "x", expect=2).stderr
    assert cli("--help").stdout.startswith("usage: pymail")
    assert "import-passwd" in cli("--help").stdout


def test_config_after_the_subcommand(cli):
    done = run(["domain", "add", "example.com", "--config", str(cli.config)])
    assert done.returncode == 0, done.stderr
    assert cli("domain", "list").stdout == "example.com\n"


def test_missing_and_bad_config(tmp_path):
    done = run(["--config", str(tmp_path / "nope.toml"), "domain", "list"])
    assert done.returncode == 1
    assert done.stderr == f"pymail: error: config: {tmp_path / 'nope.toml'}: cannot read: No such file or directory\n"
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nvar_dirr = "/tmp/x"\n')
    done = run(["--config", str(bad), "domain", "list"])
    assert done.returncode == 1 and "server.var_dirr: unknown setting" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    bad.write_text("[server\n")
    done = run(["--config", str(bad), "domain", "list"])
    assert done.returncode == 1 and "not valid TOML" in done.stderr and "Traceback" not in done.stderr


def test_config_from_environment_and_from_conf_in_cwd(tmp_path):
    config = write_config(tmp_path / "env.toml", tmp_path / "var-env")
    assert run(["domain", "add", "env.example"], env={"PYMAIL_CONFIG": str(config)}).returncode == 0
    assert Directory(tmp_path / "var-env" / "directory.sqlite").list_domains() == ["env.example"]
    site = tmp_path / "site"
    (site / "conf").mkdir(parents=True)
    write_config(site / "conf" / "pymail.toml", tmp_path / "var-cwd")
    done = run(["domain", "add", "cwd.example"], cwd=site)
    assert done.returncode == 0, done.stderr
    assert Directory(tmp_path / "var-cwd" / "directory.sqlite").list_domains() == ["cwd.example"]


def test_unusable_directory_database_is_one_line(tmp_path):
    config = tmp_path / "pymail.toml"
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "directory.sqlite").write_bytes(b"this is not an sqlite database" * 100)
    write_config(config, tmp_path / "var")
    done = run(["--config", str(config), "domain", "list"])
    assert done.returncode == 1
    assert done.stderr.startswith("pymail: error: cannot migrate the directory database: file is not a database")
    assert len(done.stderr.splitlines()) == 1


def test_installed_pymail_script(cli):
    script = Path(sys.executable).parent / "pymail"
    assert script.exists(), "the 'pymail' console script is not installed (pip install -e .)"
    done = subprocess.run([str(script), "--config", str(cli.config), "domain", "add", "example.com"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stdout, done.stderr) == (0, "added domain example.com\n", "")
    done = subprocess.run([str(script), "--config", str(cli.config), "domain", "add", "example.com"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stderr) == (1, "pymail: error: domain example.com already exists\n")
