"""Generated test data: Maildir++ trees in pymail's layout, the same for every server measured.

``<root>/<domain>/<local>/Maildir/{cur,new,tmp}``; messages go to ``cur/`` with Dovecot-style
names (``<time>.M<n>P<pid>.<host>,S=<size>,W=<vsize>:2,<flags>``), in date order, so both pymail
and Dovecot assign UIDs 1..N in the same order on first sight. About 70% are \\Seen, 5% \\Flagged.
"""

from __future__ import annotations

import os
import random
import time
from email.utils import formatdate
from pathlib import Path

from pymail_loadtest.common import SizeDistribution, make_message

DEFAULT_SIZES = "2k:40,5k:35,20k:20,100k:5"


def user_maildir(root: Path, address: str) -> Path:
    local, _, domain = address.partition("@")
    return Path(root) / domain.lower() / local / "Maildir"


def make_maildir(root: Path, address: str, messages: int, sizes: str = DEFAULT_SIZES, seed: int = 1,
                 start_time: float = 1_700_000_000.0) -> Path:
    """Fill the INBOX of ``address`` with ``messages`` messages; returns the Maildir path."""
    box = user_maildir(root, address)
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}:{address}")
    dist = SizeDistribution.parse(sizes)
    bodies = {size: make_message(size, rng, "sender@example.test", address) for size in set(dist.sizes)}
    host = "loadgen"
    for n in range(messages):
        when = start_time + n * 60
        size = dist.pick(rng)
        subject = f"Message {n + 1} of {messages} {rng.getrandbits(32):08x}"
        body = bodies[size]
        head, _, text = body.partition(b"\r\n\r\n")
        lines = [ln for ln in head.split(b"\r\n")
                 if not ln.startswith((b"Subject:", b"Date:", b"Message-ID:"))]
        lines += [f"Subject: {subject}".encode(), f"Date: {formatdate(when)}".encode(),
                  f"Message-ID: <gen.{n}.{seed}@{address.partition('@')[2]}>".encode()]
        raw = (b"\r\n".join(lines) + b"\r\n\r\n" + text).replace(b"\r\n", b"\n")
        vsize = len(raw) + raw.count(b"\n")
        flags = "S" if rng.random() < 0.7 else ""
        if rng.random() < 0.05:
            flags = "F" + flags
        name = f"{int(when)}.M{n}P1.{host},S={len(raw)},W={vsize}:2,{flags}"
        path = box / "cur" / name
        path.write_bytes(raw)
        os.utime(path, (when, when))
    return box


def make_users(count: int, domain: str = "example.test", password: str = "loadtest") -> list[tuple[str, str]]:
    return [(f"user{i}@{domain}", password) for i in range(1, count + 1)]


def write_users_file(path: Path, users: list[tuple[str, str]]) -> Path:
    Path(path).write_text("".join(f"{name}:{password}\n" for name, password in users))
    return Path(path)


if __name__ == "__main__":  # a quick manual check: python -m pymail_loadtest.maildir_data DIR N
    import sys

    t0 = time.monotonic()
    make_maildir(Path(sys.argv[1]), "user1@example.test", int(sys.argv[2]))
    print(f"{sys.argv[2]} messages in {time.monotonic() - t0:.1f}s")
