"""SELECT of a folder that has no index yet answers from the first build while the index rows
are still being written (``Index.write_behind``); the commands after it see the whole index."""

from __future__ import annotations

from pymail.store import index as index_mod
from tests.imap.conftest import USER
from tests.store.test_store_bulk_build import FLAG_LETTERS, _fill
from tests.store.test_store_write_behind import COUNT, _committed_rows, held  # noqa: F401


def test_select_answers_while_the_first_build_is_written(store, connect, held):
    acct = store.account(USER)
    acct.ensure()
    inbox = acct.mailbox("INBOX")
    path, index_path = inbox.folder.path, inbox.index.path
    inbox.close()
    _fill(path, COUNT)
    index_mod.remove_files(index_path)

    c = connect()
    typ, data = c.select("INBOX")
    assert (typ, data) == ("OK", [str(COUNT).encode()])
    assert c.response("UIDNEXT")[1] == [str(COUNT + 1).encode()]
    assert _committed_rows(index_path) == 0        # answered before the rows were committed
    held.set()
    typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
    assert typ == "OK" and len(data) == COUNT
    typ, data = c.fetch("1:3", "(RFC822.SIZE INTERNALDATE)")
    assert typ == "OK" and len(data) == 3
    typ, data = c.store("1:5", "+FLAGS.SILENT", "(\\Flagged)")
    assert typ == "OK"
    assert _committed_rows(index_path) == COUNT
    other = connect()
    typ, data = other.status("INBOX", "(MESSAGES UIDNEXT)")
    assert typ == "OK" and f"MESSAGES {COUNT} UIDNEXT {COUNT + 1}".encode() in data[0]
    typ, data = other.select("INBOX")
    typ, data = other.uid("SEARCH", "FLAGGED")
    flagged = {1, 2, 3, 4, 5} | {n + 1 for n in range(COUNT)
                                 if "F" in FLAG_LETTERS[n % len(FLAG_LETTERS)]}
    assert data == [" ".join(map(str, sorted(flagged))).encode()]
