"""Replace a small control file atomically: write a private temporary file, rename it over.

The temporary name is unique per process *and* thread (two threads of one process may write the
same file at once, e.g. two deliveries updating one account's quota file), so writers never
clobber each other's half-written data; the rename decides who wins.
"""

from __future__ import annotations

import os
import threading


def temp_name(path: str) -> str:
    return f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"


def replace_file(path: str, data: bytes, fsync: bool) -> None:
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
