"""SEARCH / UID SEARCH: RFC 3501 keys, CHARSET, ESEARCH (RETURN), SEARCHRES ($)."""

import pytest

from tests.imap.conftest import deliver, message


@pytest.fixture
def box(connect, store):
    deliver(store, message("apple pie", body="crunchy crust\r\n", sender="ann@example.net"))
    deliver(store, message("banana", body="yellow =E2=82=AC\r\n",
                           extra="Content-Transfer-Encoding: quoted-printable\r\nContent-Type: text/plain; charset=utf-8\r\n"),
            flags=["\\Seen"])
    deliver(store, message("=?utf-8?q?Caf=C3=A9?=", body="x" * 5000 + "\r\n",
                           extra="Cc: carol@example.com\r\n"), flags=["\\Flagged", "\\Seen"])
    c = connect()
    c.select("INBOX")
    return c


def s(c, *criteria, uid=False):
    typ, data = (c.uid("SEARCH", *criteria) if uid else c.search(None, *criteria))
    assert typ == "OK", data
    return [int(x) for x in data[0].split()]


def test_flag_keys(box):
    assert s(box, "ALL") == [1, 2, 3]
    assert s(box, "SEEN") == [2, 3]
    assert s(box, "UNSEEN") == [1]
    assert s(box, "FLAGGED") == [3]
    assert s(box, "UNFLAGGED", "SEEN") == [2]
    assert s(box, "RECENT") == [1, 2, 3]
    assert s(box, "NEW") == [1]
    assert s(box, "OLD") == []
    assert s(box, "DELETED") == []
    assert s(box, "UNDELETED") == [1, 2, 3]
    assert s(box, "KEYWORD", "$Nothing") == []
    assert s(box, "UNKEYWORD", "$Nothing") == [1, 2, 3]


def test_header_and_text_keys(box):
    assert s(box, "SUBJECT", "apple") == [1]
    assert s(box, "FROM", "ann@") == [1]
    assert s(box, "TO", "alice") == [1, 2, 3]
    assert s(box, "CC", "carol") == [3]
    assert s(box, "BCC", "x") == []
    assert s(box, "HEADER", "Message-ID", "banana@") == [2]
    assert s(box, "HEADER", "Cc", '""') == [3]
    assert s(box, "BODY", "crunchy") == [1]
    assert s(box, "TEXT", "apple") == [1]
    assert s(box, "TEXT", "crust") == [1]


def test_utf8_charset(box):
    box.literal = "café".encode()
    typ, data = box.search("UTF-8", "SUBJECT")
    assert typ == "OK" and data[0] == b"3"
    box.literal = "€".encode()
    typ, data = box.search("UTF-8", "BODY")
    assert data[0] == b"2"
    typ, data = box.search("KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]


def test_size_date_seq_uid_logic(box):
    assert s(box, "LARGER", "1000") == [3]
    assert s(box, "SMALLER", "1000") == [1, 2]
    assert s(box, "SENTON", "30-Nov-2026") == [1, 2, 3]
    assert s(box, "SENTBEFORE", "30-Nov-2026") == []
    assert s(box, "SENTSINCE", "1-Jan-2020") == [1, 2, 3]
    assert s(box, "SINCE", "1-Jan-2020") == [1, 2, 3]
    assert s(box, "BEFORE", "1-Jan-2020") == []
    assert s(box, "ON", "1-Jan-2020") == []
    assert s(box, "2:*") == [2, 3]
    assert s(box, "UID", "1,3") == [1, 3]
    assert s(box, "OR", "FLAGGED", "UNSEEN") == [1, 3]
    assert s(box, "NOT", "SEEN") == [1]
    assert s(box, "(SEEN FLAGGED)") == [3]
    assert s(box, "1:2", uid=True) == [1, 2]


def test_bad_search(box):
    for bad in [("BOGUS",), ("BEFORE", "yesterday"), ("LARGER", "x")]:
        with pytest.raises(Exception, match="BAD"):
            box.search(None, *bad)


def test_esearch_and_searchres(box):
    typ, _ = box._simple_command("SEARCH", "RETURN", "(MIN MAX COUNT ALL)", "SEEN")
    line = box.untagged_responses.pop("ESEARCH")[0]
    assert line.endswith(b"MIN 2 MAX 3 ALL 2:3 COUNT 2")
    typ, _ = box._simple_command("UID", "SEARCH", "RETURN", "(SAVE)", "FLAGGED")
    assert typ == "OK" and "ESEARCH" not in box.untagged_responses
    typ, data = box.fetch("$", "(UID)")
    assert data == [b"3 (UID 3)"]
    assert s(box, "$") == [3]


def test_within_older_younger(connect, store):
    import time as _time

    acct = store.account("alice@example.org")
    acct.ensure()
    acct.deliver(message("old"), internal_date=_time.time() - 2 * 86400)
    acct.deliver(message("new"))
    c = connect()
    c.select("INBOX")
    assert s(c, "OLDER", "86400") == [1]
    assert s(c, "YOUNGER", "86400") == [2]
    assert s(c, "YOUNGER", "300000") == [1, 2]


def test_status_size(connect, store):
    deliver(store, message("sz"))
    c = connect()
    typ, data = c.status("INBOX", "(SIZE)")
    assert typ == "OK" and b"SIZE %d" % len(message("sz")) in data[0]
