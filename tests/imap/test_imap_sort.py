"""SORT (RFC 5256), SORT=DISPLAY (RFC 5957), THREAD=ORDEREDSUBJECT and THREAD=REFERENCES."""

import pytest

from pymail.imap.sortkeys import base_subject, extract_subject
from tests.imap.conftest import deliver


def msg(subject, date, frm="a@example.com", to="alice@example.org", msgid=None, refs=None, body="x"):
    lines = [f"From: {frm}", f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if msgid:
        lines.append(f"Message-ID: {msgid}")
    if refs:
        lines.append(f"References: {refs}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


@pytest.mark.parametrize("raw,base,reply", [
    ("Re: hello", "HELLO", True), ("RE: [list] Fwd: hello (fwd)", "HELLO", True),
    ("[Fwd: hello]", "HELLO", True), ("[list] hello", "HELLO", False), ("[only]", "[ONLY]", False),
    ("  hello   world  ", "HELLO WORLD", False), ("=?utf-8?q?Re=3A_caf=C3=A9?=", "CAFÉ", True),
    ("", "", False),
])
def test_base_subject(raw, base, reply):
    assert extract_subject(raw) == (base, reply)
    assert base_subject(raw) == base


@pytest.fixture
def box(connect, store):
    deliver(store, msg("beta", "Mon, 01 Jan 2024 10:00:00 +0000", frm="Zed <zed@example.com>", body="x" * 300))
    deliver(store, msg("Re: alpha", "Sun, 31 Dec 2023 10:00:00 +0000", frm="bob@example.com"))
    deliver(store, msg("alpha", "Tue, 02 Jan 2024 10:00:00 +0000", frm="Anna <carl@example.com>", body="x" * 100))
    c = connect()
    c.select("INBOX")
    return c


def sort(c, criteria, uid=False):
    typ, data = (c.uid("SORT", criteria, "UTF-8", "ALL") if uid else c.sort(criteria, "UTF-8", "ALL"))
    assert typ == "OK", data
    return [int(x) for x in data[0].split()]


def test_sort_criteria(box):
    assert sort(box, "(SUBJECT)") == [2, 3, 1]
    assert sort(box, "(SUBJECT DATE)") == [2, 3, 1]
    assert sort(box, "(REVERSE SUBJECT REVERSE DATE)") == [1, 3, 2]
    assert sort(box, "(DATE)") == [2, 1, 3]
    assert sort(box, "(REVERSE DATE)") == [3, 1, 2]
    assert sort(box, "(SIZE)") == [2, 3, 1]
    assert sort(box, "(ARRIVAL)") == [1, 2, 3]
    assert sort(box, "(FROM)") == [2, 3, 1]  # bob, carl, zed (mailbox names)
    assert sort(box, "(DISPLAYFROM)") == [3, 2, 1]  # Anna, bob@example.com, Zed
    assert sort(box, "(SUBJECT)", uid=True) == [2, 3, 1]


def test_sort_errors(box):
    for bad in ["(BOGUS)", "(REVERSE)", "(SUBJECT REVERSE)"]:
        with pytest.raises(Exception, match="BAD"):
            box.sort(bad, "UTF-8", "ALL")
    typ, data = box.sort("(SUBJECT)", "KOI8-R", "ALL")
    assert typ == "NO" and b"BADCHARSET" in data[0]


def test_thread_orderedsubject(box):
    typ, data = box.thread("ORDEREDSUBJECT", "UTF-8", "ALL")
    assert data == [b"(2 3)(1)"]


def test_thread_references(connect, store):
    deliver(store, msg("root", "Mon, 01 Jan 2024 10:00:00 +0000", msgid="<r@x>"))
    deliver(store, msg("Re: root", "Mon, 01 Jan 2024 11:00:00 +0000", msgid="<a@x>", refs="<r@x>"))
    deliver(store, msg("Re: root", "Mon, 01 Jan 2024 12:00:00 +0000", msgid="<b@x>", refs="<r@x>"))
    deliver(store, msg("Re: root", "Mon, 01 Jan 2024 13:00:00 +0000", msgid="<c@x>", refs="<r@x> <a@x>"))
    deliver(store, msg("other", "Mon, 01 Jan 2024 09:00:00 +0000", msgid="<o@x>"))
    deliver(store, msg("Re: lost parent", "Mon, 01 Jan 2024 14:00:00 +0000", msgid="<l1@x>", refs="<gone@x>"))
    deliver(store, msg("Re: lost parent", "Mon, 01 Jan 2024 15:00:00 +0000", msgid="<l2@x>", refs="<gone@x>"))
    c = connect()
    c.select("INBOX")
    typ, data = c.thread("REFERENCES", "UTF-8", "ALL")
    assert data == [b"(5)(1 (2 4)(3))((6)(7))"]
    typ, data = c.uid("THREAD", "REFERENCES", "UTF-8", "1:4")
    assert data == [b"(1 (2 4)(3))"]


def test_esort(box):
    typ, _ = box._simple_command("SORT", "RETURN", "(MIN MAX COUNT ALL)", "(SUBJECT)", "UTF-8", "ALL")
    assert typ == "OK"
    line = box.untagged_responses.pop("ESEARCH")[0]
    assert line.endswith(b"MIN 1 MAX 3 ALL 2:3,1 COUNT 3")
    typ, _ = box._simple_command("UID", "SORT", "RETURN", "()", "(REVERSE ARRIVAL)", "UTF-8", "ALL")
    assert box.untagged_responses.pop("ESEARCH")[0].endswith(b"UID ALL 3,2,1")
