"""Local delivery with filters: spam folder per user, site before script, user scripts, vacation,
redirect and reject, on a real Store, Directory and queue spool."""

from __future__ import annotations

import time

import pytest

from pymail.filters import usersettings
from pymail.filters.delivery import FilteringDelivery
from pymail.filters.settings import FilterSettings
from pymail.filters.sieve.storage import ScriptStore, ScriptStoreError
from pymail.queue.envelope import Envelope, Recipient
from pymail.queue.errors import PermanentFailure
from pymail.queue.service import Queue
from pymail.queue.settings import QueueSettings
from pymail.store import Store


def message(score=None, extra=b""):
    head = b"From: Bob <bob@example.org>\r\nTo: alice@example.com\r\nSubject: Hello\r\nMessage-ID: <d1@example.org>\r\n"
    if score is not None:
        head = f"X-Spam-Score: {score}\r\n".encode() + head
    return head + extra + b"\r\nHi Alice.\r\n"


@pytest.fixture
def env(tmp_path, directory):
    store = Store(tmp_path / "mail", fsync=False)
    settings = FilterSettings(spam_threshold=5.0, spam_reject_score=15.0)
    delivery = FilteringDelivery(store, directory, settings, "mx.example.com")
    queue = Queue(tmp_path / "queue", QueueSettings(run_delivery=False, fsync=False), "mx.example.com",
                  store=store, directory=directory, local_delivery=delivery)
    delivery.queue = queue
    return store, delivery, queue, tmp_path


def deliver(env, raw, to="alice@example.com", sender="bob@example.org"):
    store, delivery, queue, tmp = env
    path = tmp / f"spool-{time.monotonic_ns()}"
    path.write_bytes(raw)
    envelope = Envelope("Q1", sender, [Recipient(to, True, to)], time.time(), len(raw))
    return delivery.deliver(envelope, envelope.recipients[0], path)


def count(store, user, mailbox):
    try:
        return store.account(user).mailbox(mailbox).count()
    except Exception:
        return 0


def scripts(env, user="alice@example.com"):
    store = env[0]
    return ScriptStore.for_maildir(store.account(user).root)


def test_plain_delivery_goes_to_inbox(env):
    assert "INBOX" in deliver(env, message())
    assert count(env[0], "alice@example.com", "INBOX") == 1


def test_spam_goes_to_junk_by_default_and_stays_in_inbox_for_tag_users(env, directory):
    deliver(env, message(score=8.0))
    assert count(env[0], "alice@example.com", "Junk") == 1
    usersettings.set_action(directory, "bob@example.com", "tag")
    deliver(env, message(score=8.0), to="bob@example.com")
    assert count(env[0], "bob@example.com", "INBOX") == 1 and count(env[0], "bob@example.com", "Junk") == 0


def test_forged_score_below_the_real_one_is_not_trusted(env):
    # The pipeline prepends its X-Spam-Score; the topmost one is the one read.
    raw = b"X-Spam-Score: 9.0\r\n" + message(score=-50)
    deliver(env, raw)
    assert count(env[0], "alice@example.com", "Junk") == 1


def test_user_script_fileinto_and_flags(env):
    store = scripts(env)
    store.put("main", 'require ["fileinto", "imap4flags", "mailbox"];\n'
                      'if header :contains "subject" "hello" { fileinto :create :flags "\\\\Flagged" "Greetings"; }')
    store.set_active("main")
    assert "Greetings" in deliver(env, message())
    box = env[0].account("alice@example.com").mailbox("Greetings")
    assert box.count() == 1 and "\\Flagged" in box.records()[0].flags


def test_broken_active_script_keeps_the_message(env):
    store = scripts(env)
    store.dir.mkdir(parents=True)
    (store.dir / "bad.sieve").write_text("this is not sieve;")
    import os
    os.symlink("sieve/bad.sieve", store.link)
    assert store.active_script() is not None
    deliver(env, message())
    assert count(env[0], "alice@example.com", "INBOX") == 1


def test_site_before_script_files_spam_whatever_the_user_says(env, tmp_path, directory):
    before = tmp_path / "before.sieve"
    before.write_text('require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric"];\n'
                      'if spamtest :value "ge" :comparator "i;ascii-numeric" "10" { fileinto "Junk"; stop; }\n')
    store, _, queue, tmp = env
    delivery = FilteringDelivery(store, directory, FilterSettings(sieve_before=str(before)), "mx")
    usersettings.set_action(directory, "alice@example.com", "tag")
    s = scripts(env)
    s.put("mine", "keep;")
    s.set_active("mine")
    path = tmp / "m"
    path.write_bytes(message(score=50))
    envelope = Envelope("Q2", "bob@example.org", [Recipient("alice@example.com", True)], time.time())
    delivery.deliver(envelope, envelope.recipients[0], path)
    assert count(store, "alice@example.com", "Junk") == 1 and count(store, "alice@example.com", "INBOX") == 0


