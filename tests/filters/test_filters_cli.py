"""The filters' admin CLI commands, run through an argparse tree like pymail's."""

from __future__ import annotations

import argparse

import pytest

from pymail.cli.errors import CliError
from pymail.cli.site import Site
from pymail.filters import usersettings
from pymail.filters.cli import register_cli


@pytest.fixture
def cli(tmp_path, directory):
    site = Site(tmp_path / "pymail.toml", directory.url, tmp_path / "mail", None, False)
    parser = argparse.ArgumentParser(prog="pymail")
    register_cli(parser.add_subparsers(dest="area"))

    def run(*argv):
        args = parser.parse_args(list(argv))
        return args.func(args, site)
    return run


def test_spam_settings_round_trip(cli, directory, capsys):
    assert cli("spam", "set", "alice@example.com", "--threshold", "3.5", "--action", "reject",
               "--reject-score", "12") == 0
    assert cli("spam", "allow", "alice@example.com", "Partner.example.org", "boss@corp.example") == 0
    assert cli("spam", "block", "alice@example.com", "spam.example") == 0
    s = usersettings.load(directory, "alice@example.com")
    assert (s.threshold, s.action, s.reject_score) == (3.5, "reject", 12.0)
    assert s.allow == ["partner.example.org", "boss@corp.example"] and s.block == ["spam.example"]
    cli("spam", "show", "alice@example.com")
    out = capsys.readouterr().out
    assert "threshold:    3.5\n" in out and "action:       reject\n" in out
    assert cli("spam", "unallow", "alice@example.com", "partner.example.org") == 0
    assert usersettings.load(directory, "alice@example.com").allow == ["boss@corp.example"]
    assert cli("spam", "set", "alice@example.com", "--threshold", "default", "--action", "default") == 0
    s = usersettings.load(directory, "alice@example.com")
    assert (s.threshold, s.action) == (5.0, "junk")


@pytest.mark.parametrize("argv, message", [
    (("spam", "set", "nobody@example.com", "--threshold", "3"), "no such user"),
    (("spam", "set", "alice@example.com"), "nothing to change"),
    (("spam", "set", "alice@example.com", "--threshold", "high"), "not a number"),
    (("spam", "allow", "alice@example.com", "not an address"), "not an address or a domain"),
    (("spam", "unblock", "alice@example.com", "x.example"), "not on"),
])
def test_spam_errors_are_one_line(cli, argv, message):
    with pytest.raises(CliError, match=message):
        cli(*argv)


def test_sieve_scripts(cli, tmp_path, capsys):
    good = tmp_path / "good.sieve"
    good.write_text('require "fileinto";\nfileinto "Archive";\n')
    bad = tmp_path / "bad.sieve"
    bad.write_text('keep;\nfileinto "x";\n')
    assert cli("sieve", "check", str(good)) == 0
    with pytest.raises(CliError, match="line 2"):
        cli("sieve", "check", str(bad))
    assert cli("sieve", "put", "alice@example.com", "main", str(good), "--activate") == 0
    capsys.readouterr()
    cli("sieve", "list", "alice@example.com")
    assert capsys.readouterr().out == "main  (active)\n"
    cli("sieve", "show", "alice@example.com", "main")
    assert capsys.readouterr().out == good.read_text()
    with pytest.raises(CliError, match="active script"):
        cli("sieve", "del", "alice@example.com", "main")
    assert cli("sieve", "activate", "alice@example.com", "") == 0
    assert cli("sieve", "del", "alice@example.com", "main") == 0
