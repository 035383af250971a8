"""NOTIFY (RFC 5465) for mailboxes other than the selected one.

``NotifyWatch`` remembers, per watched mailbox, what the client last heard (MESSAGES, UIDNEXT,
UIDVALIDITY, HIGHESTMODSEQ) and the account's mailbox list and subscriptions. ``poll()`` (blocking,
run in a thread by the protocol about once a second while no command runs) returns the
untagged STATUS and LIST responses for what changed (RFC 5465 §5.1-5.4). The selected mailbox
keeps its usual EXISTS/EXPUNGE/FETCH updates (at command boundaries and during IDLE).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pymail.imap import serialize, utf7
from pymail.imap.parser import Atom

MESSAGE_EVENTS = {"MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE"}
MAILBOX_EVENTS = {"MAILBOXNAME", "SUBSCRIPTIONCHANGE"}
SUPPORTED = MESSAGE_EVENTS | MAILBOX_EVENTS
EVENT_NAMES = "MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange"


@dataclass
class Filter:
    kind: str  # SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE, MAILBOXES
    names: list[str]
    events: set[str]

    def matches(self, name: str, subscribed: bool) -> bool:
        if self.kind in ("PERSONAL",):
            return True
        if self.kind == "INBOXES":
            return name == "INBOX"
        if self.kind == "SUBSCRIBED":
            return subscribed
        if self.kind == "MAILBOXES":
            return name in self.names
        if self.kind == "SUBTREE":
            return any(name == n or name.startswith(n + "/") for n in self.names)
        return False


@dataclass
class NotifyWatch:
    account: object
    filters: list[Filter]
    utf8: bool = False
    seen: dict = field(default_factory=dict)  # name → (messages, uidnext, uidvalidity, modseq)
    names: dict | None = None  # name → subscribed, as last told
    selected_name: str | None = None

    def _events_for(self, name: str, subscribed: bool) -> set[str]:
        events: set[str] = set()
        for f in self.filters:
            if f.kind not in ("SELECTED", "SELECTED-DELAYED") and f.matches(name, subscribed):
                events |= f.events
        return events

    def _status(self, name: str) -> tuple[int, int, int, int] | None:
        from pymail.store.errors import StoreError

        try:
            with self.account.mailbox(name) as mb:
                mb.sync()
                return mb.count(), mb.uidnext, mb.uidvalidity, mb.highest_modseq
        except StoreError:
            return None

    def _status_line(self, name: str, values, with_modseq: bool) -> bytes:
        items = [Atom("MESSAGES"), values[0], Atom("UIDNEXT"), values[1], Atom("UIDVALIDITY"), values[2]]
        if with_modseq:
            items += [Atom("HIGHESTMODSEQ"), values[3]]
        return serialize.untagged("STATUS", utf7.to_wire(name, self.utf8).encode("utf-8"), items,
                                  utf8=self.utf8)

    def initial(self, with_status: bool) -> list[bytes]:
        """Snapshot now; with ``STATUS`` also tell the client where each mailbox stands (§3)."""
        out = []
        infos = self.account.list_mailboxes()
        self.names = {i.name: i.subscribed for i in infos}
        for info in infos:
            events = self._events_for(info.name, info.subscribed)
            if not events & MESSAGE_EVENTS or info.name == self.selected_name:
                continue
            values = self._status(info.name)
            if values is None:
                continue
            self.seen[info.name] = values
            if with_status:
                out.append(self._status_line(info.name, values, "FLAGCHANGE" in events))
        return out

    def poll(self) -> list[bytes]:
        out: list[bytes] = []
        infos = {i.name: i.subscribed for i in self.account.list_mailboxes()}
        before = self.names or {}
        for name in sorted(set(infos) | set(before)):
            events = self._events_for(name, infos.get(name, before.get(name, False)))
            quoted = utf7.to_wire(name, self.utf8).encode("utf-8")
            if "MAILBOXNAME" in events:
                if name in infos and name not in before:
                    out.append(serialize.untagged("LIST", [], b"/", quoted, utf8=self.utf8))
                elif name in before and name not in infos:
                    out.append(serialize.untagged("LIST", [Atom("\\NonExistent")], b"/", quoted,
                                                  utf8=self.utf8))
            if "SUBSCRIPTIONCHANGE" in events and name in infos and name in before \
                    and infos[name] != before[name]:
                attrs = [Atom("\\Subscribed")] if infos[name] else []
                out.append(serialize.untagged("LIST", attrs, b"/", quoted, utf8=self.utf8))
        self.names = infos
        for name, subscribed in infos.items():
            events = self._events_for(name, subscribed)
            if not events & MESSAGE_EVENTS or name == self.selected_name:
                continue
            values = self._status(name)
            if values is None:
                continue
            old = self.seen.get(name)
            self.seen[name] = values
            if old is None or old == values:
                continue
            counts_moved = old[:3] != values[:3]
            flags_moved = old[3] != values[3] and "FLAGCHANGE" in events
            if counts_moved or flags_moved:
                out.append(self._status_line(name, values, "FLAGCHANGE" in events))
        return out
