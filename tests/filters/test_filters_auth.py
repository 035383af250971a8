"""DNSBL, SPF, DKIM signing/verification and DMARC, with answers from a DNS server the test runs."""

from __future__ import annotations

import argparse

import pytest

from filters_helpers import write_message
from pymail.filters import dkimsign
from pymail.filters.api import Action, Envelope, Session
from pymail.filters.authcheck import AuthCheck, check_spf
from pymail.filters.dkimsign import DkimSignCheck
from pymail.filters.dnsbl import DnsblCheck, query_name
from pymail.filters.dnsutil import Resolver
from pymail.filters.headers import rewrite_file
from pymail.filters.pipeline import CheckSlot, Pipeline
from pymail.filters.settings import FilterSettings
from pymail.filters.spamd import SpamdCheck, SpamdClient
from pymail.testing import services

GOOD_IP, BAD_IP, LISTED_IP = "192.0.2.10", "198.51.100.7", "203.0.113.5"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("dkim")
    _, txt = dkimsign.generate_key(d, "example.org", "sel", 1024)
    _, txt_q = dkimsign.generate_key(d, "quarantine.example", "sel", 1024)
    return d, txt, txt_q


@pytest.fixture(scope="module")
def dns(keys):
    _, txt, txt_q = keys
    records = {
        ("example.org", "TXT"): ['"v=spf1 ip4:192.0.2.0/24 -all"'],
        ("_dmarc.example.org", "TXT"): ['"v=DMARC1; p=reject; adkim=r; aspf=r"'],
        ("sel._domainkey.example.org", "TXT"): [_txt(txt)],
        ("quarantine.example", "TXT"): ['"v=spf1 -all"'],
        ("_dmarc.quarantine.example", "TXT"): ['"v=DMARC1; p=quarantine"'],
        ("sel._domainkey.quarantine.example", "TXT"): [_txt(txt_q)],
        ("nopolicy.example", "TXT"): ['"v=spf1 ~all"'],
        (query_name(LISTED_IP, "bl.test"), "A"): ["127.0.0.2"],
        (query_name(LISTED_IP, "other.test"), "A"): ["127.255.255.254"],  # "query refused": no listing
    }
    with services.dns_service(records) as server:
        yield server


def _txt(value: str) -> str:
    return " ".join(f'"{value[i:i + 200]}"' for i in range(0, len(value), 200))


@pytest.fixture
def resolver(dns):
    return Resolver(["127.0.0.1"], dns.port, timeout=2.0)


def mail(tmp_path, sender_domain="example.org", body=b"Hello Alice.\r\n", name="m.eml"):
    path = tmp_path / name
    path.write_bytes(f"From: Bob <bob@{sender_domain}>\r\nTo: alice@example.com\r\nSubject: hi\r\n"
                     f"Date: Mon, 30 Nov 2026 01:00:00 +0000\r\nMessage-ID: <a1@{sender_domain}>\r\n\r\n".encode()
                     + body)
    return str(path)


def session(ip, helo="mail.example.org", user=None, role="mx"):
    return Session(ip, 40000, role, helo=helo, authenticated_user=user)


def signed(tmp_path, keys, run, domain="example.org", name="signed.eml"):
    """A message signed by DkimSignCheck for an authenticated sender, headers applied."""
    path = mail(tmp_path, domain, name="raw-" + name)
    sign = Pipeline([CheckSlot(DkimSignCheck(keys[0], "sel"), roles=("submission",))])
    envelope = Envelope(session("127.0.0.1", role="submission", user=f"bob@{domain}"), f"bob@{domain}", ["a@x.test"])
    verdict = run(sign.data(envelope, path))
    assert verdict.headers and verdict.headers[0][0] == "DKIM-Signature"
    out = tmp_path / name
    rewrite_file(path, str(out), verdict)
    return str(out)


def auth_pipeline(resolver, **kw):
    return Pipeline([CheckSlot(AuthCheck(resolver, "mx.example.com", **kw))])


def ar_header(verdict):
    return dict(verdict.headers)["Authentication-Results"].replace("\r\n\t", " ")


def test_spf_results(resolver):
    assert check_spf(resolver, GOOD_IP, "bob@example.org", "mail.example.org")[0] == "pass"
    assert check_spf(resolver, BAD_IP, "bob@example.org", "mail.example.org")[0] == "fail"
    assert check_spf(resolver, BAD_IP, "x@nopolicy.example", "h.test")[0] == "softfail"
    assert check_spf(resolver, BAD_IP, "x@unknown.example", "h.test")[0] == "none"
    # Null sender: the HELO identity is checked (RFC 7208 §2.4).
    assert check_spf(resolver, GOOD_IP, "", "example.org")[0] == "pass"


