"""QRESYNC (RFC 7162 §3.2): ENABLE, SELECT (QRESYNC ...), VANISHED, UID FETCH VANISHED, CLOSED."""

import re

from tests.imap.conftest import deliver, message


def select_lines(r, tag, cmd):
    r.send(tag + b" " + cmd + b"\r\n")
    return r.until(tag)


def test_qresync_select_and_vanished(raw, connect, store):
    for i in range(4):
        deliver(store, message(f"q{i}"))
    r = raw(login=True)
    assert select_lines(r, b"e", b"ENABLE QRESYNC")[0] == b"* ENABLED QRESYNC\r\n"
    lines = select_lines(r, b"s", b"SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(lines)).group(1))
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(lines)).group(1))
    # another session changes things while we are away
    select_lines(r, b"u", b"UNSELECT")
    other = connect()
    other.select("INBOX")
    other.store("2", "+FLAGS.SILENT", "(\\Deleted)")
    other.expunge()
    other.store("3", "+FLAGS.SILENT", "(\\Flagged)")  # message with UID 4
    lines = select_lines(r, b"s2", b"SELECT INBOX (QRESYNC (%d %d 1:4))" % (uidvalidity, highest))
    text = b"".join(lines)
    assert b"* VANISHED (EARLIER) 2\r\n" in text
    assert re.search(rb"\* 3 FETCH \(UID 4 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)", text)
    assert b"* 1 FETCH" not in text
    # expunges now arrive as VANISHED
    other.store("1", "+FLAGS.SILENT", "(\\Deleted)")
    other.expunge()
    lines = select_lines(r, b"n", b"NOOP")
    assert b"* VANISHED 1\r\n" in lines and not any(b"EXPUNGE" in ln for ln in lines)
    lines = select_lines(r, b"f", b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % highest)
    assert lines[0] == b"* VANISHED (EARLIER) 1:2\r\n"
    # selecting another mailbox says [CLOSED] first
    lines = select_lines(r, b"x", b"EXAMINE Trash")
    assert lines[0] == b"* OK [CLOSED] Previous mailbox closed\r\n"


def test_qresync_needs_enable(raw, store):
    r = raw(login=True)
    lines = select_lines(r, b"s", b"SELECT INBOX (QRESYNC (1 1))")
    assert lines[-1].startswith(b"s BAD")
    select_lines(r, b"s2", b"SELECT INBOX")
    lines = select_lines(r, b"f", b"UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)")
    assert lines[-1].startswith(b"f BAD")


def test_qresync_uidvalidity_mismatch_is_plain_select(raw, store):
    deliver(store, message("m"))
    r = raw(login=True)
    select_lines(r, b"e", b"ENABLE QRESYNC")
    lines = select_lines(r, b"s", b"SELECT INBOX (QRESYNC (1 1))")
    assert lines[-1].startswith(b"s OK") and not any(b"VANISHED" in ln for ln in lines)
