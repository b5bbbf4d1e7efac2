"""Faults of the artifacts folder's disk, as answers a client can act on.

A file that cannot be written because the disk is full (or a quota or file-size limit is
reached) is ``StorageError`` with status 507 Insufficient Storage; one that cannot be written
because the folder is read-only, not writable or failing (I/O error) is 503 Service
Unavailable. Messages say what failed and what to do, not where the files are on the server.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = ["StorageError", "storage_error"]

FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTDIR}


class StorageError(Exception):
    """The artifacts folder cannot take a write: ``status`` 507 (full) or 503."""

    def __init__(self, message: str, *, full: bool) -> None:
        super().__init__(message)
        self.full = full
        self.status = 507 if full else 503


def storage_error(
    exc: BaseException, folder: Path, doing: str, outcome: str
) -> StorageError | None:
    """``exc``, raised while ``doing`` (e.g. "writing the onnx export") under ``folder``, as
    a ``StorageError`` when the disk is at fault, else ``None``. ``outcome`` says what became
    of the request (e.g. "nothing was written"). Writers that wrap the operating system's
    error (``torch.save`` raises ``RuntimeError``) are judged by the file system's state."""
    code = getattr(exc, "errno", None)
    if code in FULL:
        full, cause = True, "full"
    elif code in UNWRITABLE:
        full = False
        cause = {
            errno.EROFS: "read-only",
            errno.EIO: "failing (I/O error)",
            errno.ENOTDIR: "not a folder (a file stands where its folder should be)",
        }.get(code, "not writable (permission denied)")
    else:
        state = _filesystem_state(folder)
        if state is None:
            return None
        full, cause = state
    if full:
        fix = "Free space on the server (or raise its quota), then try again."
    else:
        fix = "Once an operator has made it writable again, try again."
    return StorageError(
        f"the server's artifacts storage is {cause}: {doing} failed; {outcome}. {fix}",
        full=full,
    )


def _filesystem_state(folder: Path) -> tuple[bool, str] | None:
    """``(full, cause)`` when the file system holding ``folder`` is full or read-only."""
    path = folder
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    if stats.f_flag & os.ST_RDONLY:
        return False, "read-only"
    if stats.f_bavail == 0:
        return True, "full"
    return None
