"""Remote delivery: destinations from ``mxlookup``, sessions from ``smtpclient`` (in a thread).

- Opportunistic STARTTLS (RFC 3207, RFC 7435): used when offered, without certificate checks; a
  failed handshake falls back to a plaintext connection to the same host.
- One SMTP session carries every recipient of a message for one domain; idle sessions are kept
  ``connection_cache_time`` seconds and reused for the next message to that domain.
- 2xx delivered, 4xx and network errors deferred (next host, then retry later), 5xx failed.

smtplib is used because it is a complete, well-tested client and delivery already runs in a
worker thread; DATA is streamed from the spool file (dot-stuffed here) rather than loaded.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
import time
from pathlib import Path

from pymail.queue.envelope import DELIVERED
from pymail.queue.errors import PermanentFailure, TemporaryFailure
from pymail.queue.mxlookup import destinations, smarthost
from pymail.queue.smtpclient import (ImplicitTlsClient, SmtpClient, dsn_mail_options,
                                     dsn_rcpt_options, fail_recipient, opportunistic_context,
                                     quietly_close, quietly_quit, quietly_rset, reply_text,
                                     status_of, why)


class RemoteDelivery:
    def __init__(self, settings, hostname: str):
        self.settings = settings
        self.hostname = hostname
        self._pool: dict[str, list[tuple[float, SmtpClient, str]]] = {}
        self._lock = threading.Lock()

    # -- DNS ---------------------------------------------------------------------------------------
    def _open(self, name: str, ip: str, port: int) -> SmtpClient:
        s = self.settings
        if self.settings.smarthost and s.smarthost_tls == "implicit":
            client: SmtpClient = ImplicitTlsClient(timeout=s.connect_timeout, local_hostname=self.hostname,
                                                    context=opportunistic_context())
        else:
            client = SmtpClient(timeout=s.connect_timeout, local_hostname=self.hostname)
        client._host = name  # smtplib's name for SNI in starttls()
        code, msg = client.connect(ip, port)
        if code != 220:
            client.close()
            raise TemporaryFailure(f"{name}[{ip}] greeted with {code} {msg.decode(errors='replace')}", "4.4.2")
        client.sock.settimeout(s.command_timeout)
        client.ehlo_or_helo_if_needed()
        want_tls = s.outbound_tls and not isinstance(client, ImplicitTlsClient)
        if want_tls and client.has_extn("starttls"):
            try:
                client.starttls(context=opportunistic_context())
                client.ehlo()
            except (ssl.SSLError, smtplib.SMTPException, OSError, ValueError):
                # RFC 7435: opportunistic — fall back to cleartext with the same host
                quietly_close(client)
                if self.settings.smarthost and s.smarthost_tls == "starttls" and s.smarthost_username:
                    raise TemporaryFailure(f"TLS with smarthost {name} failed", "4.7.5") from None
                client = SmtpClient(timeout=s.connect_timeout, local_hostname=self.hostname)
                client._host = name
                client.connect(ip, port)
                client.ehlo_or_helo_if_needed()
        if self.settings.smarthost and s.smarthost_username:
            if s.smarthost_tls == "starttls" and client.sock is not None and not isinstance(client.sock, ssl.SSLSocket):
                quietly_close(client)
                raise TemporaryFailure(f"smarthost {name} offers no STARTTLS; not sending the password", "4.7.5")
            try:
                client.login(s.smarthost_username, s.smarthost_password)
            except smtplib.SMTPAuthenticationError as exc:
                quietly_close(client)
                raise TemporaryFailure(f"smarthost {name} refused our login: {exc.smtp_code}", "4.7.8") from None
        return client

    def _take(self, key: str):
        with self._lock:
            entries = self._pool.get(key) or []
            while entries:
                _, client, label = entries.pop()
                return client, label
        return None

    def _give_back(self, key: str, client: SmtpClient, label: str) -> None:
        with self._lock:
            self._pool.setdefault(key, []).append((time.monotonic(), client, label))

    def close_idle(self, max_idle: float | None = None) -> None:
        max_idle = self.settings.connection_cache_time if max_idle is None else max_idle
        now = time.monotonic()
        closing = []
        with self._lock:
            for key, entries in list(self._pool.items()):
                keep = [e for e in entries if now - e[0] < max_idle]
                closing += [e[1] for e in entries if now - e[0] >= max_idle]
                if keep:
                    self._pool[key] = keep
                else:
                    del self._pool[key]
        for client in closing:
            quietly_quit(client)

    # -- delivery ----------------------------------------------------------------------------------
    def deliver(self, envelope, recipients, path: Path, log) -> None:
        """Try every recipient (all remote); sets each one's status/last_error in place."""
        by_domain: dict[str, list] = {}
        for r in recipients:
            domain = r.address.rpartition("@")[2].lower()
            key = "smarthost" if self.settings.smarthost else domain
            by_domain.setdefault(key, []).append(r)
        for key, rcpts in by_domain.items():
            self._deliver_domain(envelope, key, rcpts, path, log)

    def _deliver_domain(self, envelope, key: str, rcpts, path: Path, log) -> None:
        try:
            hosts = smarthost(self.settings) if key == "smarthost" else destinations(self.settings, key)
        except (TemporaryFailure, PermanentFailure) as exc:
            for r in rcpts:
                fail_recipient(r, exc, log)
            return
        last_error: TemporaryFailure | None = None
        reused = self._take(key)
        tried = 0
        while True:
            if reused is not None:
                client, label = reused
                reused = None
            else:
                if tried >= len(hosts):
                    break
                name, ip, port = hosts[tried]
                tried += 1
                label = f"{name}[{ip}]:{port}"
                try:
                    client = self._open(name, ip, port)
                except TemporaryFailure as exc:
                    last_error = exc
                    continue
                except (OSError, smtplib.SMTPException, ValueError) as exc:
                    last_error = TemporaryFailure(f"connect to {label}: {why(exc)}", "4.4.1")
                    continue
            try:
                done = self._transaction(client, envelope, rcpts, path, label, log)
            except (OSError, smtplib.SMTPException) as exc:
                quietly_close(client)
                last_error = TemporaryFailure(f"lost connection with {label}: {why(exc)}", "4.4.2")
                continue
            if done:
                self._give_back(key, client, label)
                return
            quietly_quit(client)
        error = last_error or TemporaryFailure("no mail host answered", "4.4.1")
        for r in rcpts:
            fail_recipient(r, error, log)

    def _transaction(self, client: SmtpClient, envelope, rcpts, path: Path, label: str, log) -> bool:
        """One MAIL..DATA; returns False when this host should not be used (try the next)."""
        options = []
        if client.has_extn("size"):
            options.append(f"SIZE={envelope.size}")
        if envelope.body == "8BITMIME" and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        needs_utf8 = envelope.smtputf8 and not (envelope.sender.isascii() and
                                                all(r.address.isascii() for r in rcpts))
        if envelope.smtputf8 and client.has_extn("smtputf8"):
            options.append("SMTPUTF8")
        elif needs_utf8:
            # RFC 6531 §3.2: a non-ASCII address cannot be downgraded; ASCII ones go without.
            for r in rcpts:
                fail_recipient(r, PermanentFailure(f"{label} does not support SMTPUTF8", "5.6.7", label), log)
            return True
        dsn = client.has_extn("dsn")
        if dsn:
            options += dsn_mail_options(envelope)
        code, msg = client.mail(envelope.sender, options)
        if code >= 400:
            quietly_rset(client)
            if code >= 500:
                for r in rcpts:
                    fail_recipient(r, PermanentFailure(reply_text(code, msg), status_of(code, msg), label), log)
                return True
            return self._defer_all(rcpts, code, msg, label, log)
        accepted = []
        for r in rcpts:
            ropts = dsn_rcpt_options(r) if dsn else []
            code, msg = client.rcpt(r.address, ropts)
            if code < 300:
                accepted.append(r)
            else:
                cls = PermanentFailure if code >= 500 else TemporaryFailure
                fail_recipient(r, cls(reply_text(code, msg), status_of(code, msg), label), log)
        if not accepted:
            quietly_rset(client)
            return True
        code, msg = client.send_file_data(path)
        for r in accepted:
            if code < 300:
                r.status = DELIVERED
                r.remote_mta = label
                r.dsn_passed = dsn
                log(r, "sent", f"relay={label}", reply_text(code, msg))
            else:
                cls = PermanentFailure if code >= 500 else TemporaryFailure
                fail_recipient(r, cls(reply_text(code, msg), status_of(code, msg), label), log)
        return True

    def _defer_all(self, rcpts, code, msg, label, log) -> bool:
        for r in rcpts:
            fail_recipient(r, TemporaryFailure(reply_text(code, msg), status_of(code, msg), label), log)
        return True
