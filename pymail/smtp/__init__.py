"""pymail.smtp — SMTP (mx, submission, smtps) and LMTP servers on one sans-IO core.

Modules: ``wire`` (bytes → lines/DATA/BDAT), ``commands`` (argument parsing), ``core`` (the state
machine, PIPELINING order), ``session`` (policy: relay, AUTH, queueing), ``protocol`` (Twisted),
``lmtp`` (per-recipient delivery). ``make_factory(ctx, listener)`` is the seam for pymail-server.
"""


def make_factory(ctx, listener):
    from pymail.smtp.factory import make_factory as _make

    return _make(ctx, listener)
