"""Users' spam settings are read from the directory at most every CACHE_SECONDS per process;
a change made through usersettings in this process counts at once."""

from __future__ import annotations

import types

from pymail.directory import answers
from pymail.filters import usersettings


def test_cached_settings_follow_changes(directory, monkeypatch):
    monkeypatch.setattr(usersettings, "CACHE_SECONDS", 0.3)
    clock = [1000.0]            # the cache's clock moves only when the test says so
    monkeypatch.setattr(answers, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    usersettings.forget()
    address = "alice@example.com"
    assert usersettings.load(directory, address).threshold == 5.0
    usersettings.set_threshold(directory, address, 3.0)      # this process: seen at once
    assert usersettings.load(directory, address).threshold == 3.0
    directory.set_setting(address, usersettings.KEY_THRESHOLD, "7.0")   # "another process"
    assert usersettings.load(directory, address).threshold == 3.0      # cached a moment
    clock[0] += 0.35
    assert usersettings.load(directory, address).threshold == 7.0
    usersettings.forget()
