"""The spamd check against a real spamd, with per-user settings in a real directory."""

from __future__ import annotations

from filters_helpers import write_message
from pymail.filters import usersettings
from pymail.filters.api import Action, Envelope, Session
from pymail.filters.pipeline import UNCHECKED_HEADER, CheckSlot, Pipeline
from pymail.filters.spamd import SpamdCheck, SpamdClient
from pymail.testing import services

# Scores 3.8 with Debian's rules offline (MISSING_DATE, MISSING_MID, SUBJ_ALL_CAPS, ...):
# ham at the default threshold 5, spam for a user whose threshold is 3.
MILD = (b"From: a@example.org\r\nTo: alice@example.com\r\nSubject: FREE MONEY NOW!!!\r\n\r\n"
        b"Click here to claim your free money, limited time offer, act now!\r\n")


def envelope(*rcpts, sender="sender@example.org", role="mx", user=None):
    return Envelope(Session("192.0.2.9", 6000, role, authenticated_user=user), sender,
                    list(rcpts) or ["alice@example.com"])


def spam_pipeline(spamd, directory, reject_score=0.0, policy="tempfail", address=None):
    check = SpamdCheck(SpamdClient(address or spamd.address, connect_timeout=2), directory,
                       site_threshold=5.0, site_reject_score=reject_score)
    return Pipeline([CheckSlot(check, fail_policy=policy)])


def headers_of(verdict):
    return dict(verdict.headers)


def gtube_message(tmp_path):
    return write_message(tmp_path, b"This is spam.\r\n" + services.gtube() + b"\r\n", name="gtube.eml")


def test_clean_mail_is_accepted_and_marked_ham(spamd, directory, run, tmp_path):
    path = write_message(tmp_path, b"Hello Alice,\r\nthe minutes of today's meeting are attached.\r\n")
    verdict = run(spam_pipeline(spamd, directory).data(envelope(), path))
    assert verdict.action == Action.ACCEPT and verdict.folder_for("alice@example.com") == "INBOX"
    h = headers_of(verdict)
    assert h["X-Spam-Flag"] == "NO" and float(h["X-Spam-Score"]) < 5
    assert h["X-Spam-Status"].startswith("No, score=")
    assert "X-Spam-Status" in verdict.remove_headers  # forged copies are dropped


def test_gtube_tagged_for_a_user_who_chose_tag(spamd, directory, run, tmp_path):
    usersettings.set_action(directory, "alice@example.com", "tag")
    verdict = run(spam_pipeline(spamd, directory).data(envelope(), gtube_message(tmp_path)))
    assert verdict.action == Action.ACCEPT
    assert verdict.folder_for("alice@example.com") == "INBOX"
    h = headers_of(verdict)
    assert h["X-Spam-Flag"] == "YES" and float(h["X-Spam-Score"]) >= 999
    assert "GTUBE" in h["X-Spam-Status"] and verdict.spam.score >= 999


def test_gtube_goes_to_junk_for_a_user_who_chose_junk(spamd, directory, run, tmp_path):
    usersettings.set_action(directory, "bob@example.com", "junk")
    usersettings.set_action(directory, "alice@example.com", "tag")
    verdict = run(spam_pipeline(spamd, directory).data(
        envelope("bob@example.com", "alice@example.com"), gtube_message(tmp_path)))
    assert verdict.action == Action.ACCEPT
    assert verdict.folder_for("bob@example.com") == "Junk"
    assert verdict.folder_for("alice@example.com") == "INBOX"


def test_gtube_refused_above_the_site_reject_score(spamd, directory, run, tmp_path):
    verdict = run(spam_pipeline(spamd, directory, reject_score=15.0).data(envelope(), gtube_message(tmp_path)))
    assert verdict.action == Action.REJECT
    assert verdict.reply.line().startswith("550 5.7.1 Message refused as spam (score 1000")


def test_user_reject_action_refuses_above_the_users_score(spamd, directory, run, tmp_path):
    usersettings.set_action(directory, "carol@example.com", "reject", reject_score=20)
    verdict = run(spam_pipeline(spamd, directory).data(envelope("carol@example.com"), gtube_message(tmp_path)))
    assert verdict.action == Action.REJECT and verdict.reply.code == 550
    # Below her reject score spam goes to Junk, never dropped.
    mild_path = tmp_path / "mild.eml"
    mild_path.write_bytes(MILD)
    usersettings.set_threshold(directory, "carol@example.com", 3.0)
    verdict = run(spam_pipeline(spamd, directory).data(envelope("carol@example.com"), str(mild_path)))
    assert verdict.action == Action.ACCEPT and verdict.folder_for("carol@example.com") == "Junk"


