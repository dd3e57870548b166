"""Clip files by extension. ``.npz`` is handled by ``Clip`` itself; the exchange formats
(FBX, BVH, glTF writers in ``engine.export``; mocap readers in ``engine.data.importers``)
register here the first time a non-npz file is loaded or saved."""
from __future__ import annotations

from pathlib import Path

from engine.motion.clip import Clip, ClipError

READERS: dict[str, object] = {}  # suffix -> callable(Path) -> Clip
WRITERS: dict[str, object] = {}  # suffix -> callable(Clip, Path) -> Path
_registered = False


class FileFormatError(ClipError):
    """A file is malformed or is not what its format promises; names the file and what was expected."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


def _register() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    from engine.data.importers import register_readers
    from engine.export import register_writers
    register_writers(WRITERS)
    register_readers(READERS)


def load_clip(path: Path) -> Clip:
    _register()
    reader = READERS.get(Path(path).suffix.lower())
    if reader is None:
        raise ClipError(f"{path}: cannot read {Path(path).suffix or 'files without an extension'}; "
                        f"supported: {sorted(['.npz', *READERS])}")
    return reader(Path(path))


def save_clip(clip: Clip, path: Path) -> Path:
    _register()
    writer = WRITERS.get(Path(path).suffix.lower())
    if writer is None:
        raise ClipError(f"{path}: cannot write {Path(path).suffix or 'files without an extension'}; "
                        f"supported: {sorted(['.npz', *WRITERS])}")
    return writer(clip, Path(path))
