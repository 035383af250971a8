"""Remote delivery: MX lookup, A fallback, STARTTLS, retries, bounces, connection reuse, smarthost."""

from __future__ import annotations

import email
import logging
import smtplib

import pytest

MSG = b"From: alice@example.org\r\nTo: x@remote.test\r\nSubject: out\r\n\r\n.leading dot\r\nbody\r\n"


def submit(world, sender: str, rcpts: list[str], msg: bytes = MSG) -> str:
    port = world.submit_port if hasattr(world, "submit_port") else None
    if port is None:
        port = world.submit_port = world.listen("mx")  # 127.0.0.1 is a trusted network
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("client.test")
        code, reply = c.mail(sender)
        assert code == 250
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        code, reply = c.data(msg)
        assert code == 250
        return reply.split()[-1].decode()


def test_remote_delivery_through_mx_with_starttls(world, caplog):
    caplog.set_level(logging.INFO, logger="pymail.maillog")
    world.start_runner()
    qid = submit(world, "alice@example.org", ["x@remote.test", "y@remote.test"])
    world.wait_for(lambda: world.sink.messages, what="the sink to get the message")
    got = world.sink.messages[0]
    assert got.mail_from == "alice@example.org"
    assert sorted(got.rcpt_tos) == ["x@remote.test", "y@remote.test"]  # one transaction per domain
    assert got.tls  # opportunistic STARTTLS was used
    assert b"\r\n.leading dot\r\n" in got.content  # dot-stuffed on the wire, unstuffed by the sink
    assert f"id {qid}".encode() in got.content
    world.wait_for(lambda: not world.queued(), what="empty queue")
    lines = [r.getMessage() for r in caplog.records if r.name == "pymail.maillog"]
    assert any(line.startswith(f"{qid}: to=<x@remote.test>, relay=mx1.remote.test[127.0.0.1]")
               and "status=sent" in line for line in lines)
    assert f"{qid}: removed" in lines


def test_implicit_mx_and_mx_preference_with_dead_host(world):
    world.dns.add("nomx.test", "A", "127.0.0.1")  # RFC 5321 §5.1: no MX → the A record
    world.dns.add("pref.test", "MX", "5 dead.pref.test.", "20 good.pref.test.")
    world.dns.add("dead.pref.test", "A", "127.0.0.2")  # nothing listens there: connection refused
    world.dns.add("good.pref.test", "A", "127.0.0.1")
    world.start_runner()
    submit(world, "alice@example.org", ["a@nomx.test", "b@pref.test"])
    world.wait_for(lambda: len(world.sink.messages) == 2, what="two deliveries")
    assert sorted(m.rcpt_tos[0] for m in world.sink.messages) == ["a@nomx.test", "b@pref.test"]
    world.wait_for(lambda: not world.queued(), what="empty queue")


def test_temporary_failure_is_retried(world):
    world.sink.handler.rcpt_replies["x@remote.test"] = ["451 4.3.0 try later", "250 OK"]
    world.start_runner()
    qid = submit(world, "alice@example.org", ["x@remote.test"])
    world.wait_for(lambda: world.queue.dir.env_path(qid).exists() and world.queue.dir.load(qid).attempts >= 1
                   and world.queue.dir.load(qid).recipients[0].last_error, what="a deferral")
    env = world.queue.dir.load(qid)
    assert env.recipients[0].last_error.startswith("451")
    world.wait_for(lambda: world.sink.messages, timeout=15, what="delivery on retry")
    world.wait_for(lambda: not world.queued(), what="empty queue")


def bounces_for(world, address):
    out = []
    for raw in world.inbox(address):
        msg = email.message_from_bytes(raw)
        if msg.get_content_type() == "multipart/report":
            out.append(msg)
    return out


def test_permanent_failure_bounces_to_the_sender(world):
    world.sink.handler.rcpt_replies["x@remote.test"] = ["550 5.1.1 no such user here"]
    world.start_runner()
    qid = submit(world, "alice@example.org", ["x@remote.test", "y@remote.test"])
    world.wait_for(lambda: bounces_for(world, "alice@example.org"), what="a bounce for alice")
    bounce = bounces_for(world, "alice@example.org")[0]
    assert bounce["From"].endswith("<MAILER-DAEMON@mx.test>")
    assert bounce.get_param("report-type") == "delivery-status"
    parts = bounce.get_payload()
    assert "x@remote.test" in parts[0].get_payload()
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status"
    fields = status.as_string()
    assert "Final-Recipient: rfc822; x@remote.test" in fields
    assert "Status: 5.1.1" in fields and "Action: failed" in fields
    assert "y@remote.test" not in fields  # y was delivered
    assert parts[2].get_content_type() == "message/rfc822"
    raw_bounce = world.inbox("alice@example.org")[0]
    assert b"Return-Path: <>" in raw_bounce
    assert [m.rcpt_tos for m in world.sink.messages] == [["y@remote.test"]]
    world.wait_for(lambda: not world.queued(), what="empty queue")
    assert not world.queue.dir.env_path(qid).exists()