def test_vacation_reply_is_queued_once_with_null_sender(env):
    s = scripts(env)
    s.put("away", 'require "vacation"; vacation :days 7 "Back on Monday.";')
    s.set_active("away")
    outcome = deliver(env, message())
    assert "vacation reply to bob@example.org" in outcome
    queued = env[2].dir.envelopes()
    assert len(queued) == 1 and queued[0].sender == "" and queued[0].recipients[0].address == "bob@example.org"
    data = env[2].dir.data_path(queued[0].queue_id).read_bytes()
    assert b"Auto-Submitted: auto-replied" in data and b"Back on Monday." in data
    deliver(env, message())  # same sender again within 7 days: no second reply
    assert len(env[2].dir.envelopes()) == 1
    assert count(env[0], "alice@example.com", "INBOX") == 2
    deliver(env, message(extra=b"Precedence: list\r\n"), sender="carol@example.org")
    assert len(env[2].dir.envelopes()) == 1


def test_redirect_to_a_local_user_and_loop_detection(env):
    s = scripts(env)
    s.put("fw", 'redirect "carol@example.com";')
    s.set_active("fw")
    assert "redirected to carol@example.com" in deliver(env, message())
    queued = env[2].dir.envelopes()
    assert [r.address for r in queued[0].recipients] == ["carol@example.com"]
    assert count(env[0], "alice@example.com", "INBOX") == 0
    looped = b"Delivered-To: alice@example.com\r\n" + message()
    deliver(env, looped)
    assert count(env[0], "alice@example.com", "INBOX") == 1


def test_reject_fails_the_recipient_permanently(env):
    s = scripts(env)
    s.put("no", 'require "reject"; reject "I do not want this.";')
    s.set_active("no")
    with pytest.raises(PermanentFailure, match="I do not want this"):
        deliver(env, message())


def test_script_store_rules(env):
    s = scripts(env)
    with pytest.raises(Exception, match="line 2"):
        s.put("x", "keep;\nbogus;")
    s.put("a", "keep;")
    s.set_active("a")
    with pytest.raises(ScriptStoreError, match="active script"):
        s.delete("a")
    s.rename("a", "b")
    assert s.list() == [("b", True)]
    with pytest.raises(ScriptStoreError):
        s.put("../evil", "keep;")
    s.set_active("")
    assert s.active_name() is None
    s.delete("b")
    assert s.list() == []



def test_every_script_change_syncs_the_directory_that_names_it(env, monkeypatch):
    """A rename, a new name or an unlink is durable only once its directory is fsynced."""
    from pymail.filters.sieve import storage
    s = scripts(env)
    synced = []
    real = storage.sync_path
    monkeypatch.setattr(storage, "sync_path", lambda path: (synced.append(str(path)), real(path)))

    def change(action, *args):
        synced.clear()
        getattr(s, action)(*args)
        return synced

    sieve_dir, home = str(s.dir), str(s.home)
    assert change("put", "a", "keep;") == [sieve_dir]
    assert change("set_active", "a") == [home]
    assert change("rename", "a", "b") == [sieve_dir, home]     # the link follows the script
    assert change("set_active", "") == [home]
    assert change("delete", "b") == [sieve_dir]
    assert s.list() == []

def test_huge_message_skips_sieve_but_keeps_spam_folder(env, monkeypatch):
    from pymail.filters import delivery as delivery_module

    monkeypatch.setattr(delivery_module, "MAX_SIEVE_BYTES", 1000)
    s = scripts(env)
    s.put("fw", 'require "fileinto"; fileinto "Never";')
    s.set_active("fw")
    deliver(env, message(score=9.5, extra=b"X-Pad: " + b"p" * 2000 + b"\r\n"))
    assert count(env[0], "alice@example.com", "Junk") == 1
    assert count(env[0], "alice@example.com", "Never") == 0


def test_quarantined_message_goes_to_junk_and_forged_marks_are_dropped(env):
    from pymail.filters.api import Verdict
    from pymail.filters.headers import rewrite_file
    from pymail.filters.pipeline import merge

    deliver(env, b"X-Pymail-Quarantine: auth\r\n" + message())
    assert count(env[0], "alice@example.com", "Junk") == 1
    # What the pipeline does to an incoming forged mark on an accepted message: removed.
    src = env[3] / "forged"
    src.write_bytes(b"X-Pymail-Quarantine: evil\r\n" + message())
    out = env[3] / "clean"
    rewrite_file(str(src), str(out), merge([Verdict.accept()]))
    deliver(env, out.read_bytes())
    assert count(env[0], "alice@example.com", "INBOX") == 1
