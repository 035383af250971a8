"""pymail.filters: the filtering pipeline (SMTP time) and Sieve (delivery time).

- ``pymail.filters.api``: ``Check``, ``Verdict``, ``Session``, ``Envelope`` (the seam for SMTP)
- ``pymail.filters.pipeline.Pipeline``: runs the configured checks of one SMTP phase
- ``pymail.filters.delivery.FilteringDelivery``: the queue's local-delivery hook (spam folder, Sieve)
- ``pymail.filters.sieve``: parser and interpreter; ``pymail.filters.managesieve``: RFC 5804 server

See docs/filters.md.
"""
