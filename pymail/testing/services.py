"""Start private clamd and spamd daemons for tests (and benchmarks), in temporary folders.

    with clamd_service() as clamd:      # clamd.address == "tcp:127.0.0.1:PORT"
        ...
    with spamd_service() as spamd:
        ...

Facts behind this (see shared notes "clamd-spamd-offline"): clamd starts with custom signatures
alone (no downloads possible), so it gets one ``.ndb`` body signature for the EICAR test string,
built here from two halves so that no file of the repository holds the string whole; it is
reported as ``Test.EICAR.UNOFFICIAL``. spamd runs with ``-L`` (no network tests), as ``nobody``,
with Debian's shipped rules. Both are ready when PING answers PONG.

Debian packages: ``clamav-daemon clamav`` (clamd) and ``spamassassin spamd`` (spamd).
A missing binary raises ``ServiceUnavailable`` naming the package to install.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# The 68-byte EICAR anti-virus test string, in two halves (never whole in a file).
_EICAR_HEAD = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR"
_EICAR_TAIL = "-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_SIGNATURE = "Test.EICAR.UNOFFICIAL"

# GTUBE (SpamAssassin's spam test string), also built from halves for the same reason.
_GTUBE_HEAD = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE"
_GTUBE_TAIL = "-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def eicar() -> bytes:
    return (_EICAR_HEAD + _EICAR_TAIL).encode("ascii")


def gtube() -> bytes:
    return (_GTUBE_HEAD + _GTUBE_TAIL).encode("ascii")


class ServiceUnavailable(RuntimeError):
    """A daemon's binary is missing or it did not become ready."""


@dataclass
class Service:
    name: str
    address: str  # "tcp:127.0.0.1:PORT"
    port: int
    process: subprocess.Popen
    workdir: Path
    log_path: Path
    socket_path: str = ""  # clamd's unix socket, for "unix:" address tests

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL) and wait for it to exit."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _binary(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        raise ServiceUnavailable(f"{name} not found: install the Debian package(s) {package}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ping(port: int, request: bytes, expect: bytes, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(request)
            data = b""
            while expect not in data:
                part = s.recv(4096)
                if not part:
                    break
                data += part
            return expect in data
    except OSError:
        return False


def _wait_ready(service: Service, request: bytes, expect: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.running():
            raise ServiceUnavailable(
                f"{service.name} exited with status {service.process.returncode}:\n{service.log_tail()}")
        if ping(service.port, request, expect):
            return
        time.sleep(0.05)
    service.stop()
    raise ServiceUnavailable(f"{service.name} not ready within {timeout:g} s:\n{service.log_tail()}")


def _private_dir(prefix: str) -> Path:
    # A folder the daemon's unprivileged user ("nobody") can enter: not under pytest's 0700 tree.
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def start_clamd(timeout: float = 30.0) -> Service:
    clamd = _binary("clamd", "clamav-daemon clamav")
    work = _private_dir("pymail-clamd-")
    db = work / "db"
    db.mkdir()
    # A body signature (.ndb): "Name:TargetType(0=any):Offset(*=anywhere):HexSignature".
    (db / "test.ndb").write_text(f"Test.EICAR:0:*:{eicar().hex()}\n")
    port = free_port()
    conf = work / "clamd.conf"
    log_path = work / "clamd.log"
    conf.write_text("\n".join([
        f"DatabaseDirectory {db}",
        f"TCPSocket {port}",
        "TCPAddr 127.0.0.1",
        f"LocalSocket {work / 'clamd.sock'}",
        "FixStaleSocket yes",
        f"PidFile {work / 'clamd.pid'}",
        "Foreground yes",
        f"LogFile {log_path}",
        "StreamMaxLength 25M",
        "MaxThreads 4",
    ]) + "\n")
    process = subprocess.Popen([clamd, "-c", str(conf)], stdin=subprocess.DEVNULL,
                               stdout=open(work / "clamd.out", "wb"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    service = Service("clamd", f"tcp:127.0.0.1:{port}", port, process, work, log_path,
                      socket_path=str(work / "clamd.sock"))
    _wait_ready(service, b"zPING\0", b"PONG\0", timeout)
    return service


def start_spamd(timeout: float = 60.0) -> Service:
    spamd = _binary("spamd", "spamassassin spamd")
    work = _private_dir("pymail-spamd-")
    home = work / "home"
    home.mkdir()
    home.chmod(0o777)
    port = free_port()
    log_path = work / "spamd.log"
    args = [
        spamd, "-L", "--listen", f"127.0.0.1:{port}", "--pidfile", str(work / "spamd.pid"),
        "-s", "stderr", "--max-children", "2", "--min-children", "1",
        "--cf", "bayes_auto_learn 0", "--cf", "use_bayes 0", "-x", "-H", str(home),
    ]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]  # spamd refuses to run its children as root
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=open(log_path, "wb"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    service = Service("spamd", f"tcp:127.0.0.1:{port}", port, process, work, log_path)
    _wait_ready(service, b"PING SPAMC/1.5\r\n\r\n", b"PONG", timeout)
    return service


@contextlib.contextmanager
def clamd_service(timeout: float = 30.0) -> Iterator[Service]:
    service = start_clamd(timeout)
    try:
        yield service
    finally:
        service.stop()
        shutil.rmtree(service.workdir, ignore_errors=True)


@contextlib.contextmanager
def spamd_service(timeout: float = 60.0) -> Iterator[Service]:
    service = start_spamd(timeout)
    try:
        yield service
    finally:
        service.stop()
        shutil.rmtree(service.workdir, ignore_errors=True)


# -- a tiny authoritative DNS server for tests (SPF, DKIM, DMARC, DNSBL answers) -----------------

class DnsServer:
    """Answers UDP queries on 127.0.0.1 from ``records``: {(name, type): [rdata text, ...]}.

    Names are absolute or relative to the root ("example.org" == "example.org."); a name with no
    records of any type answers NXDOMAIN, a known name without the asked type answers NOERROR
    with no data. ``records`` may be changed while the server runs.
    """

    def __init__(self, records: dict[tuple[str, str], list[str]]):
        import threading

        self.records = records
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries: list[tuple[str, str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)
        self._thread.start()

    def _lookup(self, name: str, qtype: str) -> tuple[bool, list[str]]:
        name = name.lower().rstrip(".")
        known = False
        for (rname, rtype), values in list(self.records.items()):
            if rname.lower().rstrip(".") == name:
                known = True
                if rtype.upper() == qtype:
                    return True, values
        return known, []

    def _serve(self) -> None:
        import dns.flags
        import dns.message
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset

        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except (socket.timeout, OSError):
                continue
            try:
                query = dns.message.from_wire(data)
                reply = dns.message.make_response(query)
                question = query.question[0]
                qtype = dns.rdatatype.to_text(question.rdtype)
                self.queries.append((question.name.to_text(), qtype))
                known, values = self._lookup(question.name.to_text(), qtype)
                if values:
                    reply.answer.append(dns.rrset.from_text_list(
                        question.name, 60, dns.rdataclass.IN, question.rdtype, values))
                elif not known:
                    reply.set_rcode(dns.rcode.NXDOMAIN)
                reply.flags |= dns.flags.AA
                self.sock.sendto(reply.to_wire(), peer)
            except Exception:  # a malformed query from a test: ignore it, keep serving
                continue

    def stop(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()


@contextlib.contextmanager
def dns_service(records: dict[tuple[str, str], list[str]]) -> Iterator[DnsServer]:
    server = DnsServer(records)
    try:
        yield server
    finally:
        server.stop()
