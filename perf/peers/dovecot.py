"""A private Dovecot (IMAP + POP3) over a given maildir tree, as a child process.

``dovecot -c FILE -F`` with its own configuration (dovecot.conf.in), base_dir and state_dir in a
temporary folder, listeners on 127.0.0.1 high ports, users from a passwd-file, and
``mail_location = maildir:<mail_root>/<domain>/<local>/Maildir`` — pymail's own layout, so both
servers read the same generated data.
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
    """The dovecot binary and both protocol daemons (dovecot-imapd, dovecot-pop3d) are there."""
    binary = shutil.which("dovecot") is not None or Path("/usr/sbin/dovecot").exists()
    return binary and all(Path(f"/usr/lib/dovecot/{d}").exists() for d in ("imap", "pop3"))


def dovecot_binary() -> str:
    return shutil.which("dovecot") or "/usr/sbin/dovecot"


def version() -> str:
    try:
        out = subprocess.run([dovecot_binary(), "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip()
    except OSError:
        return "not installed"


@dataclass
class DovecotPeer:
    base: Path
    mail_root: Path
    users: list[tuple[str, str]]  # (address, password or "{SCHEME}hash")
    imap_port: int = 0
    pop3_port: int = 0
    fsync: str = "optimized"  # Dovecot's mail_fsync: optimized | always | never
    max_connections: int = 1000
    mail_user: str = "nobody"  # Dovecot drops to this user to touch mail when run as root
    cert: Path | None = None
    key: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def auth_socket(self) -> Path:
        """Dovecot's SASL socket, for Postfix's ``smtpd_sasl_type = dovecot``."""
        return self.base / "run" / "auth-client"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 20.0) -> "DovecotPeer":
        if not installed():
            raise PeerError("Dovecot is not installed (Debian: apt-get install dovecot-imapd dovecot-pop3d)")
        self.base.mkdir(parents=True, exist_ok=True)
        self.imap_port = self.imap_port or free_port()
        self.pop3_port = self.pop3_port or free_port()
        uid, gid = self.mail_ids()
        lines = []
        for address, secret in self.users:
            if not secret.startswith("{"):
                secret = "{PLAIN}" + secret
            lines.append(f"{address}:{secret}")
        passwd = self.base / "passwd"
        passwd.write_text("\n".join(lines) + "\n")
        passwd.chmod(0o644)  # read by the auth process (user dovecot); test passwords only
        ssl_files = ""
        if self.cert and self.key:
            ssl_files = f"ssl_cert = <{self.cert}\nssl_key = <{self.key}"
        conf = render("dovecot.conf.in", {
            "BASE": self.base, "MAIL_ROOT": self.mail_root, "UID": uid, "GID": gid,
            "IMAP_PORT": self.imap_port, "POP3_PORT": self.pop3_port, "FSYNC": self.fsync,
            "PROTOCOLS": "imap pop3", "INSTANCE": f"pymail-peer-{self.imap_port}",
            "SSL": "yes" if ssl_files else "no", "SSL_FILES": ssl_files,
            "CLIENT_LIMIT": max(1000, self.max_connections + 100),
            "PROCESS_LIMIT": max(1000, self.max_connections + 100),
            "ANVIL_LIMIT": max(1000, 3 * self.max_connections + 100),
        })
        conf_path = self.base / "dovecot.conf"
        conf_path.write_text(conf)
        log = open(self.base / "dovecot.stderr", "ab")
        self.process = subprocess.Popen([dovecot_binary(), "-c", str(conf_path), "-F"],
                                        stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        try:
            wait_for_banner(self.imap_port, b"* OK", timeout)
            wait_for_banner(self.pop3_port, b"+OK", timeout)
        except PeerError as exc:
            self.stop()
            raise PeerError(f"Dovecot did not start: {exc}; see {self.base}/dovecot.log") from None
        return self

    def mail_ids(self) -> tuple[int, int]:
        """The uid/gid Dovecot uses for mail; as root, the mail tree is given to ``mail_user``."""
        if os.geteuid() != 0:
            return os.geteuid(), os.getegid()
        entry = pwd.getpwnam(self.mail_user)
        # Dovecot refuses to touch mail as uid 0; the mail user must reach the tree: give
        # search (x, not read) permission on any parent folder that lacks it (e.g. pytest's 0700).
        for parent in Path(self.mail_root).resolve().parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
        for dirpath, dirnames, filenames in os.walk(self.mail_root):
            os.chown(dirpath, entry.pw_uid, entry.pw_gid)
            for name in filenames:
                os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)
        return entry.pw_uid, entry.pw_gid

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        time.sleep(0.05)

    def __enter__(self) -> "DovecotPeer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
