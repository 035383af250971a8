"""The ``[queue]`` section of pymail.toml (owned by the queue package)."""

from dataclasses import dataclass


@dataclass
class QueueSettings:
    directory: str = ""  # empty: <var_dir>/queue
    max_lifetime: float = 5 * 86400.0
    smarthost: str = ""
