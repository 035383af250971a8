"""SEARCH HEADER's raw-header prefilter (``Message.cannot_match``) never rules out a message the
full parse would match, on awkward headers; and a live UID SEARCH HEADER agrees with it."""

from __future__ import annotations

import itertools

from pymail.imap.commands.search import Message, _needle, _one_header_key

HEADERS = [
    b"Subject: plain words here\n",
    b"Subject: folded\n  over two\tlines\n",
    b"SUBJECT : spaced name\r\nX-Other: value\r\n",
    b"Subject: =?utf-8?q?caf=C3=A9_time?=\n",
    b"Subject: caf\xc3\xa9 raw utf8\n",
    b"Subject: first\nSubject: second one\n",
    b"X-A: a\rSubject: after bare cr\n",
    b"X-Sub: not a subject\nComments: subject: inside\n",
    b"From: Real Name <who@example.org>\nTo: other@example.org\n",
    b"subject:nospace\n",
    b"Subject:\t  \ttabbed lead\r\n\r\n",
    b"Subject:\n continued only\n",
    b"X-Bad line without colon\nSubject: after bad line\n",
    b": empty name\nSubject: after empty name\n",
    b"Subject: one\r\n\tTwo Three\r\nsubject: FOUR\r\n",
    b"Subject: spaces   inside  \n",
    b"a:b: colon in value\nK: kelvin\n",
]
NEEDLES = [b"colon", b"kelvin", b"one", b"two three", b"four", b"tabbed", b"continued", b"after bad", b"after empty",
           b"spaces   inside", b"inside  ", b" tabbed", b"\ttwo", b"x-bad", b"subject", b"plain", b"over two", b"over", b"spaced", b"caf\xc3\xa9", b"second", b"after",
           b"inside", b"nospace", b"real name", b"who@example.org", b"lines", b"zzz", b"=?",
           b"\tlines", b"two\tlines"]
NAMES = ["Subject", "X-Other", "From", "Comments", "X-Sub", "a:b", "a", "\u212a", "subject "]


def test_prefilter_never_hides_a_match(store):
    account = store.account("alice@example.org")
    account.ensure()
    for header in HEADERS:
        account.deliver(b"Message-ID: <x@y>\n" + header + b"\nbody\n")
    with account.mailbox("INBOX") as mb:
        uids = mb.uids()
        mb.cache_all()
        heads = mb.raw_headers_many(uids)
        assert set(heads) == set(uids)
        ruled_out = quick_answers = 0
        for uid, name, raw_needle in itertools.product(uids, NAMES, NEEDLES):
            needle = _needle(raw_needle)
            slow = any(needle in v.casefold() for v in Message(mb, uid).headers(name))
            fast = Message(mb, uid, heads[uid])
            quick = fast.quick_header_match(name, needle)
            if quick is not None:
                quick_answers += 1
                assert quick == slow, (uid, name, raw_needle)
            bulk = _one_header_key(("header", name, raw_needle))
            if bulk is not None:
                answer = bulk(heads[uid])
                if answer is not None:
                    assert answer == slow, (uid, name, raw_needle)
                if quick is not None:
                    assert answer == quick, (uid, name, raw_needle)
            if fast.cannot_match(name, needle):
                ruled_out += 1
                assert not slow, (uid, name, raw_needle)
            assert any(needle in v.casefold() for v in fast.headers(name)) == slow
        assert ruled_out > len(uids) * len(NAMES) * len(NEEDLES) // 3
        assert quick_answers > len(uids) * len(NAMES) * len(NEEDLES) // 4


def test_uid_search_header_live(store, connect):
    account = store.account("alice@example.org")
    account.ensure()
    for header in HEADERS:
        account.deliver(b"Message-ID: <x@y>\n" + header + b"\nbody\n")
    c = connect()
    c.select("INBOX")
    for needle, want in [("plain", [1]), ("over two", [2]), ("spaced", []), ("caf", [4, 5]), ("time", [4]),
                         ("second", [6]), ("after", [7, 14]), ("one", [6, 15]), ("four", [15]), ("two three", [15]), ("tabbed", [11]), ("inside", [16]), ("zzz", [])]:
        typ, data = c.uid("SEARCH", "HEADER", "Subject", f'"{needle}"')
        assert typ == "OK"
        got = [int(x) for x in data[0].split()]
        assert got == want, (needle, got)
