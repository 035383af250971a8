"""Configuration: typed validation, clear errors naming the key, the shipped examples stay valid."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pymail.config import Config, ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def test_example_config_is_valid():
    config = load_config(ROOT / "conf" / "pymail.toml")
    ports = sorted(lst.port for lst in config.listeners)
    # The production ports the issue names: 25/587/465/143/993/110/995/24/4190.
    assert ports == [24, 25, 110, 143, 465, 587, 993, 995, 4190]
    assert config.store.fsync is True


def test_example_config_documents_every_setting():
    """Every field of every section appears in conf/pymail.toml, so the example stays complete."""
    text = (ROOT / "conf" / "pymail.toml").read_text()
    sections = {f.name: f.type for f in dataclasses.fields(Config)
                if f.name not in ("listeners", "source")}
    config = Config()
    missing = []
    for name in sections:
        block = re.search(rf"^\[{name}\]\n(.*?)(?=^\[|\Z)", text, re.S | re.M)
        assert block, f"conf/pymail.toml lacks a [{name}] section"
        for field in dataclasses.fields(getattr(config, name)):
            if not re.search(rf"^#?\s*{field.name}\s*=", block.group(1), re.M):
                missing.append(f"{name}.{field.name}")
    assert not missing, f"not documented in conf/pymail.toml: {missing}"


@pytest.mark.parametrize("data, message", [
    ({"server": {"hostnam": "x"}}, "server.hostnam: unknown setting"),
    ({"bogus": {}}, "bogus: unknown setting"),
    ({"server": {"workers": "two"}}, "server.workers: expected a whole number"),
    ({"server": {"workers": True}}, "server.workers: expected a whole number"),
    ({"store": {"fsync": "yes"}}, "store.fsync: expected true or false"),
    ({"server": {"roles": ["mx", "web2"]}}, "server.roles[1]: unknown role 'web2'"),
    ({"server": {"log_level": "loud"}}, "server.log_level: 'loud' is not one of"),
    ({"listeners": [{"role": "imap"}]}, "listeners[0].port: required setting is missing"),
    ({"listeners": [{"role": "imap", "port": 70000}]}, "listeners[0].port: 70000 is not a TCP port"),
    ({"listeners": [{"role": "imap", "port": 143, "tls": "maybe"}]}, "listeners[0].tls: 'maybe'"),
    ({"listeners": [{"role": "imap", "port": 143}, {"role": "pop3", "port": 143}]},
     "listeners[1].port: 127.0.0.1:143 is already used by listeners[0]"),
    ({"listeners": [{"role": "imap", "port": 1, "unix_socket": "/x"}]},
     "listeners[0].unix_socket: only the lmtp role"),
    ({"imap": {"max_line_length": 1.5}}, "imap.max_line_length: expected a whole number"),
    ({"smtp": {"trusted_networks": "10.0.0.0/8"}}, "smtp.trusted_networks: expected a list"),
])
def test_bad_values_name_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert message in str(info.value)


def test_defaults_and_relative_paths(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[server]\nvar_dir = "data"\n[store]\nindex_root = "idx"\n')
    config = load_config(path)
    assert config.var_dir == tmp_path / "data"
    assert config.mail_root == tmp_path / "data" / "mail"
    assert config.index_root == tmp_path / "idx"
    assert config.directory_url == f"sqlite:///{tmp_path / 'data' / 'directory.sqlite'}"


def test_file_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def run_server(*args):
    return subprocess.run([sys.executable, "-m", "pymail.server.main", *args],
                          capture_output=True, text=True, timeout=60)


def test_server_refuses_bad_config_without_traceback(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[imap]\nautologout = "soon"\n')
    result = run_server("--config", str(path))
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "imap.autologout" in result.stderr
    assert "Traceback" not in result.stderr


def test_server_check_and_unknown_role(tmp_path):
    result = run_server("--config", str(ROOT / "conf" / "pymail.toml"), "--check")
    assert result.returncode == 0 and "configuration is valid" in result.stdout
    result = run_server("--config", str(ROOT / "conf" / "pymail.toml"), "--roles", "imap,www")
    assert result.returncode == 2 and "unknown role 'www'" in result.stderr
