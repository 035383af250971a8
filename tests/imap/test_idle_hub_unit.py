"""IdleHub bookkeeping without sockets: a session leaving IDLE after the hub closed its inotify
descriptor (the last session's remove() closes it while another remove() still waits for a
poll) must not fail — it once answered DONE with NO [SERVERBUG]."""

from __future__ import annotations

from twisted.internet import defer
from twisted.python.filepath import FilePath

from pymail.imap.idlehub import FolderState, IdleHub


class FakeSession:
    selected = None


def test_remove_after_the_notifier_was_closed(tmp_path):
    hub = IdleHub(0.5)
    session = FakeSession()
    folder = FolderState()
    folder.watched = [FilePath(str(tmp_path / "new")), FilePath(str(tmp_path / "cur"))]
    hub.sessions.add(session)
    hub._keys[session] = "folder"
    hub._folders["folder"] = folder
    hub._notifier = None                       # closed by another session's remove()
    d = defer.ensureDeferred(hub.remove(session))
    failures = []
    d.addErrback(failures.append)
    assert d.called and not failures, failures
    assert folder.watched == [] and "folder" not in hub._folders
