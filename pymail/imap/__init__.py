"""pymail.imap — the IMAP4rev1 server (see docs/imap.md).

``make_factory(ctx, listener)`` builds the Twisted factory for one listener (docs/seams.md).
The sans-IO parts (``parser``, ``serialize``, ``fetchspec``, ``searchspec``, ``mime``) have no
Twisted dependency; ``protocol`` is the thin Twisted layer and ``session`` the state machine.
"""


def make_factory(ctx, listener):
    from pymail.imap.protocol import make_factory as build

    return build(ctx, listener)
