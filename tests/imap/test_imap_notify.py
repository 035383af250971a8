"""NOTIFY (RFC 5465): initial STATUS, unsolicited STATUS for other mailboxes, LIST on mailbox
and subscription changes, refused events, NOTIFY NONE."""

import re

from tests.imap.conftest import USER, deliver, message


def cmd(r, tag, text):
    r.send(tag + b" " + text + b"\r\n")
    return r.until(tag)


def wait_for(r, pattern, timeout=4):
    r.sock.settimeout(timeout)
    while True:
        ln = r.line()
        if re.search(pattern, ln):
            return ln


def test_status_notifications(raw, connect, store):
    acct = store.account(USER)
    acct.ensure()
    acct.create_mailbox("Lists")
    deliver(store, message("l1"), mailbox="Lists")
    r = raw(login=True)
    lines = cmd(r, b"n", b"NOTIFY SET STATUS (mailboxes Lists (MessageNew MessageExpunge))")
    assert re.match(rb'\* STATUS "Lists" \(MESSAGES 1 UIDNEXT 2 UIDVALIDITY \d+\)\r\n', lines[0])
    assert lines[-1].startswith(b"n OK")
    deliver(store, message("l2"), mailbox="Lists")  # no command from the client: pushed
    assert re.match(rb'\* STATUS "Lists" \(MESSAGES 2 UIDNEXT 3 ', wait_for(r, rb"STATUS"))
    lines = cmd(r, b"m", b"NOTIFY SET STATUS (mailboxes Lists (MessageNew MessageExpunge FlagChange))")
    assert b"HIGHESTMODSEQ" in lines[0]
    other = connect()
    other.select("Lists")
    other.store("1", "+FLAGS", "(\\Flagged)")
    assert b"HIGHESTMODSEQ" in wait_for(r, rb'STATUS "Lists"')
    assert cmd(r, b"x", b"NOTIFY NONE")[-1].startswith(b"x OK")
    deliver(store, message("l3"), mailbox="Lists")
    r.sock.settimeout(2.5)
    lines = cmd(r, b"y", b"NOOP")
    assert not any(b"STATUS" in ln for ln in lines)


def test_mailbox_name_and_subscription_events(raw, connect):
    r = raw(login=True)
    assert cmd(r, b"n", b"NOTIFY SET (personal (MailboxName SubscriptionChange))")[-1].startswith(b"n OK")
    other = connect()
    other.create("Fresh")
    assert wait_for(r, rb'"Fresh"') == b'* LIST () "/" "Fresh"\r\n'
    other.subscribe("Fresh")
    assert wait_for(r, rb'"Fresh"').startswith(b"* LIST (\\Subscribed)")
    other.delete("Fresh")
    assert wait_for(r, rb'"Fresh"') == b'* LIST (\\NonExistent) "/" "Fresh"\r\n'


def test_bad_notify(raw):
    r = raw(login=True)
    assert cmd(r, b"a", b"NOTIFY SET (personal (MessageNew))")[-1].startswith(b"a BAD")
    assert cmd(r, b"b", b"NOTIFY SET (personal (AnnotationChange))")[-1].startswith(b"b NO [BADEVENT")
    assert cmd(r, b"c", b"NOTIFY SET (selected (MessageNew (UID) MessageExpunge))")[-1].startswith(b"c NO [BADEVENT")
    assert cmd(r, b"d", b"NOTIFY SET (bogus (MessageNew MessageExpunge))")[-1].startswith(b"d BAD")
    assert cmd(r, b"e", b"NOTIFY BOGUS")[-1].startswith(b"e BAD")
