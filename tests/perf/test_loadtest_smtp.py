"""pymail-loadtest smtp against an aiosmtpd server run by the test."""

from __future__ import annotations

import time

from tests.perf.conftest import Collect, accept_all, run_cli


def test_smtp_sends_exactly_count_messages_and_reports_latency(smtp_server, capsys):
    handler = Collect()
    with smtp_server(handler) as srv:
        code, summary, out = run_cli(capsys, "smtp", "--port", srv.port, "--sessions", 3, "--count", 30,
                                     "--duration", 20, "--to", "a@example.test", "--size", "2k",
                                     "--progress", 0)
    assert code == 0, out
    assert len(handler.messages) == 30
    assert summary["kind"] == "smtp" and summary["errors"] == 0
    msg = summary["ops"]["message"]
    assert msg["count"] == 30
    assert 0 < msg["p50_ms"] <= msg["p95_ms"] <= msg["p99_ms"] <= msg["max_ms"]
    assert summary["ops"]["connect"]["count"] == 3
    assert "message" in out.splitlines()[3] or "operation" in out  # the table precedes the JSON
    sizes = {len(m[2]) for m in handler.messages}
    assert all(1900 <= s <= 2300 for s in sizes), sizes


def test_smtp_stops_at_the_duration(smtp_server, capsys):
    handler = Collect()
    with smtp_server(handler) as srv:
        t0 = time.monotonic()
        code, summary, _ = run_cli(capsys, "smtp", "--port", srv.port, "--sessions", 2, "--duration", 1,
                                   "--to", "a@example.test", "--progress", 0, "--json-only")
        took = time.monotonic() - t0
    assert code == 0
    assert took < 5
    assert summary["ops"]["message"]["count"] == len(handler.messages) > 0


def test_smtp_size_distribution_and_reconnects(smtp_server, capsys):
    handler = Collect()
    with smtp_server(handler) as srv:
        code, summary, _ = run_cli(capsys, "smtp", "--port", srv.port, "--sessions", 2, "--count", 40,
                                   "--messages-per-session", 5, "--size", "1k:1,20k:1",
                                   "--to", "a@example.test", "--progress", 0, "--json-only")
    assert code == 0
    assert summary["ops"]["connect"]["count"] >= 8  # 40 messages, 5 per connection
    sizes = sorted(len(m[2]) for m in handler.messages)
    assert sizes[0] < 2000 and sizes[-1] > 19000


def test_smtp_auth_plain_after_starttls(smtp_server, server_ssl, capsys):
    handler = Collect()
    with smtp_server(handler, tls_context=server_ssl, require_starttls=True,
                     authenticator=accept_all) as srv:
        code, summary, out = run_cli(capsys, "smtp", "--port", srv.port, "--tls", "starttls", "--auth",
                                     "--user", "user1@example.test:secret1", "--count", 5,
                                     "--sessions", 1, "--progress", 0)
    assert code == 0, out
    assert len(handler.messages) == 5
    assert all(m[3] for m in handler.messages)  # every message sent by an authenticated session
    assert [m[1] for m in handler.messages] == [["user1@example.test"]] * 5
    assert {m[0] for m in handler.messages} == {"user1@example.test"}  # MAIL FROM = the AUTH user


def test_smtp_over_implicit_tls(smtp_server, server_ssl, capsys):
    handler = Collect()
    with smtp_server(handler, implicit_tls=server_ssl) as srv:
        code, summary, out = run_cli(capsys, "smtp", "--port", srv.port, "--tls", "implicit", "--count", 3,
                                     "--sessions", 1, "--to", "a@example.test", "--progress", 0)
        assert code == 0, out
        assert len(handler.messages) == 3
        plain, _, _ = run_cli(capsys, "smtp", "--port", srv.port, "--count", 1, "--sessions", 1, "--duration", 1,
                              "--timeout", 1, "--to", "a@example.test", "--progress", 0, "--json-only")
    assert plain == 1  # the same port without TLS gets no greeting: an error, not a hang
    assert len(handler.messages) == 3


def test_smtp_wrong_password_is_an_error(smtp_server, server_ssl, capsys):
    handler = Collect()
    with smtp_server(handler, tls_context=server_ssl, authenticator=accept_all) as srv:
        code, summary, _ = run_cli(capsys, "smtp", "--port", srv.port, "--tls", "starttls", "--auth",
                                   "--user", "user1@example.test:wrong", "--count", 3, "--duration", 1,
                                   "--sessions", 1, "--timeout", 1, "--progress", 0, "--json-only")
    # aiosmtpd answers a failed AUTH slowly: a 535 or a reply timeout, both are session errors.
    assert code == 1
    assert summary["ops"]["session"]["errors"] > 0 and not handler.messages


def test_smtp_refused_messages_are_counted_as_errors(smtp_server, capsys):
    handler = Collect(reply="451 4.3.0 try later")
    with smtp_server(handler) as srv:
        code, summary, _ = run_cli(capsys, "smtp", "--port", srv.port, "--count", 4, "--sessions", 1,
                                   "--to", "a@example.test", "--progress", 0, "--json-only")
    assert code == 1
    assert summary["ops"]["message"]["errors"] >= 1
    assert summary["ops"]["message"]["count"] == 0


def test_refusal_message_names_the_flag(capsys):
    from pymail_loadtest.main import main

    assert main(["smtp", "--host", "192.0.2.1", "--count", "1", "--to", "a@example.test"]) == 2
    captured = capsys.readouterr()
    assert "not loopback" in captured.err and "--allow-remote" in captured.err
    assert captured.out == ""  # nothing was run, so no summary


def test_connection_refused_is_reported_not_raised(capsys):
    from peers.common import free_port

    code, summary, _ = run_cli(capsys, "smtp", "--port", free_port(), "--count", 2, "--duration", 1,
                               "--to", "a@example.test", "--progress", 0, "--json-only")
    assert code == 1
    assert summary["ops"]["session"]["errors"] >= 1


def test_smtp_refused_recipient_is_an_error_not_a_message(smtp_server, capsys):
    handler = Collect()
    with smtp_server(handler) as srv:
        code, summary, _ = run_cli(capsys, "smtp", "--port", srv.port, "--to", "unknown@example.test", "--sessions", 1,
                                   "--count", 2, "--duration", 1, "--progress", 0, "--json-only")
    assert code == 1
    assert "message" not in summary["ops"] and not handler.messages
    assert any("550" in e for e in summary["error_samples"])


def test_connections_are_held_and_memory_reported(smtp_server, capsys):
    import os

    with smtp_server(Collect()) as srv:
        code, summary, out = run_cli(capsys, "connections", "--port", srv.port, "--connections", 12,
                                     "--hold", 0.2, "--pid", os.getpid(), "--duration", 20,
                                     "--progress", 0)
    assert code == 0, out
    assert summary["kind"] == "connections" and summary["errors"] == 0
    assert summary["connections"] == {"wanted": 12, "held": 12}
    assert summary["ops"]["connect"]["count"] == 12
    rss = summary["rss"]
    assert rss["holding"]["pss_kib"] > 0 and rss["before"]["processes"] >= 1
    assert isinstance(rss["per_connection_pss_kib"], float)


def test_connections_refused_are_errors(capsys):
    from peers.common import free_port

    code, summary, out = run_cli(capsys, "connections", "--port", free_port(), "--connections", 3,
                                 "--duration", 5, "--progress", 0)
    assert code == 1
    assert summary["errors"] == 3 and summary["connections"]["held"] == 0
