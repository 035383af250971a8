"""Any text thrown at the lookups gives an answer, never an exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pymail.directory import Directory, Resolution
from pymail.directory.limiter import FailureLimiter


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    d = Directory(tmp_path_factory.mktemp("fuzz") / "dir.sqlite", bcrypt_rounds=4)
    d.create_schema()
    d.add_domain("example.com")
    d.add_user("bob@example.com", "pw")
    d.add_alias("@example.com", "bob@example.com")
    yield d
    d.close()


addresses = st.one_of(
    st.text(max_size=80),
    st.builds(lambda local, dom: f"{local}@{dom}", st.text(max_size=70), st.sampled_from(["example.com", "EXAMPLE.COM", "x.org", "", "é.com"])),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(address=addresses)
def test_lookups_never_raise(directory, address):
    res = directory.resolve_recipient(address)
    assert res is None or isinstance(res, Resolution)
    if res is not None:
        assert res.local_users == ["bob@example.com"]
    rec = directory.get_user(address)
    assert rec is None or rec.address == "bob@example.com"
    assert isinstance(directory.is_local_domain(address), bool)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.one_of(st.text(max_size=100), st.binary(max_size=100)), password=st.one_of(st.text(max_size=90), st.binary(max_size=90)))
def test_verify_password_never_raises(directory, user, password):
    assert directory.verify_password(user, password) in (None, "bob@example.com")
    FailureLimiter().begin(str(user)[:60], user)
