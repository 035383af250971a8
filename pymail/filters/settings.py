"""The ``[filters]`` section of pymail.toml (owned by the filters package)."""

from dataclasses import dataclass, field


@dataclass
class FilterSettings:
    checks: list[str] = field(default_factory=list)  # e.g. ["clamd", "spamd", "dnsbl", "spf"]
    clamd: str = ""  # "tcp:127.0.0.1:3310" or "unix:/run/clamav/clamd.ctl"
    spamd: str = ""  # "tcp:127.0.0.1:783"
