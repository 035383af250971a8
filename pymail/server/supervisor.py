"""``--workers N``: N serving processes share the listening sockets the parent bound.

The parent never serves. It starts N workers that inherit the sockets (the kernel spreads new
connections between them), restarts a worker that dies unexpectedly (at most once a second),
and on SIGTERM/SIGINT forwards the signal so every worker drains (stops accepting and lets open
sessions finish within ``server.shutdown_grace``), killing any worker still alive after that.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymail.config import Config
from pymail.server.listen import BoundListener

log = logging.getLogger("pymail.server")


def adopt_inherited(config: Config, spec: str) -> list[BoundListener]:
    """Rebuild BoundListeners from '--worker-fds index:fd,...' (listener index in the config)."""
    bound = []
    for item in spec.split(","):
        index, fd = (int(x) for x in item.split(":"))
        sock = socket.socket(fileno=fd)
        bound.append(BoundListener(config.listeners[index], sock))
    return bound


class Supervisor:
    def __init__(self, config_path: Path, roles: list[str], bound: list[BoundListener],
                 workers: int, grace: float):
        self.config_path = Path(config_path).resolve()
        self.roles = roles
        self.bound = bound
        self.count = workers
        self.grace = grace
        self.children: dict[int, subprocess.Popen] = {}
        self.stopping = False

    def spawn(self, slot: int) -> None:
        from pymail.config import load_config

        config = load_config(self.config_path)
        spec = ",".join(f"{config.listeners.index(bl.listener)}:{bl.sock.fileno()}"
                        for bl in self.bound)
        cmd = [sys.executable, "-m", "pymail.server.main", "--config", str(self.config_path),
               "--roles", ",".join(self.roles), "--workers", "1", "--worker-fds", spec]
        proc = subprocess.Popen(cmd, pass_fds=[bl.sock.fileno() for bl in self.bound])
        self.children[slot] = proc
        log.info("worker %d started as pid %d", slot, proc.pid)

    def stop(self, signum, _frame) -> None:
        self.stopping = True
        for bl in self.bound:  # the workers drain; nothing new may queue on our copy
            bl.sock.close()
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for slot in range(self.count):
            self.spawn(slot)
        last_restart = 0.0
        while not self.stopping:
            time.sleep(0.2)
            for slot, proc in list(self.children.items()):
                if proc.poll() is not None and not self.stopping:
                    log.warning("worker pid %d exited with %s; restarting", proc.pid, proc.returncode)
                    time.sleep(max(0.0, 1.0 - (time.monotonic() - last_restart)))
                    last_restart = time.monotonic()
                    self.spawn(slot)
        deadline = time.monotonic() + self.grace + 5
        for proc in self.children.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return 0
