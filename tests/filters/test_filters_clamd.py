"""The clamd check against a real clamd (custom EICAR signature, see pymail.testing.services)."""

from __future__ import annotations

import base64

from filters_helpers import write_message
from pymail.filters.api import Action, Envelope, Session
from pymail.filters.clamd import ClamdCheck, ClamdClient
from pymail.filters.pipeline import UNCHECKED_HEADER, CheckSlot, Pipeline
from pymail.testing import services

ENVELOPE = Envelope(Session("192.0.2.7", 5000, "mx"), "sender@example.org", ["alice@example.com"])


def mime_with_attachment(payload: bytes) -> tuple[str, bytes]:
    encoded = base64.encodebytes(payload).decode().replace("\n", "\r\n")
    headers = 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n'
    body = ("--b1\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
            "--b1\r\nContent-Type: application/octet-stream\r\n"
            'Content-Disposition: attachment; filename="test.com"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}--b1--\r\n")
    return headers, body.encode()


def pipeline_for(address: str, policy: str = "tempfail") -> Pipeline:
    return Pipeline([CheckSlot(ClamdCheck(ClamdClient(address, connect_timeout=2)), fail_policy=policy)])


def test_clean_mail_is_accepted(clamd, run, tmp_path):
    path = write_message(tmp_path, b"Hello Alice,\r\nlunch tomorrow?\r\n")
    verdict = run(pipeline_for(clamd.address).data(ENVELOPE, path))
    assert verdict.action == Action.ACCEPT and verdict.reply is None and verdict.virus is None
    assert ("X-Virus-Scanned", "clean (clamd)") in verdict.headers


def test_eicar_in_an_attachment_is_refused_with_the_signature(clamd, run, tmp_path):
    headers, body = mime_with_attachment(services.eicar())
    assert services.eicar() not in body  # only the base64 form is in the message
    path = write_message(tmp_path, body, headers)
    verdict = run(pipeline_for(clamd.address).data(ENVELOPE, path))
    assert verdict.action == Action.REJECT
    assert verdict.reply.line() == f"554 5.7.1 Message refused: virus found: {services.EICAR_SIGNATURE}"
    assert verdict.virus == services.EICAR_SIGNATURE and verdict.check == "clamd"


def test_big_message_goes_in_many_chunks(clamd, run, tmp_path):
    # 3 MB of text with EICAR at the very end: every 64 KiB chunk must arrive for a match.
    filler = (b"x" * 76 + b"\r\n") * 40000
    path = write_message(tmp_path, filler + services.eicar() + b"\r\n")
    result = run(ClamdClient(clamd.address).scan_file(path))
    assert not result.clean and result.signature == services.EICAR_SIGNATURE
    clean = write_message(tmp_path, filler, name="clean.eml")
    assert run(ClamdClient(clamd.address).scan_file(clean)).clean


def test_unix_socket_address(clamd, run, tmp_path):
    client = ClamdClient(f"unix:{clamd.socket_path}")
    assert run(client.ping())
    assert "ClamAV" in run(client.version())
    assert not run(client.scan_bytes(b"a " + services.eicar())).clean


def test_over_size_limit_is_accepted_and_marked_unscanned(clamd, run, tmp_path):
    path = write_message(tmp_path, b"y" * 5000)
    check = ClamdCheck(ClamdClient(clamd.address), max_size=1000)
    verdict = run(Pipeline([CheckSlot(check)]).data(ENVELOPE, path))
    assert verdict.action == Action.ACCEPT
    assert verdict.headers == [("X-Virus-Scanned", "no (larger than 1000 bytes)")]


def test_clamd_stopped_gives_the_fail_policy(run, tmp_path):
    path = write_message(tmp_path, b"Hello\r\n")
    with services.clamd_service() as private:
        assert run(pipeline_for(private.address).data(ENVELOPE, path)).action == Action.ACCEPT
        address = private.address
    assert not services.ping(int(address.rsplit(":", 1)[1]), b"zPING\0", b"PONG\0")
    verdict = run(pipeline_for(address).data(ENVELOPE, path))
    assert verdict.action == Action.TEMPFAIL and verdict.reply.line().startswith("451 4.7.1 ")
    tagged = run(pipeline_for(address, "accept").data(ENVELOPE, path))
    assert tagged.action == Action.ACCEPT
    assert tagged.headers[0][0] == UNCHECKED_HEADER and tagged.headers[0][1].startswith("clamd (")


def test_missing_binary_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(services.shutil, "which", lambda *a, **k: None)
    try:
        services.start_clamd()
    except services.ServiceUnavailable as exc:
        assert "clamav-daemon" in str(exc)
    else:
        raise AssertionError("start_clamd did not fail without the binary")