def test_null_sender_is_never_bounced(world, caplog):
    caplog.set_level(logging.INFO, logger="pymail.maillog")
    world.sink.handler.rcpt_replies["x@remote.test"] = ["550 5.1.1 no"]
    world.start_runner()
    qid = submit(world, "", ["x@remote.test"])
    world.wait_for(lambda: not world.queued(), what="empty queue")
    lines = [r.getMessage() for r in caplog.records if r.name == "pymail.maillog"]
    assert f"{qid}: no bounce sent (null sender)" in lines
    assert not any("sender non-delivery" in line for line in lines)


@pytest.mark.parametrize("domain,status", [("nowhere.test", "5.1.2"), ("nullmx.test", "5.1.10")])
def test_undeliverable_domains_bounce(world, domain, status):
    world.dns.add("nullmx.test", "MX", "0 .")
    world.start_runner()
    submit(world, "alice@example.org", [f"x@{domain}"])
    world.wait_for(lambda: bounces_for(world, "alice@example.org"), what="a bounce")
    assert f"Status: {status}" in bounces_for(world, "alice@example.org")[0].as_string()


def test_queue_lifetime_end_bounces(world):
    world.config.queue.max_lifetime = 0.5
    world.sink.handler.rcpt_replies["x@remote.test"] = ["451 4.2.0 busy"]
    world.start_runner()
    submit(world, "alice@example.org", ["x@remote.test"])
    world.wait_for(lambda: bounces_for(world, "alice@example.org"), timeout=15, what="an expiry bounce")
    text = bounces_for(world, "alice@example.org")[0].as_string()
    assert "Status: 5.4.7" in text and "451 4.2.0 busy" in text


def test_connection_reused_for_messages_to_one_domain(world):
    world.config.queue.max_parallel = 1
    ids = [submit(world, "alice@example.org", ["x@remote.test"]) for _ in range(3)]
    world.start_runner()
    world.wait_for(lambda: len(world.sink.messages) == 3, what="three deliveries")
    assert world.sink.handler.connections == 1
    assert len({m.peer_port for m in world.sink.messages}) == 1
    assert len(set(ids)) == 3


def test_smarthost_with_auth(world, make_sink):
    relay = make_sink(auth={"relayuser": "relaypw"})
    world.config.queue.smarthost = f"127.0.0.1:{relay.port}"
    world.config.queue.smarthost_username = "relayuser"
    world.config.queue.smarthost_password = "relaypw"
    world.start_runner()
    submit(world, "alice@example.org", ["x@anywhere.test"])
    world.wait_for(lambda: relay.messages, what="delivery through the smarthost")
    got = relay.messages[0]
    assert got.tls and got.login == "relayuser" and got.rcpt_tos == ["x@anywhere.test"]
    assert not world.sink.messages
    assert ("anywhere.test", "MX") not in world.dns.queries  # no MX lookup with a smarthost


def test_notify_success_gets_a_delivered_dsn(world):
    world.start_runner()
    port = world.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("c")
        c.mail("alice@example.org", ["RET=FULL", "ENVID=env42"])
        c.rcpt("bob@example.org", ["NOTIFY=SUCCESS", "ORCPT=rfc822;bob@example.org"])
        c.rcpt("x@remote.test", ["NOTIFY=SUCCESS"])  # the sink has no DSN: we say "relayed"
        assert c.data(b"Subject: dsn\r\n\r\nsecret body\r\n")[0] == 250
    world.wait_for(lambda: len(bounces_for(world, "alice@example.org")) == 2, what="two success DSNs")
    texts = sorted(m.as_string() for m in bounces_for(world, "alice@example.org"))
    delivered = next(t for t in texts if "Action: delivered" in t)
    relayed = next(t for t in texts if "Action: relayed" in t)
    assert "Final-Recipient: rfc822; bob@example.org" in delivered and "Status: 2.0.0" in delivered
    assert "Original-Envelope-Id: env42" in delivered and "Original-Recipient: rfc822;bob@example.org" in delivered
    assert "Final-Recipient: rfc822; x@remote.test" in relayed
    assert "secret body" not in delivered  # success notices return the header only
    assert world.inbox("bob@example.org")


