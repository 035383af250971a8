"""pymail.smtp — SMTP (mx, submission, smtps) and LMTP servers on one sans-IO core.

Implementation notes (read before changing anything here):
- ``wire`` turns bytes into lines, DATA (only CRLF.CRLF ends it) and BDAT chunks; ``core`` is the
  state machine and hands out one event at a time, so replies keep command order under
  PIPELINING; ``session`` (with ``auth``, ``mail``, ``data``) decides policy; ``protocol`` is the
  only Twisted code. None of the first three touch sockets; tests drive them with bytes.
- Nothing slow runs on the reactor thread: directory lookups, bcrypt, spool writes, fsync and
  store deliveries go through ``pymail.runtime.run_blocking``.
- A message is answered 250 only after ``pymail.queue`` made it durable (docs/queue.md).
- After STARTTLS the unread input is dropped and the session forgets HELO, AUTH and the
  transaction (RFC 3207 §4.2).
- Every refusal is an ``SmtpError`` (errors.py) carrying its reply; every event worth an admin's
  attention is one ``pymail.maillog`` line with the queue ID.

``make_factory(ctx, listener)`` is the seam for pymail-server (docs/seams.md).
"""


def make_factory(ctx, listener):
    from pymail.smtp.factory import make_factory as _make

    return _make(ctx, listener)
