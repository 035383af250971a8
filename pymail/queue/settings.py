"""The ``[queue]`` section of pymail.toml (owned by the queue package)."""

from dataclasses import dataclass, field


@dataclass
class QueueSettings:
    directory: str = ""  # empty: <var_dir>/queue
    max_lifetime: float = 5 * 86400.0  # then bounce (Postfix maximal_queue_lifetime)
    smarthost: str = ""  # "host:port": relay every remote message through it
    smarthost_username: str = ""
    smarthost_password: str = ""
    smarthost_tls: str = "starttls"  # "starttls" (required before AUTH), "implicit", "none"
    run_delivery: bool = True  # this process runs the delivery runner
    scan_interval: float = 5.0  # seconds between looks for due messages
    min_backoff: float = 300.0  # first retry after this long; doubles up to max_backoff
    max_backoff: float = 4000.0
    max_parallel: int = 4  # messages delivered at once per process
    fsync: bool = True  # fsync spool/envelope before 250 (turn off only for benchmarks)
    remote_port: int = 25  # TCP port of remote MX hosts
    dns_nameservers: list[str] = field(default_factory=list)  # empty: /etc/resolv.conf
    dns_port: int = 53
    dns_timeout: float = 10.0
    connect_timeout: float = 30.0
    command_timeout: float = 300.0  # RFC 5321 §4.5.3.2 client timeouts (one value for all)
    connection_cache_time: float = 10.0  # keep an idle outbound connection for reuse this long
    outbound_tls: bool = True  # opportunistic STARTTLS (no certificate check, RFC 7435)
    bounce_max_body: int = 256 * 1024  # return the full message in a DSN up to this size
    delay_warning_time: float = 0.0  # send one "delayed" DSN after this long (0: never, as Postfix)

    def validate(self) -> None:
        """Called by pymail.config: a ValueError here names the bad setting."""
        if self.smarthost:
            host, sep, port = self.smarthost.rpartition(":")
            if sep and (not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536):
                raise ValueError(f"smarthost: {self.smarthost!r} is not host or host:port")
        if self.smarthost_tls not in ("starttls", "implicit", "none"):
            raise ValueError(f"smarthost_tls: {self.smarthost_tls!r} is not starttls, implicit or none")
        for name in ("scan_interval", "min_backoff", "max_backoff", "connect_timeout",
                     "command_timeout", "dns_timeout", "max_lifetime"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be more than 0")
        if self.max_parallel < 1:
            raise ValueError("max_parallel: must be 1 or more")
        if not 0 < self.remote_port < 65536 or not 0 < self.dns_port < 65536:
            raise ValueError("remote_port/dns_port: not a TCP/UDP port")
