"""Run the real ``pymail-server`` in a subprocess for end-to-end tests.

The config written here binds every listener to 127.0.0.1 port 0; the server prints its
listeners and writes ``var/run/listeners.json``, which is how the test finds the ports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def write_config(var_dir: Path, roles: list[tuple[str, str]], extra: str = "",
                 plaintext_auth: bool = True) -> Path:
    """A config with one port-0 listener per (role, tls) pair; returns its path."""
    var_dir.mkdir(parents=True, exist_ok=True)
    lines = ["[server]", f'var_dir = "{var_dir}"', 'hostname = "mail.test"', "workers = 1",
             "shutdown_grace = 5.0", "", "[auth]", "failure_delay = 0.05", ""]
    for role, tls in roles:
        lines += ["[[listeners]]", f'role = "{role}"', "port = 0", f'tls = "{tls}"',
                  f"allow_plaintext_auth = {'true' if plaintext_auth else 'false'}", ""]
    path = var_dir / "pymail.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


class ServerProcess:
    def __init__(self, args: list[str], var_dir: Path, cwd: Path | None = None):
        self.args = args
        self.var_dir = var_dir
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.output = ""

    def start(self, timeout: float = 60.0) -> "ServerProcess":
        listeners = self.var_dir / "run" / "listeners.json"
        if listeners.exists():
            listeners.unlink()
        self.var_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.var_dir / "server.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "pymail.server.main", *self.args],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pymail-server exited {self.proc.returncode}:\n{self.log()}")
            if listeners.exists() and b"ready" in (self.var_dir / "server.log").read_bytes():
                # the port is bound before 'ready'; give the reactor a moment to adopt it
                time.sleep(0.3)
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pymail-server did not start within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return (self.var_dir / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def listeners(self) -> list[dict]:
        return json.loads((self.var_dir / "run" / "listeners.json").read_text())

    def port(self, role: str, tls: str | None = None) -> int:
        for entry in self.listeners():
            if entry["role"] == role and (tls is None or entry["tls"] == tls):
                return entry["port"]
        raise KeyError(f"no {role}/{tls} listener")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
