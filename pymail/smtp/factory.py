"""``make_factory(ctx, listener)`` for the mx, submission and lmtp roles (docs/seams.md)."""

from __future__ import annotations

from pymail.smtp.protocol import SmtpFactory


def make_factory(ctx, listener) -> SmtpFactory:
    if listener.role not in ("mx", "submission", "lmtp"):
        raise ValueError(f"the smtp package does not serve role {listener.role!r}")
    if ctx.queue is None:
        from pymail.queue.service import open_queue

        queue = ctx.extras.get("queue")
        if queue is None:
            queue = open_queue(ctx.config, ctx.store, ctx.directory, ctx.hostname)
            ctx.extras["queue"] = queue
            queue.start()
        ctx.queue = queue
    return SmtpFactory(ctx, listener)
