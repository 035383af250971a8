"""Queue admin functions and the durable queue across a restart."""

from __future__ import annotations

import argparse
import smtplib

import pytest

from pymail.queue import admin
from pymail.queue.spool import QueueError
from pymail.smtp.testing import MailSystem


def send(port, rcpts, sender="alice@example.org"):
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as c:
        c.ehlo("c")
        c.mail(sender)
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        code, msg = c.data(b"Subject: q\r\n\r\nqueued\r\n")
        assert code == 250
        return msg.split()[-1].decode()


def test_list_show_hold_release_delete_flush(world):
    world.sink.handler.rcpt_replies["x@remote.test"] = ["451 4.3.0 later"]
    port = world.listen("mx")
    a = send(port, ["x@remote.test"])
    b = send(port, ["y@remote.test"])
    qdir = world.queue.dir
    text = admin.format_list(admin.list_queue(qdir))
    assert a in text and b in text and "-- 1 Kbytes in 2 Requests." in text
    shown = admin.show(qdir, a)
    assert "sender: <alice@example.org>" in shown and "recipient: <x@remote.test> remote pending" in shown
    assert "Subject: q" in shown
    admin.hold(qdir, b)
    assert f"{b}!" in admin.format_list(admin.list_queue(qdir))
    world.start_runner()
    world.wait_for(lambda: qdir.load(a).attempts >= 1 and qdir.load(a).next_attempt > 0, what="a deferral")
    assert qdir.load(b).attempts == 0 and not world.sink.messages  # held: untouched
    assert admin.flush(qdir) == 1  # a; b is held
    admin.release(qdir, b)
    world.wait_for(lambda: [m for m in world.sink.messages if m.rcpt_tos == ["y@remote.test"]],
                   what="the released message to go out")
    admin.delete(qdir, a)
    assert admin.list_queue(qdir) == [] or all(e.queue_id != a for e in admin.list_queue(qdir))
    with pytest.raises(QueueError):
        admin.show(qdir, a)
    with pytest.raises(QueueError):
        admin.hold(qdir, "not-an-id")
    assert admin.format_list([]) == "Mail queue is empty"


def test_register_cli_parses_and_runs(world, capsys, tmp_path):
    config = tmp_path / "pymail.toml"
    config.write_text(f'[server]\nvar_dir = "{tmp_path}"\n\n[queue]\ndirectory = "{world.queue.dir.root}"\n')
    parser = argparse.ArgumentParser(prog="pymail")
    sub = parser.add_subparsers(dest="area")
    admin.register_cli(sub)
    args = parser.parse_args(["queue", "--config", str(config), "list"])
    assert args.func(args, None) == 0
    assert "Mail queue is empty" in capsys.readouterr().out
    args = parser.parse_args(["queue", "--config", str(config), "delete", "0000000000000000XX"])
    with pytest.raises(Exception) as exc:
        args.func(args, None)
    assert "no such message" in str(exc.value)


def test_restart_with_mail_in_the_queue(reactor, tmp_path, tls_context, dns_server, sink):
    dns_server.add("remote.test", "MX", "10 mx1.remote.test.")
    dns_server.add("mx1.remote.test", "A", "127.0.0.1")
    opts = dict(dns_nameservers=["127.0.0.1"], dns_port=dns_server.port, remote_port=sink.port)
    first = MailSystem(tmp_path, tls=tls_context, start_runner=False, **opts)
    first.add_user("alice@example.org")
    port = first.listen("mx")
    ids = [send(port, ["alice@example.org", "x@remote.test"]) for _ in range(3)]
    first.close()  # "stop the server" with three messages queued, none delivered
    assert sorted(first.queue.dir.ids()) == sorted(ids)
    assert first.inbox("alice@example.org") == [] and not sink.messages

    second = MailSystem(tmp_path, tls=tls_context, **opts)
    try:
        second.wait_for(lambda: not second.queued(), what="the queue to drain after restart")
        assert len(second.inbox("alice@example.org")) == 3
        assert len(sink.messages) == 3
        assert sorted(m.content.split(b" id ")[1][:18].decode() for m in sink.messages) == sorted(ids)
    finally:
        second.close()


def test_pymail_queue_command(world, tmp_path, capsys):
    """The admin CLI (`pymail queue ...`) on a queue with one deferred message."""
    from pymail.cli.main import main

    world.sink.handler.rcpt_replies["x@remote.test"] = ["451 4.3.0 later"]
    qid = send(world.listen("mx"), ["x@remote.test"])
    config = tmp_path / "pymail.toml"
    config.write_text(f'[server]\nvar_dir = "{tmp_path}"\n\n[queue]\ndirectory = "{world.queue.dir.root}"\n')
    assert main(["--config", str(config), "queue", "list"]) == 0
    assert qid in capsys.readouterr().out
    assert main(["--config", str(config), "queue", "hold", qid]) == 0
    assert capsys.readouterr().out.strip() == f"{qid}: held"
    assert main(["--config", str(config), "queue", "show", qid]) == 0
    assert "held: yes" in capsys.readouterr().out
    assert main(["--config", str(config), "queue", "delete", qid]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "queue", "show", qid]) == 1
    assert "no such message" in capsys.readouterr().err


@pytest.mark.parametrize("toml,key", [
    ('smarthost = "relay:x"', "smarthost"), ('smarthost_tls = "maybe"', "smarthost_tls"),
    ("max_parallel = 0", "max_parallel"), ("scan_interval = 0", "scan_interval"),
])
def test_bad_queue_settings_are_refused(toml, key):
    from pymail.config import ConfigError, parse_config
    import tomllib

    with pytest.raises(ConfigError) as exc:
        parse_config(tomllib.loads("[queue]\n" + toml))
    assert key in str(exc.value)
