"""The [pop3] settings: defaults, and bad values refused with the key named."""

from __future__ import annotations

import pytest

from pymail.config import ConfigError, from_dict
from pymail.pop3.settings import Pop3Settings


def test_defaults_are_valid():
    settings = from_dict(Pop3Settings, {}, "pop3")
    assert settings.uidl_format == "%08Xu%08Xv" and settings.idle_timeout >= 600


@pytest.mark.parametrize("values, key", [
    ({"uidl_format": "%v"}, "uidl_format"),
    ({"uidl_format": "%u %v"}, "uidl_format"),
    ({"idle_timeout": 0}, "idle_timeout"),
    ({"max_connections_per_ip": 0}, "max_connections_per_ip"),
    ({"max_line_length": 100}, "max_line_length"),
    ({"max_bad_commands": 0}, "max_bad_commands"),
])
def test_bad_values_name_the_key(values, key):
    with pytest.raises(ConfigError, match=f"pop3: {key}:"):
        from_dict(Pop3Settings, values, "pop3")


@pytest.mark.parametrize("fmt", ["%u", "%08Xu%08Xv", "%v.%u", "%m", "%f", "%g", "x-%Xu"])
def test_unique_formats_are_accepted(fmt):
    assert from_dict(Pop3Settings, {"uidl_format": fmt}, "pop3").uidl_format == fmt
