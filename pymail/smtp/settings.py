"""The ``[smtp]`` section of pymail.toml (owned by the smtp package)."""

from dataclasses import dataclass, field


@dataclass
class SmtpSettings:
    max_message_size: int = 50 * 1024 * 1024
    max_recipients: int = 100
    max_line_length: int = 4096
    max_connections_per_ip: int = 50
    idle_timeout: float = 300.0  # RFC 5321 §4.5.3.2
    trusted_networks: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    hide_submitter_ip: bool = False
