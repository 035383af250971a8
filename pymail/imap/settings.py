"""The ``[imap]`` section of pymail.toml (owned by the imap package)."""

from dataclasses import dataclass


@dataclass
class ImapSettings:
    max_line_length: int = 65536
    max_literal_size: int = 64 * 1024 * 1024  # also APPENDLIMIT
    autologout: float = 30 * 60.0  # RFC 3501 §5.4: at least 30 minutes
    login_timeout: float = 180.0  # before authentication (RFC 3501 §5.4 allows a shorter one)
    max_connections_per_user: int = 20
    max_connections_per_ip: int = 50
    idle_poll: float = 0.5  # seconds between store polls while a client IDLEs (RFC 2177)
    max_commands_in_flight: int = 32  # pipelined commands queued before reading pauses
