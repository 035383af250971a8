"""Private instances of the peers pymail is measured against: Dovecot and Postfix.

Each peer runs as a child of the caller, under a temporary folder, listening on 127.0.0.1 high
ports; nothing touches the system's own /etc/dovecot or /etc/postfix or its services.
"""

from peers.common import PeerError, free_port, wait_for_banner  # noqa: F401
