"""Make a write durable: fsync a file or a directory by its path.

A rename, a new file or an unlink is durable only once the directory that holds the name is
fsynced (POSIX leaves it to the filesystem; ext4 and NFS clients need it). One helper for every
package that promises "written" (store, queue, Sieve scripts), so none of them forgets the
directory or opens it in a way one filesystem refuses.
"""

from __future__ import annotations

import os


def sync_path(path: str | os.PathLike, data_only: bool = False) -> None:
    """fsync (``data_only``: fdatasync) a file or a directory by its path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        (os.fdatasync if data_only else os.fsync)(fd)
    finally:
        os.close(fd)
