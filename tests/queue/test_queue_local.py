"""Local delivery through the queue: parallel deliveries into one fresh account, exactly once."""

from __future__ import annotations

import re
import smtplib

from pymail.smtp.testing import MailSystem


def test_parallel_local_deliveries_store_each_message_once(reactor, tmp_path):
    system = MailSystem(tmp_path, start_runner=False, max_parallel=4)
    try:
        system.add_user("carol@example.org")  # no maildir yet: the first deliveries create it
        port = system.listen("mx")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
            c.ehlo("c")
            for n in range(24):
                c.sendmail("x@ext.test", ["carol@example.org"], f"Subject: {n}\r\nX-N: {n}\r\n\r\nbody\r\n")
        system.start_runner()
        system.wait_for(lambda: not system.queued(), timeout=30, what="the queue to drain")
        seen = sorted(int(re.search(rb"X-N: (\d+)", raw).group(1)) for raw in system.inbox("carol@example.org"))
        assert seen == list(range(24))
    finally:
        system.close()
