"""twisted.cred checker and the Authenticator, on the real asyncio reactor in a thread."""

from __future__ import annotations

import threading
import time

import pytest
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from zope.interface.verify import verifyObject

from pymail.directory import Directory, DirectoryError
from pymail.directory.auth import AuthFailed, Authenticator, AuthThrottled, AuthUnavailable
from pymail.directory.cred import PasswordChecker
from pymail.directory.limiter import FailureLimiter
from pymail.testing import reactor_thread


class ThreadRecordingDirectory(Directory):
    """A real Directory that remembers which thread each password check ran in."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.threads: list[str] = []

    def verify_password(self, address, password):
        self.threads.append(threading.current_thread().name)
        return super().verify_password(address, password)


@pytest.fixture
def directory(tmp_path):
    d = ThreadRecordingDirectory(tmp_path / "dir.sqlite", bcrypt_rounds=4)
    d.create_schema()
    d.add_domain("example.com")
    d.add_user("bob@example.com", "right")
    yield d
    d.close()


def _outcome(fn, *args):
    try:
        return reactor_thread.call(fn, *args)
    except Exception as exc:  # the test compares the exception's type and message
        return exc


def test_checker_verifies_in_a_thread_not_on_the_reactor(reactor, directory):
    checker = PasswordChecker(directory)
    assert verifyObject(ICredentialsChecker, checker)
    assert reactor_thread.call(checker.requestAvatarId, UsernamePassword(b"Bob@Example.com", b"right")) == "bob@example.com"
    failed = _outcome(checker.requestAvatarId, UsernamePassword(b"bob@example.com", b"wrong"))
    assert isinstance(failed, UnauthorizedLogin)
    assert directory.threads and "reactor" not in directory.threads
    assert all(name != reactor_thread._thread.name for name in directory.threads)


def test_authenticate_success_returns_canonical_address(reactor, directory):
    assert directory._dummy_hash is None
    auth = Authenticator(directory, failure_delay=0)
    assert directory._dummy_hash is not None  # made before the first failed login, not during it
    assert reactor_thread.call(auth.authenticate, "BOB@example.COM", "right", "192.0.2.1") == "bob@example.com"
    assert reactor_thread.call(auth.authenticate, b"bob@example.com", b"right", "192.0.2.1") == "bob@example.com"


def test_all_failures_look_the_same(reactor, directory):
    directory.add_user("off@example.com", "right")
    directory.set_enabled("off@example.com", False)
    auth = Authenticator(directory, FailureLimiter(1000, 1000), failure_delay=0)
    outcomes = [
        _outcome(auth.authenticate, user, pw, "192.0.2.1")
        for user, pw in [("nobody@example.com", "right"), ("bob@example.com", "wrong"),
                         ("bob@example.com", "x" * 73), ("off@example.com", "right"), ("bob", "right")]
    ]
    assert {(type(o), str(o)) for o in outcomes} == {(AuthFailed, "authentication failed")}


def test_failures_are_delayed_on_the_reactor(reactor, directory):
    auth = Authenticator(directory, failure_delay=0.3)
    ticks = []
    start = time.monotonic()
    reactor_thread.call(reactor.callLater, 0.1, lambda: ticks.append(time.monotonic() - start))
    with pytest.raises(AuthFailed):
        reactor_thread.call(auth.authenticate, "bob@example.com", "wrong", "192.0.2.9")
    elapsed = time.monotonic() - start
    assert elapsed >= 0.3
    assert ticks and ticks[0] < elapsed  # the reactor kept running during the delay
    start = time.monotonic()
    reactor_thread.call(auth.authenticate, "bob@example.com", "right", "192.0.2.9")
    assert time.monotonic() - start < 0.3  # success is not delayed


def test_throttled_per_account_even_with_the_right_password(reactor, directory):
    limiter = FailureLimiter(max_failures_per_ip=100, max_failures_per_user=3)
    auth = Authenticator(directory, limiter, failure_delay=0)
    for i in range(3):
        assert isinstance(_outcome(auth.authenticate, "bob@example.com", "wrong", f"192.0.2.{i}"), AuthFailed)
    before = len(directory.threads)
    throttled = _outcome(auth.authenticate, "BOB@example.com", "right", "198.51.100.7")
    assert type(throttled) is AuthThrottled
    assert len(directory.threads) == before  # no password check while throttled
    # other accounts are unaffected
    directory.add_user("ann@example.com", "pw")
    assert reactor_thread.call(auth.authenticate, "ann@example.com", "pw", "192.0.2.1") == "ann@example.com"


def test_throttled_per_ip_across_accounts(reactor, directory):
    auth = Authenticator(directory, FailureLimiter(max_failures_per_ip=3, max_failures_per_user=100), failure_delay=0)
    for user in ("a@example.com", "b@example.com", "c@example.com"):
        assert type(_outcome(auth.authenticate, user, "x", "2001:db8::1")) is AuthFailed
    # same /64, other address: still throttled
    assert type(_outcome(auth.authenticate, "bob@example.com", "right", "2001:db8::2")) is AuthThrottled
    assert reactor_thread.call(auth.authenticate, "bob@example.com", "right", "2001:db8:1::1") == "bob@example.com"


def test_directory_outage_is_a_temporary_failure(reactor, directory):
    class Broken(Directory):
        def verify_password(self, address, password):
            raise DirectoryError("directory database error: unable to open database file")

    auth = Authenticator(Broken(directory.url), failure_delay=0)
    outcome = _outcome(auth.authenticate, "bob@example.com", "right", "192.0.2.1")
    assert type(outcome) is AuthUnavailable and isinstance(outcome, AuthFailed)
    assert auth.limiter.tracked_keys() == 0  # an outage is not the user's failure


def test_from_settings(reactor, directory):
    from pymail.config import AuthSettings

    auth = Authenticator.from_settings(directory, AuthSettings(failure_delay=0.0, max_failures_per_ip=2,
                                                               max_failures_per_user=5, failure_window=60))
    assert (auth.limiter.max_failures_per_ip, auth.limiter.max_failures_per_user, auth.limiter.window) == (2, 5, 60)
    assert auth.failure_delay == 0.0


def test_authenticate_from_asyncio_code(reactor, directory):
    auth = Authenticator(directory, failure_delay=0)

    async def asyncio_side():  # run as an asyncio task on the reactor's loop, like aiosmtpd
        import asyncio

        return await asyncio.ensure_future(auth.authenticate_asyncio("bob@example.com", "right", "192.0.2.1"))

    def start():
        import asyncio

        from twisted.internet import defer

        return defer.Deferred.fromFuture(asyncio.ensure_future(asyncio_side()))

    assert reactor_thread.call(start) == "bob@example.com"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_limiter_window_slides_and_success_clears_the_account():
    clock = FakeClock()
    lim = FailureLimiter(max_failures_per_ip=3, max_failures_per_user=2, window=60, clock=clock)
    lim.record_failure("192.0.2.1", "Bob@example.com")
    clock.now += 30
    lim.record_failure("192.0.2.2", "bob@example.com")
    assert lim.is_throttled("203.0.113.1", "BOB@EXAMPLE.COM")
    clock.now += 31  # the first failure ages out
    assert not lim.is_throttled("203.0.113.1", "bob@example.com")
    lim.record_failure("192.0.2.1", "x")
    assert not lim.is_throttled("192.0.2.1", "z")  # the first one from 192.0.2.1 aged out
    lim.record_failure("192.0.2.1", "y")
    lim.record_failure("192.0.2.1", "w")
    assert lim.is_throttled("192.0.2.1", "z")  # 3 failures from 192.0.2.1 inside the window
    lim.record_success("192.0.2.2", "bob@example.com")
    assert not lim.is_throttled("192.0.2.2", "bob@example.com")


def test_limiter_memory_is_bounded():
    lim = FailureLimiter(max_keys=50)
    for i in range(500):
        lim.record_failure(f"10.0.{i // 256}.{i % 256}", f"user{i}@example.com")
    assert lim.tracked_keys() <= 50
    assert lim.ip_key("::ffff:192.0.2.1") == ("ip", "192.0.2.1")
    assert lim.ip_key("2001:db8:0:0:1::5") == ("ip", "2001:db8::/64")


def test_parallel_attempts_cannot_slip_past_the_limit(reactor, directory):
    """Once an account has a failure, attempts in progress count too: of 10 parallel guesses
    after one failure with a limit of 3, only 2 passwords are checked."""
    auth = Authenticator(directory, FailureLimiter(max_failures_per_ip=100, max_failures_per_user=3), failure_delay=0)
    with pytest.raises(AuthFailed):
        reactor_thread.call(auth.authenticate, "bob@example.com", "wrong", "192.0.2.200")
    checked_before = len(directory.threads)

    def launch_many():
        from twisted.internet import defer

        attempts = [defer.ensureDeferred(auth.authenticate("bob@example.com", "wrong", f"192.0.2.{i}"))
                    for i in range(10)]
        return defer.DeferredList(attempts, consumeErrors=True)

    outcomes = [type(failure.value) for ok, failure in reactor_thread.call(launch_many)]
    assert sorted(o.__name__ for o in outcomes) == ["AuthFailed"] * 2 + ["AuthThrottled"] * 8
    assert len(directory.threads) - checked_before == 2  # only two more passwords were checked


def test_many_parallel_good_logins_from_one_ip_are_not_throttled(reactor, directory):
    """A webmail host or NAT logs many sessions in at once: no failure, no throttling."""
    auth = Authenticator(directory, FailureLimiter(max_failures_per_ip=3, max_failures_per_user=3), failure_delay=0)

    def launch_many():
        from twisted.internet import defer

        attempts = [defer.ensureDeferred(auth.authenticate("bob@example.com", "right", "192.0.2.9"))
                    for _ in range(30)]
        return defer.DeferredList(attempts, consumeErrors=True)

    results = reactor_thread.call(launch_many)
    assert [value for ok, value in results] == ["bob@example.com"] * 30
    assert auth.limiter.tracked_keys() == 0


def test_good_logins_do_not_count_against_the_ip(reactor, directory):
    auth = Authenticator(directory, FailureLimiter(max_failures_per_ip=2, max_failures_per_user=100), failure_delay=0)
    for _ in range(5):
        assert reactor_thread.call(auth.authenticate, "bob@example.com", "right", "192.0.2.50") == "bob@example.com"
    assert auth.limiter.tracked_keys() == 0
