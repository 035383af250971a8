"""ManageSieve (RFC 5804): the ``managesieve`` role (port 4190). See ``server.make_factory``."""

from pymail.filters.managesieve.server import make_factory

__all__ = ["make_factory"]
