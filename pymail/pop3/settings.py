"""The ``[pop3]`` section of pymail.toml (owned by the pop3 package)."""

from dataclasses import dataclass


@dataclass
class Pop3Settings:
    uidl_format: str = "%08Xu%08Xv"  # Dovecot 2.3's default pop3_uidl_format
    idle_timeout: float = 600.0  # RFC 1939 §3: at least 10 minutes
    max_connections_per_ip: int = 50
    max_line_length: int = 2048  # RFC 2449 §4 allows 255 per command; SASL lines are longer
    max_bad_commands: int = 20  # then the connection is closed
    seen_on_retr: bool = True  # mark RETR'd messages \Seen at QUIT (Dovecot's default)
