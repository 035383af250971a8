"""The ``[filters]`` section of pymail.toml (owned by the filters package).

Example::

    [filters]
    checks = ["clamd", "spamd"]          # run order; results are merged in this order
    clamd = "tcp:127.0.0.1:3310"         # or "unix:/run/clamav/clamd.ctl"
    spamd = "tcp:127.0.0.1:783"
    fail_policy = { spamd = "accept" }   # "tempfail" (451 4.7.1, default) or "accept" (and tag)
    timeouts = { spamd = 60.0 }
    roles = { spamd = ["mx", "lmtp"] }   # listener roles a check runs for
"""

from dataclasses import dataclass, field

KNOWN_CHECKS = ("clamd", "spamd", "dnsbl", "auth", "dkim_sign")
FAIL_POLICIES = ("tempfail", "accept")
LISTENER_ROLES = ("mx", "submission", "lmtp")

# Which listener roles a check runs for unless [filters].roles says otherwise. Authenticated
# submissions skip inbound spam checks but are still virus-scanned (issue 6).
DEFAULT_ROLES = {
    "clamd": ["mx", "submission", "lmtp"],
    "spamd": ["mx", "lmtp"],
    "dnsbl": ["mx"],
    "auth": ["mx"],  # SPF/DKIM/DMARC judge the connecting client: only where it is the sender's MTA
    "dkim_sign": ["submission"],
}
DEFAULT_TIMEOUTS = {"clamd": 30.0, "spamd": 60.0, "dnsbl": 10.0, "auth": 30.0, "dkim_sign": 10.0}
DMARC_POLICIES = ("enforce", "report")


@dataclass
class FilterSettings:
    checks: list[str] = field(default_factory=list)  # e.g. ["clamd", "spamd"]
    clamd: str = ""  # "tcp:127.0.0.1:3310" or "unix:/run/clamav/clamd.ctl"
    spamd: str = ""  # "tcp:127.0.0.1:783" or "unix:/run/spamd.sock"
    # Per-check overrides, keyed by check name.
    roles: dict[str, list[str]] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)
    fail_policy: dict[str, str] = field(default_factory=dict)
    connect_timeout: float = 5.0  # seconds to reach clamd/spamd before calling them down
    # clamd
    clamd_max_size: int = 25 * 1024 * 1024  # keep <= clamd's StreamMaxLength
    # spamd (SPAMC/1.5)
    spamd_max_size: int = 512 * 1024  # bigger messages are not scanned (spamc's default)
    spamd_user: str = ""  # User: header when a message has no local recipient; "" = none
    spam_threshold: float = 5.0  # site default for users who set none
    spam_reject_score: float = 15.0  # site-wide: refuse at SMTP time at or above; 0 = never
    # DNS for DNSBL/SPF/DKIM/DMARC (empty nameservers: /etc/resolv.conf)
    dns_nameservers: list[str] = field(default_factory=list)
    dns_port: int = 53
    dns_timeout: float = 5.0
    # DNSBL: listed in a zone adds its weight to the spam score (never refuses alone)
    dnsbl_zones: list[str] = field(default_factory=list)  # e.g. ["zen.spamhaus.org"]
    dnsbl_weight: float = 3.0
    # SPF/DKIM/DMARC ("auth" check): one Authentication-Results header (RFC 8601)
    authserv_id: str = ""  # empty: the server's hostname
    spf_reject_fail: bool = False  # refuse at MAIL FROM when SPF says fail (-all)
    dmarc_policy: str = "enforce"  # "enforce": p=reject refuses, p=quarantine → Junk; "report"
    auth_max_size: int = 10 * 1024 * 1024  # DKIM is not verified on bigger messages
    # DKIM signing of authenticated submissions: key <dkim_keys_dir>/<domain>.<selector>.key
    dkim_keys_dir: str = ""  # empty: <var_dir>/dkim
    dkim_selector: str = "pymail"
    # Sieve (local delivery)
    sieve_before: str = ""  # path of the site-wide "before" script users cannot override
    sieve_max_redirects: int = 4  # per message and script (RFC 5228 §4.2: limit redirects)
    vacation_min_days: int = 1  # RFC 5230 §4.1: the site minimum for :days
    vacation_max_days: int = 30

    def check_roles(self, name: str) -> list[str]:
        return self.roles.get(name, DEFAULT_ROLES.get(name, list(LISTENER_ROLES)))

    def check_timeout(self, name: str) -> float:
        return self.timeouts.get(name, DEFAULT_TIMEOUTS.get(name, 30.0))

    def check_fail_policy(self, name: str) -> str:
        return self.fail_policy.get(name, "tempfail")

    def validate(self) -> None:
        for i, name in enumerate(self.checks):
            if name not in KNOWN_CHECKS:
                raise ValueError(f"checks[{i}]: unknown check {name!r} (known: {', '.join(KNOWN_CHECKS)})")
        for table in ("roles", "timeouts", "fail_policy"):
            for name in getattr(self, table):
                if name not in KNOWN_CHECKS:
                    raise ValueError(f"{table}.{name}: unknown check (known: {', '.join(KNOWN_CHECKS)})")
        for name, roles in self.roles.items():
            for role in roles:
                if role not in LISTENER_ROLES:
                    raise ValueError(f"roles.{name}: {role!r} is not one of {', '.join(LISTENER_ROLES)}")
        for name, policy in self.fail_policy.items():
            if policy not in FAIL_POLICIES:
                raise ValueError(f"fail_policy.{name}: {policy!r} is not one of {', '.join(FAIL_POLICIES)}")
        for name, seconds in self.timeouts.items():
            if seconds <= 0:
                raise ValueError(f"timeouts.{name}: must be more than 0 seconds")
        for name in ("clamd", "spamd"):
            if name in self.checks and not getattr(self, name):
                raise ValueError(f"{name}: the {name} check is enabled but no address is set")
            address = getattr(self, name)
            if address and not address.startswith(("tcp:", "unix:")):
                raise ValueError(f"{name}: {address!r} must start with tcp: or unix:")
        if self.dmarc_policy not in DMARC_POLICIES:
            raise ValueError(f"dmarc_policy: {self.dmarc_policy!r} is not one of {', '.join(DMARC_POLICIES)}")
        if not 0 < self.dns_port < 65536:
            raise ValueError("dns_port: not a port number")
        if self.vacation_min_days < 0 or self.vacation_max_days < self.vacation_min_days:
            raise ValueError("vacation_min_days/vacation_max_days: need 0 <= min <= max")
