"""QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA, SETQUOTA refused, STATUS DELETED, OVERQUOTA."""

import re

from tests.imap.conftest import PASSWORD, USER, deliver, message


def test_quota_reports_usage_and_limits(connect, store, directory):
    directory.set_quota(USER, quota_bytes=10 * 1024, quota_messages=5)
    deliver(store, message("q1"))
    c = connect()
    typ, data = c.getquotaroot("INBOX")
    assert typ == "OK"
    assert data[0] == [b'"INBOX" ""']
    m = re.match(rb'"" \(STORAGE (\d+) 10 MESSAGE 1 5\)', data[1][0])
    assert m and int(m.group(1)) == 1
    typ, data = c.getquota('""')
    assert typ == "OK" and data[0].startswith(b'"" (STORAGE')
    typ, data = c.setquota('""', "(STORAGE 1)")
    assert typ == "NO" and b"NOPERM" in data[0]
    typ, data = c.getquotaroot("Nope")
    assert typ == "NO"


def test_no_limits_gives_empty_list(connect):
    c = connect()
    typ, data = c.getquotaroot("INBOX")
    assert data[1] == [b'"" ()']


def test_over_quota_append(connect, directory):
    directory.set_quota(USER, quota_messages=1)
    c = connect()
    assert c.append("INBOX", None, None, message("a"))[0] == "OK"
    typ, data = c.append("INBOX", None, None, message("b"))
    assert typ == "NO" and b"OVERQUOTA" in data[0]


def test_status_deleted(connect, store):
    deliver(store, message("d1"))
    deliver(store, message("d2"), flags=["\\Deleted"])
    c = connect()
    typ, data = c.status("INBOX", "(DELETED DELETED-STORAGE)")
    assert re.search(rb"DELETED 1 DELETED-STORAGE \d+", data[0])


def test_capabilities(connect):
    c = connect(login=False)
    c.login(USER, PASSWORD)
    caps = c.capability()[1][0].split()
    assert b"QUOTA" in caps and b"QUOTA=RES-STORAGE" in caps and b"QUOTA=RES-MESSAGE" in caps
