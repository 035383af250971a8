"""AUTH (RFC 4954) for the SMTP session: PLAIN and LOGIN through pymail's Authenticator.

Offered and accepted only over TLS unless the listener allows plaintext (538 5.7.11 otherwise);
the password check (twisted.cred, bcrypt in a thread, throttling) is the directory's.
"""

from __future__ import annotations

from pymail.queue import maillog
from pymail.smtp import core as ev
from pymail.smtp import sasl
from pymail.smtp.errors import Reply, SmtpError


class AuthPhase:
    # -- AUTH (RFC 4954) --------------------------------------------------------------------------
    async def on_auth(self, event: ev.Auth) -> None:
        if self.lmtp or self.ctx.authenticator is None:
            raise SmtpError(502, "5.5.1", "AUTH not available")
        if not self.auth_offered:
            # RFC 4954 §6: 538 when the mechanism needs an encrypted channel.
            raise SmtpError(538, "5.7.11", "Encryption required for requested authentication mechanism")
        if event.mechanism not in sasl.MECHANISMS:
            raise SmtpError(504, "5.5.4", "Unrecognized authentication type")
        self._sasl = {"mech": event.mechanism}
        if event.mechanism == "PLAIN":
            if event.initial is None:
                self.core.auth_challenge("")
                return
            await self._finish_auth(*sasl.parse_plain(self._cancel_check(event.initial)))
        else:
            if event.initial is None:
                self.core.auth_challenge(sasl.USERNAME_PROMPT)
                return
            self._sasl["user"] = sasl.decode_text(self._cancel_check(event.initial))
            self.core.auth_challenge(sasl.PASSWORD_PROMPT)

    @staticmethod
    def _cancel_check(text: str) -> str:
        if text == "*":
            raise SmtpError(501, "5.0.0", "Authentication cancelled")
        return text

    async def on_auth_line(self, text: str) -> None:
        state = self._sasl
        if state is None:
            raise SmtpError(503, "5.5.1", "No authentication in progress")
        self._cancel_check(text)
        if state["mech"] == "PLAIN":
            await self._finish_auth(*sasl.parse_plain(text))
        elif "user" not in state:
            state["user"] = sasl.decode_text(text)
            self.core.auth_challenge(sasl.PASSWORD_PROMPT)
        else:
            await self._finish_auth(state["user"], sasl.decode_text(text))

    async def _finish_auth(self, username: str, password: str) -> None:
        from pymail.directory.auth import AuthFailed, AuthThrottled, AuthUnavailable

        self._sasl = None
        try:
            user = await self.ctx.authenticator.authenticate(username, password, self.peer_ip)
        except (AuthThrottled, AuthUnavailable) as exc:
            maillog.event(None, f"[{self.peer_ip}]: SASL authentication for {username[:64]!r}: {exc}")
            raise SmtpError(454, "4.7.0", "Temporary authentication failure, try again later") from None
        except AuthFailed:
            self.auth_failures += 1
            maillog.event(None, f"[{self.peer_ip}]: SASL authentication failed for {username[:64]!r}")
            if self.auth_failures >= self.settings.max_auth_attempts:
                self.core.close(Reply(421, "4.7.0", "Too many authentication failures"))
                return
            raise SmtpError(535, "5.7.8", "Authentication credentials invalid") from None
        self.auth_user = user
        maillog.event(None, f"[{self.peer_ip}]: sasl_username={user}")
        self.core.accept_auth(user, Reply(235, "2.7.0", "Authentication successful"))
