"""The queue on disk: one file per message, written so that a 250 is never a lie.

Layout under the queue directory::

    msg/<id>              the message (Received header first), followed by its envelope (the
                          trailer, see below) until the first delivery attempt that leaves it
                          queued; the file's mode says which (``PLAIN``/``SEALED``/``TRIED``)
    msg/<id>.json         the envelope, once it changed after acceptance (delivery attempts,
                          hold/release); when present it wins over the trailer
    msg/.<id>.<pid>.<tid>.tmp       an envelope being written
    tmp/.<id>.<pid>.<tid>.view.tmp  a message-only copy read by a first delivery attempt (only
                          where Linux's memfd is missing; else the copy is in memory)
    corrupt/<id>          a sealed file whose trailer does not check (a torn write; never acked)

Acceptance (``commit``/``seal``, before the SMTP 250): the envelope is appended to the message
file as a trailer (JSON, then a fixed-size footer with both lengths and CRC-32s), the file's mode
becomes ``SEALED`` (0700, like Postfix marks a finished queue file executable), the file is
fsynced and then the folder (group commit, ``GroupSync``): one file fsync per message. A message
file whose mode is not sealed and that has no ``.json`` is being written or an orphan of a crash
before the fsync returned (no 250 was given); ``recover()`` removes old ones.

Delivery: a first attempt marks the file ``TRIED`` (0710, a chmod: every recipient of the trailer
is then in flight, RFC 5321 §6.1) instead of rewriting the envelope, and reads the message
through a copy without the trailer. An attempt that leaves the message queued writes
``<id>.json`` (write temp, fsync, rename, fsync folder) and then strips the trailer from the
message file (truncate, mode ``PLAIN``, fsync). A delivered message is unlinked (envelope
first), without a folder fsync (see ``remove``). Queue directories of the older layout (a plain
message file and its ``.json`` from the start) are read as they are.

A runner delivering a message holds an exclusive ``flock`` on its message file, so several
processes (pymail-server workers, the admin CLI) can share one queue directory.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

from pymail.durable import sync_path
from pymail.queue.envelope import Envelope
from pymail.queue.ids import new_queue_id, valid_queue_id

PLAIN = 0o600  # the message alone: being written, or its envelope is <id>.json
SEALED = 0o700  # message + envelope trailer, fsynced: queued, no attempt yet
TRIED = 0o710  # sealed, and a first delivery attempt has started
SEALED_BIT = stat.S_IXUSR

# "\nPYMAILQ1 <json length> <message length> <crc32 json> <crc32 message>\n"
FOOTER_SIZE = 52
_FOOTER = re.compile(rb"\nPYMAILQ1 (\d{10}) (\d{12}) ([0-9a-f]{8}) ([0-9a-f]{8})\n\Z")


class QueueError(Exception):
    """A queue operation failed; the message is safe to show an administrator."""


def footer(json_len: int, message_len: int, json_crc: int, message_crc: int) -> bytes:
    out = b"\nPYMAILQ1 %010d %012d %08x %08x\n" % (json_len, message_len, json_crc, message_crc)
    assert len(out) == FOOTER_SIZE
    return out


def trailer(envelope: Envelope, message_len: int, message_crc: int) -> bytes:
    raw = envelope.to_json()
    return raw + footer(len(raw), message_len, zlib.crc32(raw), message_crc)


def _pread_all(fd: int, n: int, offset: int) -> bytes:
    parts = []
    while n > 0:
        chunk = os.pread(fd, min(n, 1 << 20), offset)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)


def file_crc(fd: int, length: int) -> int:
    crc, offset = 0, 0
    while offset < length:
        chunk = os.pread(fd, min(length - offset, 1 << 20), offset)
        if not chunk:
            break
        crc = zlib.crc32(chunk, crc)
        offset += len(chunk)
    return crc


def read_trailer(fd: int, queue_id: str, check_message: bool = False) -> tuple[Envelope, int]:
    """The envelope of a sealed file and the length of its message part. Raises QueueError when
    the trailer does not check (lengths, CRC-32, the queue ID inside): a torn file."""
    size = os.fstat(fd).st_size
    if size < FOOTER_SIZE:
        raise QueueError(f"{queue_id}: damaged queue file (no envelope trailer)")
    match = _FOOTER.match(os.pread(fd, FOOTER_SIZE, size - FOOTER_SIZE))
    if match is None:
        raise QueueError(f"{queue_id}: damaged queue file (no envelope trailer)")
    json_len, message_len = int(match[1]), int(match[2])
    if message_len + json_len + FOOTER_SIZE != size:
        raise QueueError(f"{queue_id}: damaged queue file (lengths do not match)")
    raw = _pread_all(fd, json_len, message_len)
    if zlib.crc32(raw) != int(match[3], 16):
        raise QueueError(f"{queue_id}: damaged queue file (envelope checksum)")
    if check_message and file_crc(fd, message_len) != int(match[4], 16):
        raise QueueError(f"{queue_id}: damaged queue file (message checksum)")
    try:
        envelope = Envelope.from_json(raw)
    except (ValueError, TypeError, KeyError) as exc:
        raise QueueError(f"{queue_id}: damaged envelope ({exc})") from None
    if envelope.queue_id != queue_id:
        raise QueueError(f"{queue_id}: damaged queue file (envelope of {envelope.queue_id})")
    return envelope, message_len


class GroupSync:
    """Directory fsync shared by concurrent callers: each caller returns after an fsync that
    started after it called, but one fsync serves every caller waiting for it."""

    def __init__(self, path: Path):
        self.path = path
        self._cond = threading.Condition()
        self._started = 0
        self._done = 0
        self._running = False
        self._error: OSError | None = None

    def sync(self) -> None:
        with self._cond:
            target = self._started + 1
            while self._done < target:
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                self._started += 1
                generation = self._started
                self._cond.release()
                error = None
                try:
                    sync_path(self.path)
                except OSError as exc:
                    error = exc
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._done = generation
                    self._error = error
                    self._cond.notify_all()
            if self._error is not None:
                raise self._error


class QueueDir:
    def __init__(self, root: str | os.PathLike, fsync: bool = True):
        self.root = Path(root)
        self.fsync = fsync
        self.msg = self.root / "msg"
        self.msg.mkdir(parents=True, exist_ok=True)
        self._group = GroupSync(self.msg)
        self._due_cache: dict[str, tuple[int, bool, float]] = {}
        self.made_here = 0

    # -- paths ---------------------------------------------------------------------------------
    def new_id(self) -> str:
        return new_queue_id()

    def tmp_path(self, queue_id: str) -> Path:
        """Where a message is spooled while it arrives (its final place: no rename needed)."""
        return self.msg / queue_id

    def data_path(self, queue_id: str) -> Path:
        return self.msg / queue_id

    def env_path(self, queue_id: str) -> Path:
        return self.msg / f"{queue_id}.json"

    def files(self) -> list[str]:
        return sorted(os.listdir(self.msg))

    def _scratch(self, queue_id: str, kind: str = "") -> Path:
        return self.msg / f".{queue_id}.{os.getpid()}.{threading.get_ident()}{kind}.tmp"

    # -- writing -------------------------------------------------------------------------------
    def _sync(self, fd: int) -> None:
        if self.fsync:
            os.fsync(fd)

    def _sync_dir(self) -> None:
        if self.fsync:
            self._group.sync()

    def seal(self, fd: int, envelope: Envelope, message_len: int, message_crc: int) -> None:
        """Append the envelope to a fully written message file open as ``fd``, mark it sealed
        and fsync it (the folder is synced by the caller)."""
        data = memoryview(trailer(envelope, message_len, message_crc))
        offset = message_len
        while data:
            n = os.pwrite(fd, data, offset)
            data = data[n:]
            offset += n
        os.fchmod(fd, SEALED)
        self._sync(fd)

    def commit(self, envelope: Envelope, spooled: Path, message_len: int | None = None,
               message_crc: int | None = None) -> None:
        """Make a fully written spool file durable with its envelope (blocking). Once it
        returns, the message is queued; if it raises, nothing of it will be delivered."""
        final = self.data_path(envelope.queue_id)
        fd = os.open(spooled, os.O_RDWR)
        try:
            length = os.fstat(fd).st_size
            if message_len is not None and message_len != length:
                raise OSError(f"spool file has {length} bytes, {message_len} were written")
            crc = message_crc if message_crc is not None else file_crc(fd, length)
            try:
                self.seal(fd, envelope, length, crc)
            except BaseException:
                os.fchmod(fd, PLAIN)  # not queued: no half trailer, no seal left behind
                os.ftruncate(fd, length)
                raise
        finally:
            os.close(fd)
        if Path(spooled) != final:
            os.rename(spooled, final)
        self._sync_dir()

    def save(self, envelope: Envelope) -> None:
        """Durably replace an envelope (after a delivery attempt, hold, release): it goes to
        ``<id>.json``, then the trailer, if any, is stripped from the message file."""
        self._write_envelope(envelope)
        self._strip(envelope.queue_id)

    def _strip(self, queue_id: str) -> None:
        try:
            fd = os.open(self.data_path(queue_id), os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            if not os.fstat(fd).st_mode & SEALED_BIT:
                return
            try:
                _, message_len = read_trailer(fd, queue_id)
            except QueueError:
                return  # the .json is the truth now; readers bound the message by its size
            os.ftruncate(fd, message_len)
            os.fchmod(fd, PLAIN)
            self._sync(fd)
        finally:
            os.close(fd)

    def _write_envelope(self, envelope: Envelope) -> None:
        final = self.env_path(envelope.queue_id)
        tmp = self._scratch(envelope.queue_id)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, envelope.to_json())
            self._sync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.rename(tmp, final)
        self._sync_dir()

    def enqueue_bytes(self, envelope: Envelope, message: bytes) -> None:
        """Queue a message made here (bounces, DSNs, Sieve redirects and vacation replies)."""
        path = self.tmp_path(envelope.queue_id)
        envelope.size = len(message)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, PLAIN)
        try:
            view = memoryview(message)
            while view:
                view = view[os.write(fd, view):]
            self.seal(fd, envelope, len(message), zlib.crc32(message))
        except BaseException:
            os.close(fd)
            os.unlink(path)
            raise
        os.close(fd)
        self._sync_dir()
        self.made_here += 1  # tells the runner to look again soon (bounces, Sieve redirects)

    def mark_tried(self, queue_id: str) -> None:
        """Before a first delivery attempt of a sealed message: say it started (every recipient
        in the trailer is then in flight, RFC 5321 §6.1).

        Not fsynced: the mark survives a crash of the process at once (it is in the kernel),
        and a journaling filesystem (ext4, XFS) commits metadata in order, so the store's fsync
        of the delivered copy makes this earlier change durable too when both live on one
        filesystem. Otherwise a power failure in that window can redeliver without the
        "possible duplicate" log line; nothing is lost either way."""
        os.chmod(self.data_path(queue_id), TRIED)

    def remove(self, queue_id: str) -> None:
        """Dequeue: the envelope goes first, so a crash never leaves an envelope without data.

        The folder is not fsynced: a removal lost in a power failure makes the message due again,
        and since its attempt was journaled (``TRIED`` or ``in_flight``, both fsynced before
        the delivery) the runner logs it as a possible duplicate (RFC 5321 §6.1). Postfix does
        not sync its queue folders after deleting a queue file either."""
        for path in (self.env_path(queue_id), self.data_path(queue_id)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    # -- reading -------------------------------------------------------------------------------
    def load(self, queue_id: str) -> Envelope:
        if not valid_queue_id(queue_id):
            raise QueueError(f"{queue_id!r} is not a queue ID")
        try:
            return self._load_json(queue_id)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(self.data_path(queue_id), os.O_RDONLY)
        except FileNotFoundError:
            raise QueueError(f"{queue_id}: no such message in the queue") from None
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
            if not mode & SEALED_BIT:
                error = QueueError(f"{queue_id}: no such message in the queue")
            else:
                try:
                    envelope, _ = read_trailer(fd, queue_id)
                    error = None
                except QueueError as exc:
                    error = exc
        finally:
            os.close(fd)
        if error is not None:
            try:  # converted to <id>.json meanwhile (a delivery attempt or hold by another process)
                return self._load_json(queue_id)
            except FileNotFoundError:
                raise error from None
        if mode == TRIED:
            envelope.attempts = max(envelope.attempts, 1)
            for r in envelope.pending():
                r.in_flight = True
        return envelope

    def _load_json(self, queue_id: str) -> Envelope:
        raw = self.env_path(queue_id).read_bytes()
        try:
            return Envelope.from_json(raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise QueueError(f"{queue_id}: damaged envelope ({exc})") from None

    def in_trailer(self, queue_id: str) -> bool:
        """The message's envelope is still its file's trailer (no attempt left it queued)."""
        if self.env_path(queue_id).exists():
            return False
        try:
            return bool(os.stat(self.data_path(queue_id)).st_mode & SEALED_BIT)
        except FileNotFoundError:
            return False

    def message_length(self, queue_id: str) -> int:
        """Bytes of the message in its file (without a trailer)."""
        with open(self.data_path(queue_id), "rb") as f:
            fd = f.fileno()
            if os.fstat(fd).st_mode & SEALED_BIT:
                try:
                    return read_trailer(fd, queue_id)[1]
                except QueueError:
                    pass
            return os.fstat(fd).st_size

    @contextmanager
    def message(self, queue_id: str):
        """A path to a file holding the message alone, for delivery (hold the lock). A message
        whose envelope is in its trailer is copied for the attempt into memory (a Linux memfd,
        read through ``/proc/self/fd``), or else into a scratch file under ``tmp/``: no fsync,
        and the queue folder is left alone."""
        path = self.data_path(queue_id)
        if not self.in_trailer(queue_id):
            self._strip(queue_id)  # a conversion a crash interrupted
            yield path
            return
        with open(path, "rb") as src:
            _, length = read_trailer(src.fileno(), queue_id)
            fd, view = self._view_file(queue_id)
            try:
                _copy(src.fileno(), fd, length)
            except BaseException:
                _close_view(fd, view)
                raise
        try:
            yield view if view is not None else Path(f"/proc/self/fd/{fd}")
        finally:
            _close_view(fd, view)

    def _view_file(self, queue_id: str) -> tuple[int, Path | None]:
        """(fd, path) of an empty scratch file; the path is None for a memfd (read it through
        ``/proc/self/fd/<fd>``)."""
        if _MEMFD:
            try:
                fd = os.memfd_create(f"pymail-queue-{queue_id}", os.MFD_CLOEXEC)
                return fd, None
            except OSError:
                pass
        scratch = self.root / "tmp"
        scratch.mkdir(exist_ok=True)
        path = scratch / f".{queue_id}.{os.getpid()}.{threading.get_ident()}.view.tmp"
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600), path

    def _scan(self) -> tuple[set[str], list[str]]:
        """(IDs with a .json, IDs of sealed files without one)."""
        names = os.listdir(self.msg)
        with_json = {n[:-5] for n in names if n.endswith(".json") and not n.startswith(".")}
        sealed = []
        for name in names:
            if name in with_json or not valid_queue_id(name):
                continue
            try:
                if os.stat(self.msg / name).st_mode & SEALED_BIT:
                    sealed.append(name)
            except FileNotFoundError:
                continue
        return with_json, sealed

    def ids(self) -> list[str]:
        with_json, sealed = self._scan()
        return sorted(with_json.union(sealed))

    def envelopes(self) -> list[Envelope]:
        out = []
        for qid in self.ids():
            try:
                out.append(self.load(qid))
            except QueueError:
                continue
        return out

    def due(self, now: float | None = None) -> list[str]:
        """IDs of messages to try now. A sealed message without .json was never held or
        deferred, so it is due without reading it; envelopes are re-read only when their file
        changed, so a large deferred queue costs a stat per message per scan, not a JSON parse."""
        now = time.time() if now is None else now
        with_json, sealed = self._scan()
        cache = self._due_cache
        fresh: dict[str, tuple[int, bool, float]] = {}
        out = list(sealed)
        for qid in with_json:
            try:
                mtime = os.stat(self.env_path(qid)).st_mtime_ns
            except FileNotFoundError:
                continue
            entry = cache.get(qid)
            if entry is None or entry[0] != mtime:
                try:
                    env = self._load_json(qid)
                except (QueueError, FileNotFoundError):
                    continue
                entry = (mtime, env.held, env.next_attempt)
            fresh[qid] = entry
            if not entry[1] and entry[2] <= now:
                out.append(qid)
        self._due_cache = fresh
        return sorted(out)

    # -- locking ------------------------------------------------------------------------------
    @contextmanager
    def locked(self, queue_id: str, wait: float = 0.0):
        """Hold the message's lock; yields False (and holds nothing) if another holds it."""
        try:
            fd = os.open(self.data_path(queue_id), os.O_RDONLY)
        except FileNotFoundError:
            yield False
            return
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.05)
            yield True
        finally:
            os.close(fd)

    # -- start-up ------------------------------------------------------------------------------
    def recover(self, min_age: float = 3600.0) -> list[str]:
        """Clean what a crash left behind; returns the IDs of removed orphans (never acked).

        Unsealed message files without envelope go once older than ``min_age`` seconds
        (another process sharing the queue may be writing a young one right now). A sealed file
        whose trailer does not check (message CRC included) is a write torn by a crash before
        its fsync returned, so it was never acknowledged: it is moved to ``corrupt/``.
        """
        removed = []
        cutoff = time.time() - min_age

        def old(path: Path) -> bool:
            try:
                return path.stat().st_mtime < cutoff
            except FileNotFoundError:
                return False

        scratch = self.root / "tmp"
        for name in os.listdir(scratch) if scratch.is_dir() else ():
            if old(scratch / name):
                try:
                    os.unlink(scratch / name)
                except FileNotFoundError:
                    pass
        with_json, sealed = self._scan()
        for name in os.listdir(self.msg):
            path = self.msg / name
            if name.startswith("."):
                if name.endswith(".tmp") and old(path):
                    try:
                        os.unlink(path)
                    except FileNotFoundError:
                        pass
                continue
            if name.endswith(".json") or name in with_json:
                continue
            if name in sealed:
                self._check_sealed(name, removed)
                continue
            if not old(path):
                continue
            with self.locked(name) as got:
                if got and not self.env_path(name).exists() and not self.in_trailer(name):
                    os.unlink(path)
                    removed.append(name)
        return removed

    def _check_sealed(self, queue_id: str, removed: list[str]) -> None:
        with self.locked(queue_id) as got:
            if not got or self.env_path(queue_id).exists():
                return
            try:
                with open(self.data_path(queue_id), "rb") as f:
                    read_trailer(f.fileno(), queue_id, check_message=True)
                return
            except FileNotFoundError:
                return
            except QueueError:
                pass
            corrupt = self.root / "corrupt"
            corrupt.mkdir(exist_ok=True)
            os.rename(self.data_path(queue_id), corrupt / queue_id)
            removed.append(queue_id)


_MEMFD = hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd")


def _close_view(fd: int, path: Path | None) -> None:
    os.close(fd)
    if path is not None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _copy(src: int, dst: int, length: int) -> None:
    offset = 0
    while offset < length:
        chunk = os.pread(src, min(length - offset, 1 << 20), offset)
        if not chunk:
            raise QueueError("queue file shorter than its trailer says")
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view):]
        offset += len(chunk)
