"""Files a spec names: one reading of a path for the check and for the reader alike."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["spec_path"]


def spec_path(value: str | Path) -> Path:
    """A path a spec gives (a dataset's, a table's, a policy's) as every reader opens it and
    the service checks it: ``~`` expanded, made absolute from the working directory, and
    ``..`` taken lexically (``a/b/../c`` is ``a/c``, whether or not ``a/b`` exists or is a
    link). The kernel takes ``/X/../Y`` through ``/X`` and fails where ``/X`` is missing,
    which told a client of the service whether folders outside its data roots exist."""
    return Path(os.path.normpath(os.path.abspath(os.path.expanduser(value))))
