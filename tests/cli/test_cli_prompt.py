"""``pymail user add`` without --password-stdin asks twice on the terminal, without echo."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

from pymail.directory import Directory

ROOT = Path(__file__).resolve().parents[2]


def _read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {marker!r}; got {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            assert chunk, f"terminal closed before {marker!r}; got {bytes(seen)!r}"
            seen.extend(chunk)


def _run_on_a_terminal(args: list[str], answers: list[bytes]) -> tuple[int, bytes]:
    pid, fd = pty.fork()
    if pid == 0:  # child: the pty is its controlling terminal, as for an admin at a shell
        os.environ["PYTHONPATH"] = str(ROOT)
        os.environ.pop("PYMAIL_CONFIG", None)
        os.execv(sys.executable, [sys.executable, "-m", "pymail.cli.main", *args])
    seen = bytearray()
    try:
        for prompt, answer in zip((b"Password: ", b"Retype password: "), answers):
            _read_until(fd, prompt, seen)
            os.write(fd, answer)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    seen.extend(os.read(fd, 1024))
                except OSError:
                    pass
            if done:
                return os.waitstatus_to_exitcode(status), bytes(seen)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        raise AssertionError(f"pymail did not exit; output {bytes(seen)!r}")
    finally:
        os.close(fd)


def test_password_prompt_is_asked_twice_without_echo(tmp_path):
    config = tmp_path / "pymail.toml"
    config.write_text(f'[server]\nvar_dir = "{tmp_path / "var"}"\n')
    code, _ = _run_on_a_terminal(["--config", str(config), "domain", "add", "example.com"], [])
    assert code == 0
    code, out = _run_on_a_terminal(["--config", str(config), "user", "add", "bob@example.com"],
                                   [b"Tr0ub4dor&3\n", b"Tr0ub4dor&3\n"])
    assert code == 0, out
    assert b"Tr0ub4dor" not in out  # never echoed
    assert b"added user bob@example.com" in out
    assert Directory(tmp_path / "var" / "directory.sqlite").verify_password("bob@example.com", "Tr0ub4dor&3")
    code, out = _run_on_a_terminal(["--config", str(config), "user", "passwd", "bob@example.com"],
                                   [b"one\n", b"two\n"])
    assert code == 1 and b"pymail: error: the passwords do not match" in out
