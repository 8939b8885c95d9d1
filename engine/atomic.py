"""Atomic file writes: write beside the target, then rename into place.

A crash or kill at any moment leaves either the old file or the complete new one under the
target's name, never a torn one (the rename is atomic on POSIX and Windows file systems).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(
    path: str | os.PathLike, write: Callable[[Path], None], suffix: str = ".tmp", fsync: bool = False
) -> Path:
    """Call ``write(tmp)`` on a temporary file in the target's folder, then rename it to ``path``.

    ``suffix`` keeps an extension libraries look at (e.g. ".nii.gz" for nibabel's compression).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; these are ordinary files
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
