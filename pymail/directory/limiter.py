"""Limits on failed logins, per client IP and per account.

In memory, per process: each pymail process counts on its own (with N worker processes an
attacker gets up to N times the limit; the per-attempt delay still applies). A counter is a list
of failure times in a sliding window; ``max_failures`` failures inside ``window`` seconds
throttle that key until the oldest one ages out. IPv6 clients are counted per /64 (one
customer's allocation), IPv4 per address. A successful login clears that account's count, not
the IP's. Memory is bounded: at most ``max_keys`` keys are tracked, oldest dropped first.

Attempts in progress are counted apart from failures (``begin`` → ``succeeded`` / ``failed`` /
``cancel``). A key with no failure is never throttled, however many logins run at once (one
webmail host or NAT logs many users in at the same moment; imaptest opens 50 sessions of one
user). Once a key has a failure, attempts in progress count as failures too, so parallel
guesses cannot slip past the limit while the first ones are being checked. Before the first
failure an attacker can have at most the per-IP connection limit of guesses in flight.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable

from pymail.directory.addresses import ascii_lower

MAX_ACCOUNT_KEY = 320


@dataclass(frozen=True)
class Attempt:
    ip_key: tuple[str, str]
    account_key: tuple[str, str]
    started: float


class FailureLimiter:
    def __init__(self, max_failures_per_ip: int = 10, max_failures_per_user: int = 10,
                 window: float = 300.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.max_failures_per_ip = max_failures_per_ip
        self.max_failures_per_user = max_failures_per_user
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._pending: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @staticmethod
    def ip_key(remote_ip: str | None) -> tuple[str, str]:
        text = (remote_ip or "").strip()
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            return "ip", text[:64]
        if ip.version == 6:
            if ip.ipv4_mapped is not None:
                return "ip", str(ip.ipv4_mapped)
            return "ip", str(ipaddress.ip_network(f"{ip}/64", strict=False))
        return "ip", str(ip)

    @staticmethod
    def account_key(username: str | bytes) -> tuple[str, str]:
        if isinstance(username, bytes):
            username = username.decode("utf-8", "replace")
        return "user", ascii_lower(username.strip())[:MAX_ACCOUNT_KEY]

    def _count(self, key: tuple[str, str], now: float) -> int:
        times = self._failures.get(key)
        if not times:
            return 0
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        return len(times)

    def is_throttled(self, remote_ip: str | None, username: str | bytes) -> bool:
        now = self.clock()
        with self._lock:
            return (self._count(self.ip_key(remote_ip), now) >= self.max_failures_per_ip
                    or self._count(self.account_key(username), now) >= self.max_failures_per_user)

    def _over(self, key: tuple[str, str], limit: int, now: float) -> bool:
        failures = self._count(key, now)
        return failures >= limit or (failures > 0 and failures + self._pending.get(key, 0) >= limit)

    def begin(self, remote_ip: str | None, username: str | bytes) -> Attempt | None:
        """None when throttled; else an Attempt, in progress until it is settled."""
        now = self.clock()
        attempt = Attempt(self.ip_key(remote_ip), self.account_key(username), now)
        with self._lock:
            if (self._over(attempt.ip_key, self.max_failures_per_ip, now)
                    or self._over(attempt.account_key, self.max_failures_per_user, now)):
                return None
            for key in (attempt.ip_key, attempt.account_key):
                self._pending[key] = self._pending.get(key, 0) + 1
        return attempt

    def _settle(self, attempt: Attempt) -> None:
        for key in (attempt.ip_key, attempt.account_key):
            left = self._pending.get(key, 0) - 1
            if left > 0:
                self._pending[key] = left
            else:
                self._pending.pop(key, None)

    def succeeded(self, attempt: Attempt) -> None:
        """A good login: clear the account's failures (the IP's stay)."""
        with self._lock:
            self._settle(attempt)
            self._failures.pop(attempt.account_key, None)

    def failed(self, attempt: Attempt) -> None:
        """A bad password (or unknown user): one failure for the IP and for the account."""
        now = self.clock()
        with self._lock:
            self._settle(attempt)
            self._add(attempt.ip_key, now)
            self._add(attempt.account_key, now)

    def cancel(self, attempt: Attempt) -> None:
        """The attempt could not be checked (directory down): it counts for nobody."""
        with self._lock:
            self._settle(attempt)

    def record_failure(self, remote_ip: str | None, username: str | bytes) -> None:
        now = self.clock()
        with self._lock:
            self._add(self.ip_key(remote_ip), now)
            self._add(self.account_key(username), now)

    def _add(self, key: tuple[str, str], now: float) -> None:
        times = self._failures.pop(key, None) or deque()
        times.append(now)
        self._failures[key] = times  # most recently failed last
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)

    def record_success(self, remote_ip: str | None, username: str | bytes) -> None:
        with self._lock:
            self._failures.pop(self.account_key(username), None)

    def tracked_keys(self) -> int:
        return len(self._failures)
