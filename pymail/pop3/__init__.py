"""pymail.pop3 — POP3 (RFC 1939, RFC 2449, STLS RFC 2595, SASL PLAIN RFC 5034) over the store.

Implementation notes (details and RFC references in docs/pop3.md):
- ``protocol.Pop3Machine`` is the whole session logic, sans-IO; ``server`` only performs the
  actions it returns. One command at a time: pipelined input waits while an effect runs.
- Every store/directory call runs in a thread (``maildrop.MaildropSession``); the reactor only
  parses, writes and waits.
- The message list is a snapshot taken at login under an flock (``lock``); DELE only marks, and
  only QUIT in TRANSACTION removes exactly the marked UIDs. A dropped connection removes nothing.
- LIST/STAT sizes are the octets a client holds after RETR (CRLF, stuffing not counted).
"""
