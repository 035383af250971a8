"""A complete mail system in one folder for tests and benchmarks of the smtp and queue packages.

``MailSystem(tmp_path)`` builds a real Directory (SQLite), Store, Authenticator and Queue, and
``listen(role, ...)`` serves SMTP/LMTP on 127.0.0.1 port 0 through the test reactor thread.
"""

from __future__ import annotations

import time
from pathlib import Path

from pymail.config import Config, ListenerConfig


class MailSystem:
    def __init__(self, root: Path, tls=None, hostname: str = "mx.test", start_runner: bool = True,
                 **queue_settings):
        from pymail.directory.auth import Authenticator
        from pymail.directory.directory import Directory
        from pymail.queue.service import open_queue
        from pymail.server.context import ServiceContext
        from pymail.store.account import Store

        self.root = Path(root)
        self.config = Config()
        self.config.server.var_dir = str(self.root)
        self.config.server.hostname = hostname
        self.config.queue.scan_interval = 0.2
        self.config.queue.min_backoff = 0.3
        self.config.queue.max_backoff = 1.0
        self.config.queue.connect_timeout = 5.0
        self.config.queue.command_timeout = 10.0
        self.config.queue.dns_timeout = 3.0
        # Never ask the real DNS from a test: a closed port on loopback unless a test runs its own.
        self.config.queue.dns_nameservers = ["127.0.0.1"]
        self.config.queue.dns_port = 9
        for key, value in queue_settings.items():
            setattr(self.config.queue, key, value)
        self.directory = Directory(f"sqlite:///{self.root / 'directory.sqlite'}", bcrypt_rounds=4)
        self.directory.create_schema()
        self.store = Store(self.root / "mail")
        self.authenticator = Authenticator(self.directory, failure_delay=0.0)
        self.queue = open_queue(self.config, self.store, self.directory, hostname)
        self.ctx = ServiceContext(config=self.config, hostname=hostname, store=self.store,
                                  directory=self.directory, authenticator=self.authenticator,
                                  tls=tls, queue=self.queue)
        self.ports = []
        self.runner_started = False
        if start_runner:
            self.start_runner()

    @property
    def smtp(self):
        return self.config.smtp

    def start_runner(self) -> None:
        from pymail.testing import reactor_thread

        reactor_thread.call(self.queue.runner.start)
        self.runner_started = True

    def stop_runner(self) -> None:
        from pymail.testing import reactor_thread

        reactor_thread.call(self.queue.runner.stop)

    def add_user(self, address: str, password: str = "secret", **quota) -> None:
        domain = address.rpartition("@")[2]
        if not self.directory.is_local_domain(domain):
            self.directory.add_domain(domain)
        self.directory.add_user(address, password, **quota)

    def listen(self, role: str, tls: str = "starttls", plaintext_auth: bool = False,
               implicit_ctx=None) -> int:
        from pymail.smtp import make_factory
        from pymail.testing import reactor_thread

        listener = ListenerConfig(role=role, port=0, tls="implicit" if implicit_ctx else tls,
                                  allow_plaintext_auth=plaintext_auth)
        factory = make_factory(self.ctx, listener)
        port = reactor_thread.listen_tcp(factory, implicit_ctx)
        self.ports.append(port)
        return port.getHost().port

    def inbox(self, address: str, mailbox: str = "INBOX") -> list[bytes]:
        """Raw messages in a user's mailbox (empty when the maildir does not exist yet)."""
        from pymail.store.errors import StoreError

        try:
            box = self.store.account(address).mailbox(mailbox)
        except StoreError:
            return []
        box.sync()
        out = []
        for rec in box.records():
            with box.open_message(rec.uid) as f:
                out.append(f.read())
        return out

    def wait_for(self, predicate, timeout: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def queued(self) -> list[str]:
        return self.queue.dir.ids()

    def close(self) -> None:
        from pymail.testing import reactor_thread

        for port in self.ports:
            reactor_thread.call(port.stopListening)
        reactor_thread.call(self.queue.stop)
        self.directory.close()
