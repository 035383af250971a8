"""Users' spam settings are read from the directory at most every CACHE_SECONDS per process;
a change made through usersettings in this process counts at once."""

from __future__ import annotations

import time

from pymail.filters import usersettings


def test_cached_settings_follow_changes(directory, monkeypatch):
    monkeypatch.setattr(usersettings, "CACHE_SECONDS", 0.3)
    usersettings.forget()
    address = "alice@example.com"
    assert usersettings.load(directory, address).threshold == 5.0
    usersettings.set_threshold(directory, address, 3.0)      # this process: seen at once
    assert usersettings.load(directory, address).threshold == 3.0
    directory.set_setting(address, usersettings.KEY_THRESHOLD, "7.0")   # "another process"
    assert usersettings.load(directory, address).threshold == 3.0      # cached a moment
    time.sleep(0.35)
    assert usersettings.load(directory, address).threshold == 7.0
    usersettings.forget()
