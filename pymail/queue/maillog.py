"""The mail log: one line per event, keyed by queue ID, in the spirit of Postfix's maillog.

Logger name ``pymail.maillog``. Lines look like::

    connect from [127.0.0.1]:51234 role=mx
    4ZQ1L7MKBX3CD9K2QF: client=[127.0.0.1], helo=client.example, sasl_username=a@example.org
    4ZQ1L7MKBX3CD9K2QF: from=<a@example.org>, size=1234, nrcpt=2 (queued)
    4ZQ1L7MKBX3CD9K2QF: to=<b@example.net>, relay=mx.example.net[192.0.2.1]:25, delay=1.2, status=sent (250 ok)
    4ZQ1L7MKBX3CD9K2QF: to=<c@example.com>, relay=local, status=deferred (over quota)
    4ZQ1L7MKBX3CD9K2QF: to=<d@example.com>, status=bounced (550 5.1.1 no such user)
    4ZQ1L7MKBX3CD9K2QF: removed
    reject: RCPT from [192.0.2.9]: 554 5.7.1 Relay access denied; from=<x@y> to=<z@ext>
"""

from __future__ import annotations

import logging

log = logging.getLogger("pymail.maillog")


def event(queue_id: str | None, text: str) -> None:
    log.info("%s: %s", queue_id, text) if queue_id else log.info("%s", text)
