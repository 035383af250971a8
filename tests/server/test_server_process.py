"""pymail-server as a process: roles, printed listeners, greetings, draining, workers, demo."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pymail.server.roles import RoleUnavailable, factory_maker
from pymail.testing.server_process import ServerProcess, write_config

ROOT = Path(__file__).resolve().parents[2]
GREETING = {"mx": b"220 ", "submission": b"220 ", "lmtp": b"220 ", "imap": b"* OK",
            "pop3": b"+OK", "managesieve": b'"IMPLEMENTATION"'}


def available(role: str) -> bool:
    try:
        factory_maker(role)
        return True
    except RoleUnavailable:
        return False


ALL = [("mx", "starttls"), ("submission", "starttls"), ("submission", "implicit"),
       ("lmtp", "none"), ("imap", "starttls"), ("imap", "implicit"), ("pop3", "starttls"),
       ("pop3", "implicit"), ("managesieve", "starttls")]
SERVED = [(r, t) for r, t in ALL if available(r)]


def read_greeting(port: int, tls: bool, timeout: float = 10.0) -> bytes:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(sock)
    with sock:
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


def test_every_served_listener_greets(tmp_path):
    assert SERVED, "no role can be served"
    config = write_config(tmp_path / "var", SERVED)
    with ServerProcess(["--config", str(config)], tmp_path / "var") as server:
        listeners = server.listeners()
        assert len(listeners) == len(SERVED)
        for entry in listeners:
            greeting = read_greeting(entry["port"], entry["tls"] == "implicit")
            assert greeting.startswith(GREETING[entry["role"]]) or \
                GREETING[entry["role"]] in greeting, (entry, greeting)
        log = server.log()
        for entry in listeners:
            assert f"127.0.0.1:{entry['port']}" in log  # printed at start
        assert server.stop() == 0


def test_roles_option_limits_listeners(tmp_path):
    role = SERVED[0][0]
    config = write_config(tmp_path / "var", SERVED)
    with ServerProcess(["--config", str(config), "--roles", role], tmp_path / "var") as server:
        assert {e["role"] for e in server.listeners()} == {role}


def test_sigterm_drains_open_sessions(tmp_path):
    role, tls = SERVED[0]
    config = write_config(tmp_path / "var", [(role, tls)])
    server = ServerProcess(["--config", str(config)], tmp_path / "var").start()
    port = server.port(role)
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls == "implicit":
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        held = ctx.wrap_socket(held)
    held.recv(4096)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    # Still draining: the open session is alive, new connections are refused.
    assert server.proc.poll() is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    held.close()
    assert server.proc.wait(timeout=15) == 0
    assert "draining" in server.log()


def worker_pids(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"--worker-fds" in cmd:
            pids.append(int(entry))
    return pids


def wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_workers_share_sockets_and_restart(tmp_path):
    role, tls = SERVED[0]
    config = write_config(tmp_path / "var", [(role, tls)])
    with ServerProcess(["--config", str(config), "--workers", "2"], tmp_path / "var") as server:
        pids = wait_for(lambda: (p := worker_pids(server.proc.pid)) and len(p) == 2 and p)
        port = server.port(role)
        wait_for(lambda: GREETING[role] in read_greeting(port, tls == "implicit"))
        os.kill(pids[0], signal.SIGKILL)
        new = wait_for(lambda: (p := worker_pids(server.proc.pid)) and len(p) == 2
                       and pids[0] not in p and p)
        assert pids[1] in new
        for _ in range(6):
            assert GREETING[role] in read_greeting(port, tls == "implicit")
        assert server.stop() == 0
        assert worker_pids(server.proc.pid) == []


DEMO_PORTS = [2525, 2587, 2465, 2424, 2143, 2993, 2110, 2995, 4190]


def test_demo_starts_twice_and_prints_password_once(tmp_path):
    busy = []
    for port in DEMO_PORTS:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    assert not busy, f"demo ports in use by something else on this machine: {busy}"
    var = tmp_path / "var"
    first = ServerProcess(["--demo", "--var-dir", str(var)], var, cwd=tmp_path).start()
    try:
        log = first.log()
        assert "created demo user demo@demo.test with password" in log
        assert (var / "tls" / "cert.pem").exists() and (var / "directory.sqlite").exists()
        assert (var / "mail" / "demo.test" / "demo" / "Maildir").is_dir()
        assert {e["port"] for e in first.listeners()} <= set(DEMO_PORTS)
    finally:
        assert first.stop() == 0
    second = ServerProcess(["--demo", "--var-dir", str(var)], var, cwd=tmp_path).start()
    try:
        assert "with password" not in second.log()
        assert "demo user demo@demo.test exists" in second.log()
    finally:
        assert second.stop() == 0


def test_port_in_use_is_one_clear_line(tmp_path):
    role, tls = SERVED[0]
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        config = write_config(tmp_path / "var", [(role, tls)])
        text = config.read_text().replace("port = 0", f"port = {port}")
        config.write_text(text)
        result = subprocess.run([sys.executable, "-m", "pymail.server.main", "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen for {role} on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_proxy_protocol_listener_sees_the_real_client(tmp_path):
    """A listener behind HAProxy (`proxy_protocol = true`) takes the client address from the
    PROXY header: a failed login is logged with that address, not 127.0.0.1."""
    role = next(r for r, t in SERVED if r == "pop3")
    config = write_config(tmp_path / "var", [(role, "starttls")])
    config.write_text(config.read_text().replace('tls = "starttls"',
                                                  'tls = "starttls"\nproxy_protocol = true'))
    with ServerProcess(["--config", str(config)], tmp_path / "var") as server:
        port = server.port(role)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 110\r\n")
            assert s.recv(4096).startswith(b"+OK")
            s.sendall(b"USER nobody@example.test\r\nPASS wrong\r\n")
            data = b""
            while data.count(b"\r\n") < 2:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            assert b"-ERR" in data
        wait_for(lambda: "ip=203.0.113.7" in server.log(), timeout=10)
        # PROXY v2 (binary), sent in two pieces.
        import ipaddress
        import struct

        v2 = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12)
              + ipaddress.ip_address("198.51.100.9").packed + ipaddress.ip_address("127.0.0.1").packed
              + struct.pack("!HH", 40001, 110))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(v2[:7])
            time.sleep(0.2)
            s.sendall(v2[7:] + b"USER someone@example.test\r\nPASS wrong\r\n")
            assert s.recv(4096).startswith(b"+OK")
        wait_for(lambda: "ip=198.51.100.9" in server.log(), timeout=10)
        # Without the header the connection is refused by the wrapper, never served.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"USER x\r\n")
            s.settimeout(10)
            assert s.recv(4096) == b""
