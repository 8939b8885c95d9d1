"""Moving a damaged data file out of the way (Qt-free), so a fresh one can start without losing the old."""

from __future__ import annotations

import os
from pathlib import Path


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``NAME.damaged.EXT`` (or ``NAME.damaged-2.EXT``, ... when that exists) and return
    the new path; never overwrites an earlier damaged copy. Raises OSError when the rename fails."""
    for number in range(1, 1000):
        tag = "damaged" if number == 1 else f"damaged-{number}"
        aside = path.with_name(f"{path.stem}.{tag}{path.suffix}")
        if not aside.exists():
            os.replace(path, aside)
            return aside
    raise FileExistsError(17, "too many damaged copies kept beside it", str(path))
