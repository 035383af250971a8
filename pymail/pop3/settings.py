"""The ``[pop3]`` section of pymail.toml (owned by the pop3 package)."""

import re
from dataclasses import dataclass

# A UIDL must be unique within the maildrop: the format needs a per-message variable.
_UNIQUE_VARIABLE = re.compile(r"%\d*[Xx]?[umfg]")


@dataclass
class Pop3Settings:
    uidl_format: str = "%08Xu%08Xv"  # Dovecot 2.3's default pop3_uidl_format
    idle_timeout: float = 600.0  # RFC 1939 §3: at least 10 minutes
    max_connections_per_ip: int = 50
    max_line_length: int = 2048  # RFC 2449 §4 allows 255 per command; SASL lines are longer
    max_bad_commands: int = 20  # then the connection is closed
    seen_on_retr: bool = True  # mark RETR'd messages \Seen at QUIT (Dovecot's default)

    def validate(self) -> None:
        """Called by pymail.config; a ValueError becomes a ConfigError naming the key."""
        if not _UNIQUE_VARIABLE.search(self.uidl_format):
            raise ValueError("uidl_format: needs %u, %m, %f or %g so that each message's "
                             f"UIDL is unique (got {self.uidl_format!r})")
        if any(c.isspace() or not c.isprintable() for c in self.uidl_format):
            raise ValueError("uidl_format: a UIDL cannot hold spaces (RFC 1939 §7)")
        if self.idle_timeout <= 0:
            raise ValueError("idle_timeout: must be more than 0 seconds")
        if self.max_connections_per_ip < 1:
            raise ValueError("max_connections_per_ip: must be at least 1")
        if self.max_line_length < 255:
            raise ValueError("max_line_length: must be at least 255 (RFC 2449 §4)")
        if self.max_bad_commands < 1:
            raise ValueError("max_bad_commands: must be at least 1")
