"""Paths the user typed."""
from __future__ import annotations

import os
from pathlib import Path


def user_path(text: str | os.PathLike) -> Path:
    """``text`` as a path with a leading ``~`` / ``~user`` expanded. A ``~user`` with no home
    folder is a ValueError naming it (pathlib raises RuntimeError, which no dialog expects)."""
    path = Path(text)
    try:
        return path.expanduser()
    except RuntimeError:
        head = str(text).split("/", 1)[0]
        raise ValueError(f"{text}: cannot expand {head!r}: there is no such user's home folder") from None
