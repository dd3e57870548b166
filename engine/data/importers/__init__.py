"""Importers into a ``Clip``: our npz, MANO parameter sequences, (T, 2, 21, 3) keypoints, BVH and
FBX skeletons. Every malformed input raises ``engine.io.FileFormatError`` (a ``ClipError``)
naming the file and what was expected; nothing is ever unpickled.

``import_clip(path, format="auto", units="auto", order="auto", fps=None, hands=None)`` returns
``(clip, notes)``; the notes say what was detected (order, units, IK error, missing hands).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.io import FileFormatError
from engine.motion.clip import Clip, ClipError

FORMATS = ("auto", "clip", "mano", "keypoints", "bvh", "fbx")
_BY_SUFFIX = {".bvh": "bvh", ".fbx": "fbx"}


def _arrays(path: Path) -> dict:
    from engine.data.importers.safe import read_json, read_npy, read_npz
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return read_npz(path)
    if suffix == ".npy":
        return {"keypoints" if read_npy(path).ndim in (3, 4) else "pose": read_npy(path)}
    if suffix == ".json":
        data = read_json(path)
        if isinstance(data, list):
            return {"keypoints": data}
        if not isinstance(data, dict):
            raise FileFormatError(path, "JSON must be an object of named arrays or a (T, 2, 21, 3) list")
        flat = {}
        for k, v in data.items():
            if k in ("left", "right") and isinstance(v, dict):
                flat.update({f"{k}_{kk}": vv for kk, vv in v.items()})
            else:
                flat[k] = v
        return flat
    raise FileFormatError(path, f"cannot import {suffix or 'files without an extension'}; "
                                "expected .npz, .npy, .json, .bvh or .fbx")


def import_clip(path: str | Path, format: str = "auto", units: str = "auto", order: str = "auto",
                fps: float | None = None, hands: str | None = None) -> tuple[Clip, list[str]]:
    """Read any supported file into a Clip; returns (clip, notes on what was detected)."""
    path = Path(path)
    notes: list[str] = []
    if format not in FORMATS:
        raise ClipError(f"format must be one of {FORMATS}; got {format!r}")
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    fmt = format if format != "auto" else _BY_SUFFIX.get(path.suffix.lower(), "auto")
    if fmt == "bvh":
        from engine.data.importers.bvh import import_bvh
        return import_bvh(path, units=units, fps=fps, notes=notes), notes
    if fmt == "fbx":
        from engine.data.importers.fbx import import_fbx
        return import_fbx(path, units=units, fps=fps, notes=notes), notes
    if fmt in ("auto", "clip") and path.suffix.lower() == ".npz":
        d = _arrays(path)  # headers checked before numpy allocates anything
        if fmt == "clip" or {"transl", "global_orient", "hand_pose", "betas", "fps"} <= set(d):
            from engine.motion.clip import load_npz
            try:
                clip = load_npz(path)
            except FileFormatError:
                raise
            except ClipError as e:
                raise FileFormatError(path, str(e).removeprefix(f"{path}: ")) from None
            notes.append("our clip file")
            return clip, notes
    else:
        d = _arrays(path)
    from engine.data.importers import arrays
    kp = arrays.find_keypoints(d)
    if fmt == "keypoints" or (fmt == "auto" and kp is not None):
        if kp is None:
            raise FileFormatError(path, f"no keypoints found; expected an array named one of {arrays.KEYPOINT_KEYS} "
                                        "shaped (T, 2, 21, 3)")
        fps_v = arrays._fps(path, d, fps, notes)
        return arrays.keypoints_clip(path, kp[1], kp[0], order=order, units=units, fps=fps_v, notes=notes), notes
    if fmt == "mano" or (fmt == "auto" and arrays.looks_like_mano(d)):
        return arrays.mano_from_dict(path, d, fps=fps, side=hands, notes=notes), notes
    raise FileFormatError(path, "neither a clip, MANO parameters nor keypoints: expected arrays such as "
                                "transl/global_orient/hand_pose, left_pose/right_pose or keypoints (T, 2, 21, 3)")


def import_clips(paths: list[str | Path], **kwargs) -> tuple[Clip, list[str]]:
    """Several single-hand files (e.g. NAME_left.bvh and NAME_right.bvh) into one clip: each hand
    is taken from the file that has it."""
    from engine.data.importers.bvh import merge_hands
    parts, notes = [], []
    for p in paths:
        clip, n = import_clip(p, **kwargs)
        has = [h for h in range(2) if not any(f"no {('left', 'right')[h]} hand" in x for x in n)]
        notes += [f"{Path(p).name}: {x}" for x in n if "rest pose" not in x]
        parts.append((clip, has))
    if len(parts) == 1:
        return parts[0][0], notes
    return merge_hands(Path(paths[0]), parts), notes


def register_readers(readers: dict) -> None:
    """Clip.load for the exchange formats (npz stays with Clip itself)."""
    for suffix in (".bvh", ".fbx", ".npy", ".json"):
        readers[suffix] = lambda path: import_clip(path)[0]


__all__ = ["FORMATS", "FileFormatError", "import_clip", "import_clips", "register_readers"]
