"""Random command sequences against a real server: well-formed replies, no internal errors."""

from __future__ import annotations

import logging
import socket

from hypothesis import HealthCheck, given, settings, strategies as st

VERBS = ["EHLO ", "HELO ", "MAIL FROM:", "RCPT TO:", "DATA", "BDAT ", "RSET", "NOOP", "VRFY ",
         "AUTH ", "STARTTLS", "LHLO ", "XYZ "]
ARGS = st.one_of(
    st.sampled_from(["<alice@example.org>", "<a@ext.test> SIZE=10", "<> BODY=8BITMIME", "PLAIN",
                     "LOGIN", "5 LAST", "<bob@example.org> NOTIFY=NEVER", "x", "<a@b> RET=HDRS ENVID=q",
                     "<\"a b\"@example.org>", "<a%b@example.org>", "<@x:a@example.org>", "0 LAST"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=30),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(VERBS), ARGS), max_size=12))
def test_random_sessions(mailsys_module, caplog, commands):
    system, port = mailsys_module
    caplog.set_level(logging.ERROR)
    lines = b"".join((verb + arg).encode("utf-8") + b"\r\n" for verb, arg in commands)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(lines + b"\r\n.\r\nQUIT\r\n")
        s.settimeout(3)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
    for line in data.split(b"\r\n")[:-1]:
        assert line[:3].isdigit() and line[3:4] in (b" ", b"-"), line
    assert not [r for r in caplog.records if r.name.startswith("pymail") and r.levelno >= logging.ERROR]
