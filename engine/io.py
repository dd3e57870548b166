"""Clip files by extension. ``.npz`` is handled by ``Clip`` itself; the exchange formats
(FBX, BVH, glTF, mocap importers) plug in here."""
from __future__ import annotations

from pathlib import Path

from engine.motion.clip import Clip, ClipError

READERS: dict[str, object] = {}  # suffix -> callable(Path) -> Clip
WRITERS: dict[str, object] = {}  # suffix -> callable(Clip, Path) -> Path


def load_clip(path: Path) -> Clip:
    reader = READERS.get(Path(path).suffix.lower())
    if reader is None:
        raise ClipError(f"{path}: cannot read {Path(path).suffix or 'files without an extension'}; "
                        f"supported: {sorted(['.npz', *READERS])}")
    return reader(Path(path))


def save_clip(clip: Clip, path: Path) -> Path:
    writer = WRITERS.get(Path(path).suffix.lower())
    if writer is None:
        raise ClipError(f"{path}: cannot write {Path(path).suffix or 'files without an extension'}; "
                        f"supported: {sorted(['.npz', *WRITERS])}")
    return writer(clip, Path(path))
