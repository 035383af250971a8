"""pymail-loadtest imap/pop3/idle/delivery against a private Dovecot the tests start (perf/peers)."""

from __future__ import annotations

import imaplib
import os

from tests.perf.conftest import USERS, Collect, run_cli, user_args


def test_mailbox_timings_cold_then_warm(dovecot, capsys):
    code, summary, out = run_cli(capsys, "mailbox", "--port", dovecot.imap_port, "--user", "%s:%s" % USERS[1],
                                 "--passes", 2, "--store-count", 10, "--progress", 0)
    assert code == 0, out
    passes = summary["passes"]
    assert [p["label"] for p in passes] == ["cold", "warm"]
    for step in ("select", "fetch_uid_flags", "fetch_envelope", "fetch_headers", "search_header", "store"):
        assert summary["ops"][f"{step}_cold"]["count"] == 1
        assert summary["ops"][f"{step}_warm"]["count"] == 1
    assert passes[0]["ms"]["exists"] == 40


def test_imap_mix_runs_every_operation_without_errors(dovecot, capsys):
    code, summary, out = run_cli(capsys, "imap", "--port", dovecot.imap_port, "--clients", 4,
                                 "--duration", 2, "--session-ops", 10, "--window", 10, "--idle-time", 0.05,
                                 "--progress", 0, *user_args())
    assert code == 0, out
    assert summary["errors"] == 0
    ops = summary["ops"]
    for op in ("login", "select", "fetch_flags", "fetch_headers", "fetch_body", "store", "append",
               "expunge", "idle", "noop", "logout"):
        assert ops[op]["count"] > 0, op
    assert summary["ops_per_s"] > 0


def test_imap_flags_set_by_the_load_are_really_stored(dovecot, capsys):
    code, summary, _ = run_cli(capsys, "imap", "--port", dovecot.imap_port, "--clients", 1, "--count", 30,
                               "--mix", "store=1", "--user", "%s:%s" % USERS[0], "--progress", 0,
                               "--json-only")
    assert code == 0 and summary["ops"]["store"]["count"] > 0
    m = imaplib.IMAP4("127.0.0.1", dovecot.imap_port)
    try:
        m.login(*USERS[0])
        m.select("INBOX", readonly=True)
        _, data = m.uid("SEARCH", "FLAGGED")
        assert data[0].split(), "the STOREs left no \\Flagged message at all"
    finally:
        m.logout()


def test_imap_authenticate_plain(dovecot, capsys, monkeypatch):
    from pymail_loadtest.imap_client import ImapClient

    sent = []
    original = ImapClient.command

    async def spy(self, line, *args, **kwargs):
        sent.append(line)
        return await original(self, line, *args, **kwargs)

    monkeypatch.setattr(ImapClient, "command", spy)
    code, summary, out = run_cli(capsys, "imap", "--port", dovecot.imap_port, "--auth", "plain", "--clients", 2,
                                 "--count", 6, "--session-ops", 2, "--mix", "noop=1", "--progress", 0, *user_args())
    assert code == 0, out
    assert summary["ops"]["login"]["count"] >= 3
    assert any(line.startswith("AUTHENTICATE PLAIN ") for line in sent)  # Dovecot offers SASL-IR
    assert not any(line.startswith("LOGIN ") for line in sent)


def test_imap_count_bound_is_exact(dovecot, capsys):
    code, summary, _ = run_cli(capsys, "imap", "--port", dovecot.imap_port, "--clients", 3, "--count", 25,
                               "--mix", "noop=1,fetch_flags=1", "--progress", 0, "--json-only", *user_args())
    assert code == 0
    assert summary["ops"]["noop"]["count"] + summary["ops"]["fetch_flags"]["count"] == 25


def test_pop3_cycles_check_sizes(dovecot, capsys):
    code, summary, out = run_cli(capsys, "pop3", "--port", dovecot.pop3_port, "--clients", 2, "--duration", 1,
                                 "--retr", 3, "--progress", 0, *user_args())
    assert code == 0, out
    for op in ("login", "stat", "uidl", "list", "retr", "quit"):
        assert summary["ops"][op]["count"] > 0, op
    assert summary["retr_bytes"] > 0


def test_imap_and_pop3_over_starttls(dovecot, capsys):
    code, summary, out = run_cli(capsys, "imap", "--port", dovecot.imap_port, "--tls", "starttls", "--clients", 2,
                                 "--count", 20, "--mix", "fetch_flags=1,fetch_body=1", "--progress", 0, *user_args())
    assert code == 0, out
    assert summary["ops"]["login"]["count"] >= 2
    code, summary, out = run_cli(capsys, "pop3", "--port", dovecot.pop3_port, "--tls", "starttls", "--clients", 1,
                                 "--count", 3, "--retr", 1, "--progress", 0, *user_args())
    assert code == 0, out
    assert summary["ops"]["retr"]["count"] == 3
    logins = [line for line in (dovecot.base / "dovecot.log").read_text().splitlines() if "Login: " in line]
    assert any("imap-login" in line and "TLS" in line for line in logins)
    assert any("pop3-login" in line and "TLS" in line for line in logins)


def test_idle_sessions_and_server_memory(dovecot, capsys):
    code, summary, out = run_cli(capsys, "idle", "--port", dovecot.imap_port, "--connections", 20,
                                 "--hold", 0.5, "--duration", 20, "--pid", dovecot.pid, "--progress", 0,
                                 *user_args())
    assert code == 0, out
    assert summary["connections"] == {"wanted": 20, "idling": 20}
    rss = summary["rss"]
    # Dovecot runs one imap process per session: the tree grew by about 20 processes.
    assert rss["idling"]["processes"] >= rss["before"]["processes"] + 20
    assert rss["per_connection_kib"] > 0 and rss["idling"]["rss_kib"] > rss["before"]["rss_kib"]


def test_delivery_to_idle_latency(dovecot, smtp_server, capsys):
    # The SMTP side: an aiosmtpd that writes each message into the Dovecot maildir; Dovecot's
    # IDLE then sees it. The harness times 250 -> "* n EXISTS" for every idling session.
    handler = Collect(mail_root=dovecot.mail_root)
    with smtp_server(handler) as srv:
        code, summary, out = run_cli(capsys, "delivery", "--port", dovecot.imap_port, "--smtp-port", srv.port,
                                     "--connections", 4, "--deliveries", 6, "--duration", 30,
                                     "--progress", 0, *user_args())
    assert code == 0, out
    assert len(handler.messages) == 6
    delivery = summary["delivery"]
    assert delivery["notified"] == 12  # 6 messages x 2 sessions per user
    assert 0 <= delivery["p50_ms"] <= delivery["p99_ms"] < 10_000
    assert summary["ops"]["notify"]["count"] == 12


def test_pid_that_does_not_exist_is_a_clear_error(dovecot, capsys):
    from pymail_loadtest.main import main

    code = main(["idle", "--port", str(dovecot.imap_port), "--pid", str(2 ** 22 + 7), "--connections", "1",
                 *user_args()])
    assert code == 2
    assert "no process" in capsys.readouterr().err
    assert os.path.exists(f"/proc/{dovecot.pid}")


# Last: Dovecot slows every later login from 127.0.0.1 after a failed one (auth penalty).
def test_imap_wrong_password_is_an_error(dovecot, capsys):
    code, summary, _ = run_cli(capsys, "imap", "--port", dovecot.imap_port, "--clients", 1, "--duration", 1,
                               "--user", "user1@example.test:wrong", "--progress", 0, "--json-only")
    assert code == 1 and summary["errors"] >= 1
    assert any("LOGIN" in s for s in summary["error_samples"])
