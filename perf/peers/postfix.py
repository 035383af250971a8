"""A private Postfix, started with ``postfix -c DIR start`` from its own main.cf/master.cf.

Two delivery modes:
- ``sink``: everything is relayed to an ``smtp-sink`` this module also starts (what Postfix's
  own benchmarks do); the accept rate is smtpd → cleanup → fsynced queue file → 250.
- ``maildir``: local domains delivered by virtual(8) into ``<mail_root>/<domain>/<local>/Maildir``,
  pymail's layout, so Dovecot (or pymail) serves what Postfix delivered.
Either way Postfix fsyncs the queue file before its 250, as pymail does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from peers.common import PeerError, free_port, render, wait_for_banner


def installed() -> bool:
    return shutil.which("postfix") is not None or Path("/usr/sbin/postfix").exists()


def binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def version() -> str:
    try:
        out = subprocess.run([binary("postconf"), "-d", "-h", "mail_version"], capture_output=True,
                             text=True, timeout=10)
        return "Postfix " + out.stdout.strip()
    except OSError:
        return "not installed"


@dataclass
class PostfixPeer:
    base: Path
    mode: str = "sink"  # sink | maildir
    mail_root: Path | None = None  # maildir mode
    users: list[str] = field(default_factory=list)  # maildir mode: addresses delivered locally
    smtp_port: int = 0
    sink_port: int = 0
    process_limit: int = 100
    mail_user: str = "nobody"  # virtual(8) delivers as this user
    # Submission (RFC 6409): STARTTLS required, then AUTH checked by a Dovecot auth socket.
    sasl_socket: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    submission_port: int = 0
    sink: subprocess.Popen | None = field(default=None, repr=False)

    def start(self, timeout: float = 30.0) -> "PostfixPeer":
        if not installed():
            raise PeerError("Postfix is not installed (Debian: apt-get install postfix, "
                            "preseeded with 'No configuration')")
        if os.geteuid() != 0:
            raise PeerError("a private Postfix must be started as root")
        self.base = Path(self.base)
        self.base.mkdir(parents=True, exist_ok=True)
        conf_dir = self.base / "etc"
        conf_dir.mkdir(exist_ok=True)
        for sub in ("queue", "data"):  # postfix creates what is inside, not these
            (self.base / sub).mkdir(exist_ok=True)
        shutil.chown(self.base / "data", "postfix")
        self.smtp_port = self.smtp_port or free_port()
        delivery = self.delivery_settings()
        (conf_dir / "main.cf").write_text(render("main.cf.in", {
            "BASE": self.base, "DELIVERY": delivery + self.tls_settings(), "PROCESS_LIMIT": self.process_limit}))
        (conf_dir / "master.cf").write_text(render("master.cf.in", {"SMTP_PORT": self.smtp_port,
                                                                    "SUBMISSION": self.submission_service()}))
        result = subprocess.run([binary("postfix"), "-c", str(conf_dir), "start"], capture_output=True,
                                text=True, timeout=60)
        if result.returncode != 0:
            self.stop()
            raise PeerError(f"postfix start failed ({result.returncode}): "
                            f"{(result.stderr or result.stdout).strip()[-500:]}; see {self.base}/maillog")
        try:
            wait_for_banner(self.smtp_port, b"220", timeout)
            if self.submission_port:
                wait_for_banner(self.submission_port, b"220", timeout)
        except PeerError as exc:
            self.stop()
            raise PeerError(f"Postfix did not start: {exc}; see {self.base}/maillog") from None
        return self

    def tls_settings(self) -> str:
        if not (self.cert and self.key):
            return ""
        return (f"smtpd_tls_cert_file = {self.cert}\nsmtpd_tls_key_file = {self.key}\n"
                "smtpd_tls_security_level = may\n")

    def submission_service(self) -> str:
        """A master.cf line for port 587's role, when a SASL socket and a certificate are given."""
        if not (self.sasl_socket and self.cert and self.key):
            return ""
        self.submission_port = self.submission_port or free_port()
        options = ["smtpd_tls_security_level=encrypt", "smtpd_sasl_auth_enable=yes",
                   "smtpd_sasl_type=dovecot", f"smtpd_sasl_path={self.sasl_socket}",
                   "smtpd_tls_auth_only=yes", "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
                   "smtpd_recipient_restrictions=permit_sasl_authenticated,reject"]
        return f"127.0.0.1:{self.submission_port} inet n - n - - smtpd " + " ".join(f"-o {o}" for o in options)

    def delivery_settings(self) -> str:
        if self.mode == "sink":
            self.sink_port = self.sink_port or free_port()
            log = open(self.base / "smtp-sink.log", "ab")
            # -u: smtp-sink drops root after binding; 1000: listen backlog.
            self.sink = subprocess.Popen([binary("smtp-sink"), "-u", "nobody", "-c",
                                          f"127.0.0.1:{self.sink_port}", "1000"],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            log.close()
            wait_for_banner(self.sink_port, b"220", 10)
            return ("relay_domains = static:ALL\n"
                    f"relay_transport = smtp:[127.0.0.1]:{self.sink_port}\n"
                    f"default_transport = smtp:[127.0.0.1]:{self.sink_port}\n"
                    "smtp_destination_concurrency_limit = 50\n")
        if self.mode != "maildir" or self.mail_root is None:
            raise PeerError("maildir mode needs mail_root")
        entry = pwd.getpwnam(self.mail_user)
        for parent in [Path(self.mail_root).resolve(), *Path(self.mail_root).resolve().parents]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
        for dirpath, _, filenames in os.walk(self.mail_root):
            os.chown(dirpath, entry.pw_uid, entry.pw_gid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
        domains = sorted({u.partition("@")[2].lower() for u in self.users})
        lines = [f"{u} {u.partition('@')[2].lower()}/{u.partition('@')[0]}/Maildir/\n" for u in self.users]
        (self.base / "vmailbox").write_text("".join(lines))
        return (f"virtual_mailbox_domains = {' '.join(domains)}\n"
                f"virtual_mailbox_base = {self.mail_root}\n"
                f"virtual_mailbox_maps = texthash:{self.base}/vmailbox\n"
                f"virtual_uid_maps = static:{entry.pw_uid}\n"
                f"virtual_gid_maps = static:{entry.pw_gid}\n"
                "virtual_minimum_uid = 1\n"
                "virtual_mailbox_limit = 0\n"
                "virtual_destination_concurrency_limit = 50\n")

    @property
    def pid(self) -> int | None:
        """The master process, from its pid file (for memory figures)."""
        try:
            return int((self.base / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        conf_dir = self.base / "etc"
        if (conf_dir / "main.cf").exists() and self.pid:
            subprocess.run([binary("postfix"), "-c", str(conf_dir), "stop"], capture_output=True, timeout=60)
            deadline = time.monotonic() + 10
            while self.pid and Path(f"/proc/{self.pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        if self.sink is not None:
            if self.sink.poll() is None:
                self.sink.send_signal(signal.SIGTERM)
                try:
                    self.sink.wait(5)
                except subprocess.TimeoutExpired:
                    self.sink.kill()
                    self.sink.wait(5)
            self.sink = None

    def __enter__(self) -> "PostfixPeer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
