"""Remote delivery: MX lookup (dnspython), SMTP client (stdlib smtplib, run in a thread).

- RFC 5321 §5.1: MX records by preference; no MX → the domain's own A/AAAA ("implicit MX");
  RFC 7505 null MX ("0 .") → permanent failure 5.1.10; NXDOMAIN → permanent 5.1.2.
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
import socket
import ssl
import threading
import time
from pathlib import Path

import dns.exception
import dns.resolver

from pymail.queue.commands_out import dsn_mail_options, dsn_rcpt_options
from pymail.queue.envelope import DELIVERED, FAILED
from pymail.queue.errors import PermanentFailure, TemporaryFailure


class SmtpClient(smtplib.SMTP):
    def send_file_data(self, path: Path) -> tuple[int, bytes]:
        """DATA with the body streamed from ``path`` (RFC 5321 §4.5.2).

        Every line end (CRLF, bare LF, bare CR) goes out as CRLF and each line is dot-stuffed
        after that, so no byte sequence a client smuggled into a message can end our DATA early
        at the next server (SMTP smuggling).
        """
        code, msg = self.docmd("data")
        if code != 354:
            return code, msg
        with open(path, "rb") as f:
            batch: list[bytes] = []
            size = 0
            for raw in f:
                content = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
                for line in content.split(b"\r"):
                    if line.startswith(b"."):
                        line = b"." + line
                    batch.append(line + b"\r\n")
                    size += len(line) + 2
                if size >= 64 * 1024:
                    self.send(b"".join(batch))
                    batch, size = [], 0
            batch.append(b".\r\n")
            self.send(b"".join(batch))
        return self.getreply()


class RemoteDelivery:
    def __init__(self, settings, hostname: str):
        self.settings = settings
        self.hostname = hostname
        self._pool: dict[str, list[tuple[float, SmtpClient, str]]] = {}
        self._lock = threading.Lock()

    # -- DNS ---------------------------------------------------------------------------------------
    def resolver(self) -> dns.resolver.Resolver:
        if self.settings.dns_nameservers:
            r = dns.resolver.Resolver(configure=False)
            r.nameservers = list(self.settings.dns_nameservers)
        else:
            r = dns.resolver.Resolver()
        r.port = self.settings.dns_port
        r.lifetime = self.settings.dns_timeout
        return r

    def destinations(self, domain: str) -> list[tuple[str, str, int]]:
        """[(name, ip, port)] to try in order for ``domain``."""
        port = self.settings.remote_port
        if domain.startswith("[") and domain.endswith("]"):
            ip = domain[1:-1]
            if ip.lower().startswith("ipv6:"):
                ip = ip[5:]
            return [(ip, ip, port)]
        resolver = self.resolver()
        try:
            answer = resolver.resolve(domain, "MX")
            records = sorted(answer, key=lambda r: r.preference)
            names = [r.exchange.to_text().rstrip(".") for r in records]
            if len(names) == 1 and names[0] == "":
                raise PermanentFailure(f"{domain} accepts no mail (null MX)", "5.1.10")
            names = [n for n in names if n]
        except dns.resolver.NXDOMAIN:
            raise PermanentFailure(f"Host or domain name not found: {domain}", "5.1.2") from None
        except dns.resolver.NoAnswer:
            names = [domain]  # RFC 5321 §5.1 implicit MX
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise TemporaryFailure(f"DNS lookup of {domain} failed: {exc}", "4.4.3") from None
        out = []
        for name in names:
            for rdtype in ("A", "AAAA"):
                try:
                    for rr in resolver.resolve(name, rdtype):
                        out.append((name, rr.to_text(), port))
                except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                    continue
                except (dns.exception.Timeout, dns.resolver.NoNameservers):
                    continue
        if not out:
            raise TemporaryFailure(f"no address found for the mail hosts of {domain}", "4.4.4")
        return out

    def smarthost(self) -> list[tuple[str, str, int]]:
        host, _, port = self.settings.smarthost.rpartition(":")
        if not host:
            host, port = self.settings.smarthost, "25"
        return [(host, host, int(port))]

    # -- sessions ----------------------------------------------------------------------------------
    def _open(self, name: str, ip: str, port: int) -> SmtpClient:
        s = self.settings
        if self.settings.smarthost and s.smarthost_tls == "implicit":
            client: SmtpClient = _ImplicitTlsClient(timeout=s.connect_timeout, local_hostname=self.hostname,
                                                    context=_opportunistic_context())
        else:
            client = SmtpClient(timeout=s.connect_timeout, local_hostname=self.hostname)
        client._host = name  # smtplib's name for SNI in starttls()
        code, msg = client.connect(ip, port)
        if code != 220:
            client.close()
            raise TemporaryFailure(f"{name}[{ip}] greeted with {code} {msg.decode(errors='replace')}", "4.4.2")
        client.sock.settimeout(s.command_timeout)
        client.ehlo_or_helo_if_needed()
        want_tls = s.outbound_tls and not isinstance(client, _ImplicitTlsClient)
        if want_tls and client.has_extn("starttls"):
            try:
                client.starttls(context=_opportunistic_context())
                client.ehlo()
            except (ssl.SSLError, smtplib.SMTPException, OSError, ValueError):
                # RFC 7435: opportunistic — fall back to cleartext with the same host
                _quietly_close(client)
                if self.settings.smarthost and s.smarthost_tls == "starttls" and s.smarthost_username:
                    raise TemporaryFailure(f"TLS with smarthost {name} failed", "4.7.5") from None
                client = SmtpClient(timeout=s.connect_timeout, local_hostname=self.hostname)
                client._host = name
                client.connect(ip, port)
                client.ehlo_or_helo_if_needed()
        if self.settings.smarthost and s.smarthost_username:
            if s.smarthost_tls == "starttls" and client.sock is not None and not isinstance(client.sock, ssl.SSLSocket):
                _quietly_close(client)
                raise TemporaryFailure(f"smarthost {name} offers no STARTTLS; not sending the password", "4.7.5")
            try:
                client.login(s.smarthost_username, s.smarthost_password)
            except smtplib.SMTPAuthenticationError as exc:
                _quietly_close(client)
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
            _quietly_quit(client)

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
            hosts = self.smarthost() if key == "smarthost" else self.destinations(key)
        except (TemporaryFailure, PermanentFailure) as exc:
            for r in rcpts:
                _fail(r, exc, log)
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
                    last_error = TemporaryFailure(f"connect to {label}: {_why(exc)}", "4.4.1")
                    continue
            try:
                done = self._transaction(client, envelope, rcpts, path, label, log)
            except (OSError, smtplib.SMTPException) as exc:
                _quietly_close(client)
                last_error = TemporaryFailure(f"lost connection with {label}: {_why(exc)}", "4.4.2")
                continue
            if done:
                self._give_back(key, client, label)
                return
            _quietly_quit(client)
        error = last_error or TemporaryFailure("no mail host answered", "4.4.1")
        for r in rcpts:
            _fail(r, error, log)

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
                _fail(r, PermanentFailure(f"{label} does not support SMTPUTF8", "5.6.7", label), log)
            return True
        dsn = client.has_extn("dsn")
        if dsn:
            options += dsn_mail_options(envelope)
        code, msg = client.mail(envelope.sender, options)
        if code >= 400:
            _quietly_rset(client)
            if code >= 500:
                for r in rcpts:
                    _fail(r, PermanentFailure(_reply(code, msg), _status(code, msg), label), log)
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
                _fail(r, cls(_reply(code, msg), _status(code, msg), label), log)
        if not accepted:
            _quietly_rset(client)
            return True
        code, msg = client.send_file_data(path)
        for r in accepted:
            if code < 300:
                r.status = DELIVERED
                r.remote_mta = label
                r.dsn_passed = dsn
                log(r, "sent", f"relay={label}", _reply(code, msg))
            else:
                cls = PermanentFailure if code >= 500 else TemporaryFailure
                _fail(r, cls(_reply(code, msg), _status(code, msg), label), log)
        return True

    def _defer_all(self, rcpts, code, msg, label, log) -> bool:
        for r in rcpts:
            _fail(r, TemporaryFailure(_reply(code, msg), _status(code, msg), label), log)
        return True


class _ImplicitTlsClient(smtplib.SMTP_SSL, SmtpClient):
    pass


def _opportunistic_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _fail(r, exc, log) -> None:
    r.last_error = f"{exc.status} {exc.text}" if exc.status and not exc.text.startswith(exc.status[:1]) else exc.text
    r.remote_mta = exc.remote_mta or r.remote_mta
    if exc.permanent:
        r.status = FAILED
        log(r, "bounced", f"relay={exc.remote_mta or 'none'}", r.last_error)
    else:
        log(r, "deferred", f"relay={exc.remote_mta or 'none'}", r.last_error)


def _reply(code: int, msg: bytes) -> str:
    return f"{code} {msg.decode('utf-8', 'replace')}".replace("\n", " ")


def _status(code: int, msg: bytes) -> str:
    text = msg.decode("ascii", "replace")
    first = text.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and first[0] == str(code)[0]:
        return first
    return f"{str(code)[0]}.0.0"


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


def _quietly_rset(client) -> None:
    try:
        client.rset()
    except (OSError, smtplib.SMTPException):
        pass


def _quietly_quit(client) -> None:
    try:
        if client.sock is not None:
            client.sock.settimeout(2.0)  # a polite QUIT, but never a long wait for it
        client.quit()
    except (OSError, smtplib.SMTPException):
        _quietly_close(client)


def _quietly_close(client) -> None:
    try:
        client.close()
    except OSError:
        pass
