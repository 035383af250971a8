"""The ``[smtp]`` section of pymail.toml (owned by the smtp package)."""

from dataclasses import dataclass, field


@dataclass
class SmtpSettings:
    max_message_size: int = 50 * 1024 * 1024  # RFC 1870 SIZE; bigger mail gets 552 5.3.4
    max_recipients: int = 100  # RFC 5321 §4.5.3.1.8: more get 452 4.5.3
    max_line_length: int = 4096  # command lines; longer get 500 5.5.6
    max_connections_per_ip: int = 50
    idle_timeout: float = 300.0  # RFC 5321 §4.5.3.2: no complete command for this long → 421
    trusted_networks: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    hide_submitter_ip: bool = False  # leave the client out of Received for authenticated mail
    max_bad_commands: int = 20  # 500/501/503 replies before 421 and disconnect
    max_auth_attempts: int = 3  # failed AUTH per connection before 421
    max_hops: int = 50  # more Received fields than this: 554 5.4.6, a loop (RFC 5321 §6.3)
    mx_offers_auth: bool = True  # offer AUTH on port 25 too (after TLS), for relaying clients