def test_spf_fail_refused_at_mail_from_when_configured(resolver, run):
    s = session(BAD_IP)
    strict = auth_pipeline(resolver, spf_reject_fail=True)
    verdict = run(strict.mail_from(s, "bob@example.org"))
    assert verdict.action == Action.REJECT and verdict.reply.line().startswith("550 5.7.23 SPF check failed")
    lenient = auth_pipeline(resolver)
    assert run(lenient.mail_from(session(BAD_IP), "bob@example.org")).action == Action.ACCEPT


def test_spf_and_dmarc_pass_in_one_header(resolver, run, tmp_path):
    s = session(GOOD_IP)
    pipeline = auth_pipeline(resolver)
    run(pipeline.mail_from(s, "bob@example.org"))
    verdict = run(pipeline.data(Envelope(s, "bob@example.org", ["alice@example.com"]), mail(tmp_path)))
    assert verdict.action == Action.ACCEPT
    header = ar_header(verdict)
    assert header.startswith("mx.example.com; spf=pass smtp.mailfrom=bob@example.org; dkim=none;")
    assert "dmarc=pass (p=reject) header.from=example.org" in header
    assert "Authentication-Results" in verdict.remove_headers


def test_dkim_signature_made_on_submission_verifies_and_passes_dmarc(resolver, run, tmp_path, keys):
    path = signed(tmp_path, keys, run)
    # From an IP SPF fails for: DMARC still passes through the aligned DKIM signature.
    verdict = run(auth_pipeline(resolver).data(Envelope(session(BAD_IP), "bob@example.org", ["a@example.com"]), path))
    header = ar_header(verdict)
    assert "spf=fail" in header and "dkim=pass header.d=example.org header.s=sel" in header
    assert "dmarc=pass" in header and verdict.action == Action.ACCEPT


def test_tampered_body_fails_dkim_and_dmarc_reject_refuses(resolver, run, tmp_path, keys):
    path = signed(tmp_path, keys, run)
    data = open(path, "rb").read().replace(b"Hello Alice.", b"Hello Mallory")
    open(path, "wb").write(data)
    verdict = run(auth_pipeline(resolver).data(Envelope(session(BAD_IP), "bob@example.org", ["a@example.com"]), path))
    assert verdict.action == Action.REJECT
    assert verdict.reply.line() == "550 5.7.1 DMARC policy of example.org refuses unauthenticated mail"
    report = auth_pipeline(resolver, dmarc_policy="report")
    verdict = run(report.data(Envelope(session(BAD_IP), "bob@example.org", ["a@example.com"]), path))
    assert verdict.action == Action.ACCEPT and "dkim=fail" in ar_header(verdict) and "dmarc=fail" in ar_header(verdict)


def test_dmarc_quarantine_files_to_junk(resolver, run, tmp_path):
    path = mail(tmp_path, "quarantine.example")
    verdict = run(auth_pipeline(resolver).data(Envelope(session(BAD_IP), "x@quarantine.example", ["a@example.com"]), path))
    assert verdict.action == Action.QUARANTINE and verdict.folder_for("a@example.com") == "Junk"
    assert ("X-Pymail-Quarantine", "auth") in verdict.headers


def test_no_dmarc_record_and_unsigned_mail_accepted(resolver, run, tmp_path):
    path = mail(tmp_path, "nopolicy.example")
    verdict = run(auth_pipeline(resolver).data(Envelope(session(BAD_IP), "x@nopolicy.example", ["a@example.com"]), path))
    assert verdict.action == Action.ACCEPT
    assert "spf=softfail" in ar_header(verdict) and "dmarc=none" in ar_header(verdict)


def test_dns_down_gives_temperror_not_a_refusal(run, tmp_path):
    dead = Resolver(["127.0.0.1"], services.free_port(), timeout=0.3)
    verdict = run(auth_pipeline(dead).data(Envelope(session(GOOD_IP), "bob@example.org", ["a@example.com"]),
                                           mail(tmp_path)))
    assert verdict.action == Action.ACCEPT
    assert "spf=temperror" in ar_header(verdict) and "dmarc=temperror" in ar_header(verdict)


