"""Sieve interpreter: core commands and every supported extension (RFC 5228 and friends)."""

from __future__ import annotations

import datetime as dt

import pytest

from pymail.filters.sieve import (Discard, FileInto, Keep, Redirect, Reject, SieveContext,
                                  SieveEnvelope, SieveError, Vacation, VacationStore, compile_script,
                                  evaluate, run_scripts)

MESSAGE = (
    b"From: \"Bob Example\" <bob+news@example.org>\r\n"
    b"To: alice@example.com, Carol <carol@example.net>\r\n"
    b"Cc: team@example.com\r\n"
    b"Subject: =?utf-8?q?R=C3=A9union?= [devel] weekly\r\n"
    b"Date: Fri, 13 Nov 2026 23:30:00 -0500\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"X-Spam-Score: 7.5\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=\"xx\"\r\n"
    b"\r\n"
    b"--xx\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"The meeting moves to room =C3=A9 42.\r\n"
    b"--xx\r\nContent-Type: text/html\r\n\r\n<p>html part SECRET</p>\r\n"
    b"--xx--\r\n"
)
ENVELOPE = SieveEnvelope("bob+news@example.org", "alice+work@example.com")


def run(script, message=MESSAGE, envelope=ENVELOPE, **ctx):
    context = SieveContext(user="alice@example.com", **ctx)
    return evaluate(script, message, envelope, context)


def folders(actions):
    return [a.mailbox for a in actions if isinstance(a, (Keep, FileInto))]


def test_implicit_keep_and_keep():
    assert run("") == [Keep("INBOX", implicit=True)]
    assert run("keep;") == [Keep("INBOX")]
    assert run("", default_mailbox="Junk") == [Keep("Junk", implicit=True)]


def test_fileinto_header_contains_and_decoded_subject():
    script = 'require "fileinto"; if header :contains "subject" "réunion" { fileinto "Meetings"; }'
    assert run(script) == [FileInto("Meetings")]
    assert folders(run(script.replace("réunion", "party"))) == ["INBOX"]


def test_if_elsif_else_allof_anyof_not_size_exists():
    script = '''require "fileinto";
    if allof (exists ["From", "Date"], not exists "X-Nope", size :over 100, size :under 1M) {
        fileinto "A";
    } elsif true { fileinto "B"; } else { fileinto "C"; }
    if anyof (false, header :is "X-Missing" "") { fileinto "D"; }'''
    assert folders(run(script)) == ["A"]


def test_discard_and_stop():
    assert run("discard;") == [Discard()]
    assert folders(run('require "fileinto"; fileinto "X"; stop; fileinto "Y";')) == ["X"]


def test_reject_and_ereject():
    assert run('require "reject"; reject "No thanks";') == [Reject("No thanks")]
    assert run('require "ereject"; ereject "Go away";') == [Reject("Go away", extended=True)]
    # RFC 5429: reject with fileinto is an error → the message is kept, never lost.
    assert run('require ["reject", "fileinto"]; fileinto "X"; reject "no";') == [Keep("INBOX", implicit=True)]


def test_redirect_and_copy():
    assert run('redirect "archive@example.net";') == [Redirect("archive@example.net")]
    acts = run('require ["copy", "fileinto"]; redirect :copy "a@example.net"; fileinto :copy "Saved";')
    assert acts == [Redirect("a@example.net"), FileInto("Saved"), Keep("INBOX", implicit=True)]
    # Too many redirects is a script error: kept in INBOX.
    script = "".join(f'redirect "r{i}@example.net";' for i in range(6))
    assert run(script) == [Keep("INBOX", implicit=True)]


def test_address_parts_and_subaddress():
    s = 'require ["fileinto", "subaddress"]; if address :%s "from" "%s" { fileinto "Y"; }'
    assert folders(run(s % ("localpart :is", "bob+news"))) == ["Y"]
    assert folders(run(s % ("domain :is", "EXAMPLE.org"))) == ["Y"]
    assert folders(run(s % ("user :is", "bob"))) == ["Y"]
    assert folders(run(s % ("detail :is", "news"))) == ["Y"]
    assert folders(run(s % ("all :matches", "*@example.org"))) == ["Y"]
    assert folders(run(s % ("detail :is", "other"))) == ["INBOX"]
    # Without require "subaddress", :user is a script error.
    with pytest.raises(SieveError, match='require "subaddress"'):
        compile_script('if address :user "from" "bob" { keep; }')


