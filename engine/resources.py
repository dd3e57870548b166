"""Where shipped assets live: ``resources/`` beside the packages (editable / source install),
or ``$HAND_STUDIO_RESOURCES``, or ``<prefix>/share/hand-studio/resources`` (wheel install)."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    """The first resources folder that exists, in the order above."""
    candidates = []
    if os.environ.get("HAND_STUDIO_RESOURCES"):
        candidates.append(Path(os.environ["HAND_STUDIO_RESOURCES"]))
    candidates.append(Path(__file__).resolve().parent.parent / "resources")
    candidates.append(Path(sys.prefix) / "share" / "hand-studio" / "resources")
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError("Hand Studio resources folder not found; looked in "
                            + ", ".join(str(c) for c in candidates))


def resource_path(relative: str) -> Path:
    """Path of one shipped asset (it may not exist; callers say what is missing)."""
    return resources_dir() / relative
