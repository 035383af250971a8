"""The queue as one object: the SMTP server hands it messages, the runner delivers them."""

from __future__ import annotations

from pathlib import Path

from pymail.queue import maillog
from pymail.queue.envelope import Envelope, Recipient
from pymail.queue.local import LocalDelivery
from pymail.queue.remote import RemoteDelivery
from pymail.queue.runner import DeliveryRunner
from pymail.queue.settings import QueueSettings
from pymail.queue.spool import QueueDir
from pymail.queue.writer import SpoolWriter
from pymail.runtime import run_blocking


class Queue:
    def __init__(self, root: str | Path, settings: QueueSettings, hostname: str, *, store=None,
                 directory=None, local_delivery: LocalDelivery | None = None):
        self.settings = settings
        self.hostname = hostname
        self.directory = directory
        self.dir = QueueDir(root, fsync=settings.fsync)
        self.local = local_delivery or LocalDelivery(store, directory)
        self.remote = RemoteDelivery(settings, hostname)
        self.runner = DeliveryRunner(self)

    def new_id(self) -> str:
        return self.dir.new_id()

    def writer(self, queue_id: str) -> SpoolWriter:
        return SpoolWriter(self.dir.tmp_path(queue_id))

    async def accept(self, envelope: Envelope, spooled: Path) -> None:
        """Make the message durable (fsync), log it, and wake the runner. Raises OSError."""
        await run_blocking(self.dir.commit, envelope, spooled)
        self._accepted(envelope)

    async def accept_writer(self, envelope: Envelope, writer: SpoolWriter) -> None:
        """Finish a spool writer and commit its message in one thread hop (``accept`` for a
        message nobody needs to read before it is queued). Raises OSError; then nothing of the
        message is left to deliver."""
        await writer.finish(then=lambda path: self.dir.commit(envelope, path, writer.size, writer.crc))
        self._accepted(envelope)

    def _accepted(self, envelope: Envelope) -> None:
        who = f"client=[{envelope.client_ip}], helo={envelope.helo}"
        if envelope.auth_user:
            who += f", sasl_username={envelope.auth_user}"
        maillog.event(envelope.queue_id, who)
        maillog.event(envelope.queue_id, f"from=<{envelope.sender}>, size={envelope.size}, "
                                         f"nrcpt={len(envelope.recipients)} (queued)")
        self.runner.accepted()

    def route(self, address: str) -> list[Recipient]:
        """Recipients for a message made here (bounce): local users, or the outside address.

        Empty when the address is in a local domain but names nobody (nowhere to send it).
        """
        domain = address.rpartition("@")[2].lower()
        if not domain:
            return []
        if self.directory is None or not self.directory.is_local_domain(domain):
            return [Recipient(address, False, address)]
        res = self.directory.resolve_recipient(address)
        if res is None:
            return []
        return ([Recipient(u, True, address) for u in res.local_users]
                + [Recipient(x, False, address) for x in res.external])

    def start(self):
        if self.settings.run_delivery:
            return self.runner.start()
        return None

    def stop(self):
        """Stop the runner and say QUIT to cached outbound connections (in a thread)."""
        self.runner.stop()
        return run_blocking(self.remote.close_idle, 0)


def open_queue(config, store, directory, hostname: str | None = None,
               local_delivery: LocalDelivery | None = None) -> Queue:
    """Build the queue from pymail.toml's settings (``[queue] directory`` or <var_dir>/queue)."""
    root = Path(config.queue.directory) if config.queue.directory else config.var_dir / "queue"
    return Queue(root, config.queue, hostname or config.server.hostname, store=store,
                 directory=directory, local_delivery=local_delivery)


def make_queue(ctx, local_delivery: LocalDelivery | None = None) -> Queue:
    """The queue for a ``ServiceContext`` (what pymail-server's build_context calls)."""
    return open_queue(ctx.config, ctx.store, ctx.directory, ctx.hostname, local_delivery)