def test_envelope():
    s = 'require ["envelope", "fileinto", "subaddress"]; if envelope :detail "to" "work" { fileinto "Work"; }'
    assert folders(run(s)) == ["Work"]
    null = 'require ["envelope", "fileinto"]; if envelope :is "from" "" { fileinto "Bounces"; }'
    assert folders(run(null, envelope=SieveEnvelope("", "alice@example.com"))) == ["Bounces"]


def test_imap4flags():
    script = '''require ["imap4flags", "fileinto"];
    setflag "\\\\seen";
    addflag ["$Work", "\\\\Flagged"];
    removeflag "\\\\Seen";
    if hasflag :contains "work" { fileinto "Flagged"; }
    addflag "myvar" "one two";
    if hasflag "myvar" "two" { keep :flags "\\\\Answered"; }'''
    acts = run(script)
    assert acts == [FileInto("Flagged", ("$Work", "\\Flagged")), Keep("INBOX", ("\\Answered",))]


def test_body_text_raw_content():
    s = 'require ["body", "fileinto"]; if body %s :contains "%s" { fileinto "Hit"; }'
    assert folders(run(s % (":text", "room é 42"))) == ["Hit"]  # decoded quoted-printable
    assert folders(run(s % (":raw", "=C3=A9 42"))) == ["Hit"]
    assert folders(run(s % (':content "text/html"', "secret"))) == ["Hit"]
    assert folders(run(s % (':content "text/plain"', "secret"))) == ["INBOX"]


def test_variables_and_match_variables():
    script = '''require ["variables", "fileinto"];
    set :lower :upperfirst "who" "BOB";
    set :length "n" "${who}";
    if header :matches "Subject" "* [*] *" { fileinto "Lists/${2}/${who}${n}"; }
    set :quotewildcard "q" "a*b";
    if string :is "${q}" "a\\\\*b" { fileinto "Quoted"; }
    if string :count "eq" :comparator "i;ascii-numeric" ["x", "", "y"] "2" { fileinto "Two"; }'''
    acts = run(script.replace('require ["variables", "fileinto"]',
                              'require ["variables", "fileinto", "relational", "comparator-i;ascii-numeric"]'))
    assert folders(acts) == ["Lists/devel/Bob3", "Quoted", "Two"]


def test_relational_count_and_value():
    s = ('require ["relational", "fileinto", "comparator-i;ascii-numeric"];'
         'if %s { fileinto "Y"; }')
    assert folders(run(s % 'address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3"')) == ["Y"]
    assert folders(run(s % 'address :count "gt" :comparator "i;ascii-numeric" ["to", "cc"] "3"')) == ["INBOX"]
    assert folders(run(s % 'header :value "gt" :comparator "i;ascii-numeric" "X-Spam-Score" "5"')) == ["Y"]
    assert folders(run(s % 'header :value "lt" "subject" "B"')) == ["INBOX"]
    with pytest.raises(SieveError, match="relational operator"):
        compile_script('require "relational"; if header :value "bigger" "a" "b" { keep; }')


def test_spamtest_and_virustest():
    s = ('require ["spamtest", "virustest", "relational", "comparator-i;ascii-numeric", "fileinto"];'
         'if spamtest :value "ge" :comparator "i;ascii-numeric" "%s" { fileinto "Junk"; }')
    assert folders(run(s % "10", spam_score=7.5, spam_threshold=5.0)) == ["Junk"]
    assert folders(run(s % "10", spam_score=2.0, spam_threshold=5.0)) == ["INBOX"]
    assert folders(run(s % "4", spam_score=2.0, spam_threshold=5.0)) == ["Junk"]  # 1 + 0.4*9 = 4
    untested = ('require ["spamtest", "fileinto"]; if spamtest :is "0" { fileinto "Untested"; }')
    assert folders(run(untested)) == ["Untested"]
    plus = ('require ["spamtestplus", "relational", "comparator-i;ascii-numeric", "fileinto"];'
            'if spamtest :percent :value "eq" :comparator "i;ascii-numeric" "40" { fileinto "P"; }')
    assert folders(run(plus, spam_score=2.0, spam_threshold=5.0)) == ["P"]
    virus = 'require ["virustest", "fileinto"]; if virustest :is "1" { fileinto "Clean"; }'
    assert folders(run(virus, virus_status=1)) == ["Clean"]
    assert folders(run(virus, virus_status=0)) == ["INBOX"]


def test_mailbox_exists_and_create():
    s = ('require ["mailbox", "fileinto"]; if mailboxexists "Work" { fileinto "Work"; }'
         'else { fileinto :create "New"; }')
    assert run(s, mailbox_exists=lambda n: n in ("INBOX", "Work")) == [FileInto("Work")]
    assert run(s) == [FileInto("New", create=True)]


