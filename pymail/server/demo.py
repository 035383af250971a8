"""``pymail-server --demo``: an embedded default that runs on a fresh machine with nothing set up.

First run: writes ``var/pymail.toml`` (unprivileged localhost ports, SQLite, maildirs under
var/), creates the demo domain and user and prints the password once. Later runs reuse all of
it. Nothing here is special at run time: the demo is an ordinary configuration file.
"""

from __future__ import annotations

import secrets
from pathlib import Path

DEMO_DOMAIN = "demo.test"  # RFC 2606 reserved TLD: never routes anywhere real
DEMO_USER = f"demo@{DEMO_DOMAIN}"

# role, port, tls: production ports + 2000 (and 4190, already unprivileged).
DEMO_LISTENERS = [
    ("mx", 2525, "starttls"),
    ("submission", 2587, "starttls"),
    ("submission", 2465, "implicit"),
    ("lmtp", 2424, "none"),
    ("imap", 2143, "starttls"),
    ("imap", 2993, "implicit"),
    ("pop3", 2110, "starttls"),
    ("pop3", 2995, "implicit"),
    ("managesieve", 4190, "starttls"),
]


def demo_config_text(var_dir: Path) -> str:
    lines = [
        "# pymail demo configuration, written by `pymail-server --demo` on first start.",
        "# Everything lives below this folder; listeners are on 127.0.0.1 only.",
        "# See conf/pymail.toml for a documented production example.",
        "",
        "[server]",
        'hostname = "localhost"',
        f'var_dir = "{var_dir}"',
        "",
        "[auth]",
        "failure_delay = 1.0",
        "",
    ]
    for role, port, tls in DEMO_LISTENERS:
        lines += ["[[listeners]]", f'role = "{role}"', 'address = "127.0.0.1"',
                  f"port = {port}", f'tls = "{tls}"']
        if tls == "starttls":
            # Loopback only, so logins before STARTTLS are allowed for local testing tools.
            lines.append("allow_plaintext_auth = true")
        lines.append("")
    return "\n".join(lines)


def prepare(var_dir: Path, out=print) -> Path:
    """Create var/, the demo config and the demo user if missing; return the config path."""
    var_dir = var_dir.resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    config_path = var_dir / "pymail.toml"
    if not config_path.exists():
        config_path.write_text(demo_config_text(var_dir))
        out(f"pymail: wrote demo configuration {config_path}")
    return config_path


def ensure_demo_user(directory, store, out=print) -> None:
    """Create the demo domain and user once, printing the password that one time only."""
    if not directory.is_local_domain(DEMO_DOMAIN):
        directory.add_domain(DEMO_DOMAIN)
    if directory.get_user(DEMO_USER) is None:
        password = secrets.token_urlsafe(12)
        directory.add_user(DEMO_USER, password)
        store.account(DEMO_USER).ensure()
        out(f"pymail: created demo user {DEMO_USER} with password {password}")
        out("pymail: (the password is shown this once; change it with `pymail user passwd`)")
    else:
        store.account(DEMO_USER).ensure()
        out(f"pymail: demo user {DEMO_USER} exists (password printed at first start; "
            f"`pymail --config var/pymail.toml user passwd {DEMO_USER}` sets a new one)")
