"""The parse cache filled header-only (cache_all) and completed on demand."""

from __future__ import annotations

import io
import json
import random

from pymail.store import cache as cache_mod
from pymail.store import parse
from tests.store.conftest import msg


def test_read_header_equals_split_message_at_every_chunk_boundary(monkeypatch):
    rnd = random.Random(5)
    pieces = [b"A: b", b"\r\n", b"\n", b"\r", b" ", b"x", b"\r\n\r\n", b"\n\n", b"\n\r\n", b"body"]
    for chunk in (1, 2, 3, 5, 16384):
        monkeypatch.setattr(cache_mod, "HEADER_CHUNK", chunk)
        for _ in range(3000):
            raw = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 12)))
            assert cache_mod.read_header(io.BytesIO(raw)) == parse.split_message(raw)[0], raw


def test_cache_all_stores_headers_only_and_bodystructure_completes_the_row(account):
    raw = (b"From: A <a@example.org>\r\nSubject: hi\r\nContent-Type: multipart/mixed; "
           b"boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\none\r\n--XX--\r\n")
    account.deliver(msg("plain"))
    account.deliver(raw)
    box = account.mailbox("INBOX")
    box.index.db.execute("DELETE FROM parsed")          # as after a rebuild: nothing cached
    assert box.cache_all() == 2
    rows = dict(box.index.db.execute("SELECT uid, bodystructure FROM parsed"))
    assert rows == {1: None, 2: None}                   # no MIME parse was done
    assert box.raw_header(2) == parse.split_message(raw)[0]
    assert box.header_fields(2, ["subject"]) == b"Subject: hi\r\n\r\n"
    env = box.envelope(2)                               # from the header-only row
    assert env[1] == b"hi" and env == parse.envelope(parse.split_message(raw)[0])
    assert box.index.db.execute("SELECT bodystructure FROM parsed WHERE uid=2").fetchone() == (None,)
    full = cache_mod.parsed_row(raw)
    assert full[0] is None                              # no ENVELOPE stored
    assert box.bodystructure(2) == parse.from_json(json.loads(full[2]))
    assert box.index.db.execute("SELECT bodystructure IS NOT NULL FROM parsed WHERE uid=2"
                                ).fetchone()[0] == 1
    assert box.cache_all() == 0


def test_complete_parsed_fills_structures_in_one_go(account):
    for i in range(4):
        account.deliver(msg(f"m{i}"))
    box = account.mailbox("INBOX")
    box.index.db.execute("DELETE FROM parsed")
    box.cache_all([1, 2])                               # 1, 2 header-only; 3, 4 not cached
    assert box.complete_parsed([1, 2, 3, 4]) == 4
    assert box.complete_parsed([1, 2, 3, 4]) == 0       # nothing left to parse
    assert box.index.db.execute("SELECT COUNT(*) FROM parsed WHERE bodystructure IS NOT NULL"
                                ).fetchone()[0] == 4
    with box.open_message(3) as f:
        full = cache_mod.parsed_row(f.read())
    assert box.bodystructure(3) == parse.from_json(json.loads(full[2]))