def test_delay_warning_once(world):
    world.config.queue.delay_warning_time = 0.5
    world.sink.handler.rcpt_replies["x@remote.test"] = ["451 4.2.1 mailbox busy"]
    world.start_runner()
    qid = submit(world, "alice@example.org", ["x@remote.test"])
    world.wait_for(lambda: bounces_for(world, "alice@example.org"), timeout=15, what="a delay notice")
    world.wait_for(lambda: world.queue.dir.load(qid).attempts >= 3, timeout=15, what="more retries")
    notices = bounces_for(world, "alice@example.org")
    assert len(notices) == 1  # one warning, not one per retry
    text = notices[0].as_string()
    assert "Action: delayed" in text and "Status: 4.2.1" in text and "Will-Retry-Until:" in text
    assert world.queue.dir.env_path(qid).exists()  # still queued


def test_smarthost_with_implicit_tls(world, make_sink):
    relay = make_sink(auth={"relayuser": "relaypw"}, implicit_tls=True)
    world.config.queue.smarthost = f"127.0.0.1:{relay.port}"
    world.config.queue.smarthost_tls = "implicit"
    world.config.queue.smarthost_username = "relayuser"
    world.config.queue.smarthost_password = "relaypw"
    world.start_runner()
    submit(world, "alice@example.org", ["x@anywhere.test"])
    world.wait_for(lambda: relay.messages, what="delivery through the smarthost")
    assert relay.messages[0].tls and relay.messages[0].login == "relayuser"


def test_smarthost_without_tls_never_gets_the_password(world, make_sink):
    relay = make_sink()  # a relay that offers STARTTLS...
    world.config.queue.smarthost = f"127.0.0.1:{relay.port}"
    world.config.queue.smarthost_username = "relayuser"
    world.config.queue.smarthost_password = "relaypw"
    world.config.queue.outbound_tls = False  # ...but we were told not to use it
    world.start_runner()
    qid = submit(world, "alice@example.org", ["x@anywhere.test"])
    world.wait_for(lambda: world.queue.dir.load(qid).recipients[0].last_error, what="a deferral")
    assert "not sending the password" in world.queue.dir.load(qid).recipients[0].last_error
    assert not relay.messages


def test_failed_starttls_falls_back_to_cleartext(world, make_sink):
    broken = make_sink(broken_tls=True)
    world.config.queue.remote_port = broken.port
    world.start_runner()
    submit(world, "alice@example.org", ["x@remote.test"])
    world.wait_for(lambda: broken.messages, what="delivery without TLS")
    assert not broken.messages[0].tls  # RFC 7435: opportunistic, so cleartext beats no mail


def test_smtputf8_addresses_reach_an_smtputf8_server(world):
    world.start_runner()
    port = world.listen("mx")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("c")
        assert c.mail("jörg@example.org", ["SMTPUTF8"])[0] == 250
        assert c.rcpt("ü@remote.test")[0] == 250
        assert c.data("Subject: ü\r\n\r\nö\r\n".encode())[0] == 250
    world.wait_for(lambda: world.sink.messages, what="delivery")
    got = world.sink.messages[0]
    assert got.mail_from == "jörg@example.org" and got.rcpt_tos == ["ü@remote.test"]
    assert "SMTPUTF8" in got.mail_options


def test_unreachable_host_is_retried_until_it_answers(world):
    world.dns.add("later.test", "MX", "10 mx.later.test.")
    world.dns.add("mx.later.test", "A", "127.0.0.2")  # nothing listens there yet
    world.start_runner()
    qid = submit(world, "alice@example.org", ["x@later.test"])
    world.wait_for(lambda: "connect to mx.later.test[127.0.0.2]" in
                   (world.queue.dir.load(qid).recipients[0].last_error or ""), what="a deferral")
    assert world.queue.dir.load(qid).recipients[0].status == "pending"
    world.dns.zone[("mx.later.test", "A")] = ["127.0.0.1"]  # the host comes back
    world.wait_for(lambda: world.sink.messages, timeout=15, what="delivery on retry")
    assert world.sink.messages[0].rcpt_tos == ["x@later.test"]