def test_dnsbl_listing_counts_with_content_not_alone(resolver, run, tmp_path, spamd, directory):
    dnsbl = DnsblCheck(resolver, ["bl.test", "other.test"], weight=6.0)
    alone = Pipeline([CheckSlot(dnsbl)])
    s = session(LISTED_IP)
    assert run(alone.connect(s)).action == Action.ACCEPT
    assert s.facts["dnsbl"] == [("bl.test", "127.0.0.2")] and s.facts["dnsbl_score"] == 6.0
    path = write_message(tmp_path, b"Hello Alice,\r\nsee you at the meeting.\r\n")
    verdict = run(alone.data(Envelope(s, "bob@example.org", ["alice@example.com"]), path))
    assert verdict.action == Action.ACCEPT  # DNSBL alone never refuses
    assert dict(verdict.headers)["X-DNSBL"] == f"{LISTED_IP} listed in bl.test (127.0.0.2)"
    # With spamd: the same clean text from a listed host crosses alice's threshold.
    both = Pipeline([CheckSlot(dnsbl), CheckSlot(SpamdCheck(SpamdClient(spamd.address), directory,
                                                            site_reject_score=0))])
    listed = session(LISTED_IP)
    run(both.connect(listed))
    v = run(both.data(Envelope(listed, "bob@example.org", ["alice@example.com"]), path))
    assert v.folder_for("alice@example.com") == "Junk" and "PYMAIL_DNSBL" in dict(v.headers)["X-Spam-Status"]
    # The SMTP server may build a fresh Session per phase: spamd looks the client up itself.
    fresh = session(LISTED_IP)
    linked = Pipeline.from_settings(FilterSettings(checks=["dnsbl", "spamd"], spamd=spamd.address,
                                                   dnsbl_zones=["bl.test"], dnsbl_weight=6.0,
                                                   dns_nameservers=["127.0.0.1"], dns_port=resolver._resolver.port,
                                                   spam_reject_score=0), directory)
    v = run(linked.data(Envelope(fresh, "bob@example.org", ["alice@example.com"]), path))
    assert v.folder_for("alice@example.com") == "Junk" and "X-DNSBL" in dict(v.headers)
    clean = session(GOOD_IP)
    run(both.connect(clean))
    v = run(both.data(Envelope(clean, "bob@example.org", ["alice@example.com"]), path))
    assert v.folder_for("alice@example.com") == "INBOX" and "X-DNSBL" not in dict(v.headers)


def test_unsigned_when_no_key_for_the_from_domain(run, tmp_path, keys):
    path = mail(tmp_path, "elsewhere.example")
    check = Pipeline([CheckSlot(DkimSignCheck(keys[0], "sel"), roles=("submission",))])
    envelope = Envelope(session("127.0.0.1", role="submission", user="bob@elsewhere.example"), "bob@elsewhere.example", ["x@y.test"])
    verdict = run(check.data(envelope, path))
    assert verdict.action == Action.ACCEPT and verdict.headers == []


def test_checks_are_built_from_settings(dns):
    settings = FilterSettings(checks=["dnsbl", "auth", "dkim_sign"], dnsbl_zones=["bl.test"],
                              dns_nameservers=["127.0.0.1"], dns_port=dns.port)
    pipeline = Pipeline.from_settings(settings, None, "mx.example.com", "/var/lib/pymail")
    names = [(s.check.name, s.roles) for s in pipeline.slots]
    assert names == [("dnsbl", ("mx",)), ("auth", ("mx",)), ("dkim_sign", ("submission",))]
    assert pipeline.slots[1].check.authserv_id == "mx.example.com"
    assert str(pipeline.slots[2].check.keys_dir) == "/var/lib/pymail/dkim"


def test_keygen_command(tmp_path, capsys):
    from pymail.cli.errors import CliError
    from pymail.cli.site import Site
    from pymail.filters.cli import register_cli

    parser = argparse.ArgumentParser(prog="pymail")
    register_cli(parser.add_subparsers(dest="area"))
    site = Site(tmp_path / "none.toml", "", tmp_path, None, False)
    argv = ["dkim", "keygen", "Example.NET", "--keys-dir", str(tmp_path / "k"), "--bits", "1024"]
    args = parser.parse_args(argv)
    assert args.func(args, site) == 0
    out = capsys.readouterr().out
    assert 'pymail._domainkey.example.net. IN TXT ( "v=DKIM1; k=rsa; p=' in out
    key = tmp_path / "k" / "example.net.pymail.key"
    assert key.stat().st_mode & 0o777 == 0o600
    with pytest.raises(CliError, match="exists"):
        args = parser.parse_args(argv)
        args.func(args, site)
    with pytest.raises(CliError, match="not a domain"):
        args = parser.parse_args(["dkim", "keygen", "not a domain", "--keys-dir", str(tmp_path)])
        args.func(args, site)