def test_date_and_currentdate():
    s = 'require ["date", "fileinto", "relational"]; if %s { fileinto "Y"; }'
    # 23:30 -0500 is 04:30 UTC on the 14th.
    assert folders(run(s % 'date :originalzone "date" "day" "13"')) == ["Y"]
    assert folders(run(s % 'date :zone "+0000" "date" "date" "2026-11-14"')) == ["Y"]
    assert folders(run(s % 'date :zone "+0000" "date" "weekday" "6"')) == ["Y"]  # Saturday
    assert folders(run(s % 'date :zone "+0000" "date" "hour" "04"')) == ["Y"]
    assert folders(run(s % 'date :value "ge" :originalzone "date" "iso8601" "2026-11-13T23:00"')) == ["Y"]
    assert folders(run(s % 'date :is "x-missing" "year" "2026"')) == ["INBOX"]
    now = dt.datetime(2026, 12, 24, 10, 0, tzinfo=dt.timezone.utc)
    holiday = s % 'allof (currentdate :zone "+0100" :value "ge" "date" "2026-12-24", currentdate :zone "+0100" "hour" "11")'
    assert folders(run(holiday, now=now)) == ["Y"]


def test_matches_wildcards_and_comparators():
    s = 'require "fileinto"; if header %s "subject" "%s" { fileinto "Y"; }'
    assert folders(run(s % (":matches", "R?union *"))) == ["Y"]
    assert folders(run(s % (':matches :comparator "i;octet"', "r?union*"))) == ["INBOX"]
    assert folders(run(s % (':is :comparator "i;ascii-casemap"', "RÉUNION [DEVEL] WEEKLY"))) == ["INBOX"]
    assert folders(run(s % (':is :comparator "i;ascii-casemap"', "Réunion [DEVEL] WEEKLY"))) == ["Y"]


@pytest.mark.parametrize("script, line, message", [
    ('require "fileinto";\nfileinto "a"\nkeep;', 3, "expected ';'"),
    ('if true {\n keep;\n', 3, "end of script"),
    ('keep;\nfrobnicate;', 2, "unknown command"),
    ('\n\nfileinto "x";', 3, 'require "fileinto"'),
    ('require "nonesuch";', 1, "unsupported extension"),
    ('keep;\nrequire "fileinto";', 2, "require must come before"),
    ('else { keep; }', 1, "without a preceding if"),
    ('if header :is "a" { keep; }', 1, "takes 2 argument"),
    ('if header :contains :is "a" "b" { keep; }', 1, "cannot be used with"),
    ('keep;\n"unterminated', 2, "unterminated string"),
    ('require "vacation";\nvacation text:\nhello\n', 2, "unterminated multi-line"),
])
def test_errors_carry_line_numbers(script, line, message):
    with pytest.raises(SieveError, match=message) as info:
        compile_script(script)
    assert info.value.line == line


def test_a_script_error_keeps_the_message():
    result = run_scripts([], "frobnicate;", MESSAGE, ENVELOPE, SieveContext("alice@example.com"))
    assert result.actions == [Keep("INBOX", implicit=True)] and "unknown command" in result.errors[0]


def test_multiline_string_and_comments():
    script = ('require "vacation"; /* a\nblock comment */\nvacation :days 3 text:\nline one\n..dot\n.\n;')
    acts = run(script.replace('require "vacation"', 'require ["vacation"]'),
               envelope=SieveEnvelope("bob@example.org", "alice@example.com"))
    vac = [a for a in acts if isinstance(a, Vacation)][0]
    assert vac.reason == "line one\r\n.dot\r\n"


def test_site_before_script_cannot_be_overridden():
    before = 'require ["spamtest", "fileinto", "relational", "comparator-i;ascii-numeric"];' \
             'if spamtest :value "ge" :comparator "i;ascii-numeric" "10" { fileinto "Junk"; stop; }'
    user = 'require "fileinto"; fileinto "Mine";'
    ctx = SieveContext("alice@example.com", spam_score=20.0)
    assert run_scripts([before], user, MESSAGE, ENVELOPE, ctx).actions == [FileInto("Junk")]
    ctx.spam_score = 1.0
    assert run_scripts([before], user, MESSAGE, ENVELOPE, ctx).actions == [FileInto("Mine")]
    # The before script's actions stand even when the user's script discards or fails.
    tag = 'require "fileinto"; fileinto :copy "Audit";'.replace('"fileinto"', '["fileinto", "copy"]')
    assert run_scripts([tag], "discard;", MESSAGE, ENVELOPE, ctx).actions == [FileInto("Audit")]
    broken = run_scripts([tag], "nonsense;", MESSAGE, ENVELOPE, ctx)
    assert broken.actions == [FileInto("Audit"), Keep("INBOX", implicit=True)]


