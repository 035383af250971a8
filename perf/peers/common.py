"""Helpers shared by the peer starters: free ports, waiting for a banner, rendering templates."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class PeerError(Exception):
    """A peer could not be started or is not installed; the message says which and why."""


def free_port() -> int:
    """A port on 127.0.0.1 that is free now (the kernel's choice for port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_banner(port: int, prefix: bytes, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    """Poll until a connection to ``port`` greets with ``prefix`` (e.g. b"* OK", b"220")."""
    deadline = time.monotonic() + timeout
    last = "nothing"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(2)
                banner = s.recv(512)
                if banner.startswith(prefix):
                    return
                last = repr(banner[:80])
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise PeerError(f"no {prefix!r} banner on 127.0.0.1:{port} within {timeout:.0f}s (last: {last})")


def render(template: str, values: dict[str, object]) -> str:
    """The template file with each ``@NAME@`` replaced; a field left unfilled is an error."""
    text = (HERE / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = sorted(set(re.findall(r"@([A-Z_]+)@", text)))
    if left:
        raise PeerError(f"{template}: unfilled fields {left}")
    return text