def test_per_user_threshold_changes_the_outcome(spamd, directory, run, tmp_path):
    path = tmp_path / "mild.eml"
    path.write_bytes(MILD)
    pipeline = spam_pipeline(spamd, directory)
    before = run(pipeline.data(envelope(), str(path)))
    assert 2 < before.spam.score < 5, before.spam  # the fixture message's premise
    assert before.folder_for("alice@example.com") == "INBOX" and headers_of(before)["X-Spam-Flag"] == "NO"
    usersettings.set_threshold(directory, "alice@example.com", 3.0)
    after = run(pipeline.data(envelope(), str(path)))
    assert after.folder_for("alice@example.com") == "Junk" and headers_of(after)["X-Spam-Flag"] == "YES"
    assert "required=3.0" in headers_of(after)["X-Spam-Status"]


def test_allow_list_wins_over_spam_score_and_site_reject(spamd, directory, run, tmp_path):
    pipeline = spam_pipeline(spamd, directory, reject_score=15.0)
    usersettings.add_entry(directory, "alice@example.com", "allow", "Partner.Example.ORG")
    verdict = run(pipeline.data(envelope(sender="news@mail.partner.example.org"), gtube_message(tmp_path)))
    assert verdict.action == Action.ACCEPT and verdict.folder_for("alice@example.com") == "INBOX"
    assert headers_of(verdict)["X-Spam-Flag"] == "NO"
    assert usersettings.remove_entry(directory, "alice@example.com", "allow", "partner.example.org")
    again = run(pipeline.data(envelope(sender="news@mail.partner.example.org"), gtube_message(tmp_path)))
    assert again.action == Action.REJECT


def test_block_list_makes_clean_mail_spam(spamd, directory, run, tmp_path):
    usersettings.add_entry(directory, "alice@example.com", "block", "pest@example.net")
    path = write_message(tmp_path, b"Perfectly normal text.\r\n")
    verdict = run(spam_pipeline(spamd, directory).data(envelope(sender="Pest@Example.NET"), path))
    assert verdict.folder_for("alice@example.com") == "Junk"
    assert verdict.recipients["alice@example.com"].reason == "sender on block list"
    assert usersettings.list_entries(directory, "alice@example.com", "block") == ["pest@example.net"]


def test_authenticated_submission_skips_spamd(spamd, directory, run, tmp_path):
    verdict = run(spam_pipeline(spamd, directory, reject_score=15.0).data(
        envelope(role="mx", user="alice@example.com"), gtube_message(tmp_path)))
    assert verdict.action == Action.ACCEPT and verdict.headers == []


def test_message_over_size_limit_is_not_scanned_but_marked(spamd, directory, run, tmp_path):
    check = SpamdCheck(SpamdClient(spamd.address), directory, max_size=100)
    verdict = run(Pipeline([CheckSlot(check)]).data(envelope(), gtube_message(tmp_path)))
    assert verdict.action == Action.ACCEPT
    assert headers_of(verdict)["X-Spam-Status"].startswith("No, skipped (larger than 100 bytes)")


def test_check_and_process_verbs(spamd, run, tmp_path):
    client = SpamdClient(spamd.address)
    assert run(client.ping())
    path = gtube_message(tmp_path)
    assert run(client.check(path, "alice@example.com")).is_spam
    report, rewritten = run(client.process(path, "alice@example.com"))
    assert report.score >= 999 and b"X-Spam-Flag: YES" in rewritten
    assert services.gtube() in rewritten


def test_spamd_stopped_gives_the_fail_policy(directory, run, tmp_path):
    path = gtube_message(tmp_path)
    with services.spamd_service() as private:
        address = private.address
        up = run(spam_pipeline(None, directory, reject_score=15.0, address=address).data(envelope(), path))
        assert up.action == Action.REJECT
    down = run(spam_pipeline(None, directory, address=address).data(envelope(), path))
    assert down.action == Action.TEMPFAIL and down.reply.line().startswith("451 4.7.1 spamd is unavailable")
    tagged = run(spam_pipeline(None, directory, policy="accept", address=address).data(envelope(), path))
    assert tagged.action == Action.ACCEPT
    assert tagged.headers[0][0] == UNCHECKED_HEADER and tagged.headers[0][1].startswith("spamd (")


def test_bad_settings_are_refused_with_a_clear_message(directory):
    import pytest

    with pytest.raises(usersettings.SettingsError, match="tag, junk, reject"):
        usersettings.set_action(directory, "alice@example.com", "delete")
    with pytest.raises(usersettings.SettingsError, match="not an address or a domain"):
        usersettings.add_entry(directory, "alice@example.com", "allow", "two words")
    loaded = usersettings.load(directory, "nobody@elsewhere.example", 4.0, 12.0)
    assert (loaded.threshold, loaded.action, loaded.reject_score) == (4.0, "junk", 12.0)