# -- vacation (RFC 5230) -------------------------------------------------------------------------

VACATION = 'require "vacation"; vacation :days 7 :subject "Away" "I am away until Monday.";'


def vacation_of(message=MESSAGE, sender="bob@example.org", store=None, now=None, script=VACATION):
    context = SieveContext("alice@example.com", vacation_store=store, now=now)
    acts = evaluate(script, message, SieveEnvelope(sender, "alice@example.com"), context)
    assert Keep("INBOX", implicit=True) in acts  # vacation never replaces delivery
    return [a for a in acts if isinstance(a, Vacation)]


def test_vacation_reply_once_per_days_per_sender(tmp_path):
    store = VacationStore(tmp_path / "vacation.json")
    t0 = dt.datetime(2026, 7, 1, 12, tzinfo=dt.timezone.utc)
    first = vacation_of(store=store, now=t0)
    assert len(first) == 1
    reply = first[0]
    assert (reply.to, reply.sender, reply.subject) == ("bob@example.org", "alice@example.com", "Away")
    built = reply.build("mx.example.com")
    assert b"Auto-Submitted: auto-replied" in built and b"In-Reply-To: <m1@example.org>" in built
    assert vacation_of(store=store, now=t0 + dt.timedelta(days=3)) == []
    assert len(vacation_of(sender="dave@example.org", store=store, now=t0)) == 1  # per sender
    assert len(vacation_of(store=store, now=t0 + dt.timedelta(days=7, seconds=1))) == 1
    # Another :handle is another reply series.
    other = VACATION.replace(':subject "Away"', ':handle "h2" :subject "Away"')
    assert len(vacation_of(store=store, now=t0 + dt.timedelta(days=8), script=other)) == 1


def test_vacation_default_subject():
    script = 'require "vacation"; vacation "Away.";'
    assert vacation_of(script=script)[0].subject == "Auto: Réunion [devel] weekly"


@pytest.mark.parametrize("header", [
    b"List-Id: <devel.example.org>\r\n", b"Precedence: bulk\r\n", b"Precedence: list\r\n",
    b"Precedence: junk\r\n", b"Auto-Submitted: auto-generated\r\n", b"List-Unsubscribe: <mailto:x@y.z>\r\n",
])
def test_vacation_never_to_lists_or_automatic_mail(header):
    assert vacation_of(message=header + MESSAGE) == []


@pytest.mark.parametrize("sender", ["", "MAILER-DAEMON@example.org", "owner-devel@example.org",
                                    "devel-request@example.org"])
def test_vacation_never_to_null_or_robot_senders(sender):
    assert vacation_of(sender=sender) == []


def test_vacation_only_when_addressed_to_the_user():
    message = MESSAGE.replace(b"To: alice@example.com, ", b"To: ")
    assert vacation_of(message=message) == []
    with_addresses = VACATION.replace(':days 7', ':days 7 :addresses ["team@example.com"]')
    assert len(vacation_of(message=message, script=with_addresses)) == 1
    assert vacation_of(message=MESSAGE.replace(b"alice@", b"Alice+x@"))  # subaddress of the user


def test_matches_cannot_be_made_to_backtrack_forever():
    import time

    subject = b"Subject: " + b"a" * 5000 + b"\r\n"
    script = 'require "fileinto"; if header :matches "subject" "*a*a*a*a*a*a*a*a*a*a*a*a*b" { fileinto "X"; }'
    start = time.monotonic()
    assert folders(run(script, message=subject + b"\r\nbody\r\n")) == ["INBOX"]
    assert time.monotonic() - start < 2


def test_wildcard_matcher_edge_cases():
    from pymail.filters.sieve.match import wildcard_match

    cases = [("abc", "a*c", True), ("abc", "a?c", True), ("abc", "a\\*c", False), ("a*c", "a\\*c", True),
             ("", "*", True), ("x", "", False), ("abcabc", "*bc", True), ("ab", "a*b*", True),
             ("ab", "*c*", False), ("a?", "a\\?", True), ("ab", "a\\?", False)]
    for value, pattern, expected in cases:
        assert wildcard_match(value, pattern) is expected, (value, pattern)
