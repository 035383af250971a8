"""Sans-IO byte reader for the SMTP server: command lines, DATA and BDAT chunks.

The reader never touches a socket: ``feed(bytes)`` adds input and ``next_item()`` returns the next
complete thing, or None when more bytes are needed. The session chooses the mode:

- command mode: one line per item (RFC 5321 §2.3.8: CRLF ends a line; a bare LF is accepted for
  commands, as Postfix does). Longer than ``max_line`` → ``LineTooLong`` and the rest of that
  line is skipped (RFC 5321 §4.5.3.1.4).
- DATA mode: dot-unstuffed message bytes (RFC 5321 §4.5.2). ONLY ``CRLF . CRLF`` ends the data;
  a bare LF or bare CR before or after the dot never does, so a message cannot smuggle a second
  SMTP transaction past a downstream server that reads it differently (CVE-2023-51764 class).
- BDAT mode: exactly N raw bytes (RFC 3030 §2), no unstuffing, no end marker.

Message bytes come out in pieces as they arrive (never the whole message at once).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    data: bytes  # without the line ending


@dataclass(frozen=True)
class LineTooLong:
    pass


@dataclass(frozen=True)
class Chunk:
    data: bytes  # message bytes (DATA: unstuffed; BDAT: raw)


@dataclass(frozen=True)
class DataEnd:
    pass


@dataclass(frozen=True)
class BdatEnd:
    pass


COMMAND, DATA, BDAT = "command", "data", "bdat"

_MAX_CHUNK_OUT = 256 * 1024


class Reader:
    def __init__(self, max_line: int = 4096):
        self.max_line = max_line
        self.mode = COMMAND
        self._buf = bytearray()
        self._skipping_long_line = False
        self._line_start = True  # DATA: at the start of a line
        self._bdat_left = 0
        self._pending = None  # an item produced together with the previous one

    # -- mode switches (called by the session) -------------------------------------------------
    def start_data(self) -> None:
        self.mode = DATA
        self._line_start = True  # the CRLF after "DATA" counts as the first CRLF of CRLF.CRLF

    def start_bdat(self, size: int) -> None:
        self.mode = BDAT
        self._bdat_left = size

    def discard_buffer(self) -> int:
        """Drop unread input (RFC 3207 §4.2 after STARTTLS); returns how many bytes."""
        n = len(self._buf)
        self._buf.clear()
        self._skipping_long_line = False
        return n

    @property
    def buffered(self) -> int:
        return len(self._buf)

    # -- input -------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_item(self):
        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        if self.mode == COMMAND:
            return self._next_line()
        if self.mode == DATA:
            return self._next_data()
        return self._next_bdat()

    def _next_line(self):
        buf = self._buf
        while True:
            idx = buf.find(b"\n")
            if self._skipping_long_line:
                if idx < 0:
                    buf.clear()
                    return None
                del buf[: idx + 1]
                self._skipping_long_line = False
                continue
            if idx < 0:
                if len(buf) > self.max_line:
                    buf.clear()
                    self._skipping_long_line = True
                    return LineTooLong()
                return None
            end = idx - 1 if idx > 0 and buf[idx - 1] == 0x0D else idx
            if end > self.max_line:
                del buf[: idx + 1]
                return LineTooLong()
            line = bytes(buf[:end])
            del buf[: idx + 1]
            return Line(line)

    def _next_data(self):
        buf = self._buf
        out = bytearray()
        pos = 0
        finished = False
        n = len(buf)
        while pos < n and len(out) < _MAX_CHUNK_OUT:
            if self._line_start:
                if buf[pos] == 0x2E:  # "." at the start of a line
                    if n - pos < 3 and bytes(buf[pos:]) in (b".", b".\r"):
                        break  # wait: could be the end marker
                    if buf[pos : pos + 3] == b".\r\n":
                        pos += 3
                        finished = True
                        break
                    pos += 1  # RFC 5321 §4.5.2: drop the first of a leading dot
                self._line_start = False
            # Only a line that starts with "." needs a look; jump from one such line to the next.
            idx = buf.find(b"\r\n.", pos)
            if idx >= 0:
                out += buf[pos : idx + 2]
                pos = idx + 2
                self._line_start = True
                continue
            if buf.endswith(b"\r\n"):
                out += buf[pos:n]
                pos = n
                self._line_start = True
                break
            end = n - 1 if buf[n - 1] == 0x0D else n  # keep a lone trailing CR for later
            if end > pos:
                out += buf[pos:end]
                pos = end
            break
        del buf[:pos]
        if finished:
            self.mode = COMMAND
            if out:
                self._pending = DataEnd()
                return Chunk(bytes(out))
            return DataEnd()
        if out:
            return Chunk(bytes(out))
        return None

    def _next_bdat(self):
        if self._bdat_left == 0:
            self.mode = COMMAND
            return BdatEnd()
        if not self._buf:
            return None
        take = min(self._bdat_left, len(self._buf), _MAX_CHUNK_OUT)
        data = bytes(self._buf[:take])
        del self._buf[:take]
        self._bdat_left -= take
        return Chunk(data)
