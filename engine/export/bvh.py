"""BVH writer: centimetres, Y up (our world frame), one ROOT per file.

Each joint writes ``Zrotation Xrotation Yrotation`` (R = Rz Rx Ry): the fingers' long (twist)
axis is X in MANO's rest frame, so the middle angle stays small, far from gimbal lock. The
wrist also writes ``Xposition Yposition Zposition`` = its world position; its OFFSET is zero so
readers that add the offset and readers that do not agree. Fingertips are ``End Site``s at the
rest tip vertices. Angles are kept continuous across frames (no 360 degree flips).

Layouts: ``per_hand`` (default; one file per hand, ``NAME_left.bvh`` / ``NAME_right.bvh`` when
both are exported, else the path as given) or ``one_root`` (a static ``hands`` ROOT with both
wrists as children, in one file).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.export.rig import BONE_PARENTS, ExportOptions, HandRig, build_rigs, continuous_euler, prepare
from engine.motion.clip import Clip, ClipError, atomic_write

ROT_ORDER = "ZXY"
ROT_CHANNELS = "Zrotation Xrotation Yrotation"
POS_CHANNELS = "Xposition Yposition Zposition"
CM = 100.0
LAYOUTS = ("per_hand", "one_root")


def _children(j: int) -> list[int]:
    return [c for c, p in enumerate(BONE_PARENTS) if p == j and c < 16]


def _tip_of(j: int) -> int | None:
    for c, p in enumerate(BONE_PARENTS):
        if p == j and c >= 16:
            return c
    return None


def _hierarchy(rig: HandRig, depth: int, keyword: str, lines: list[str]) -> None:
    """Append the joint tree of one hand (wrist at ``depth``) in depth-first order = joint order."""
    def joint(j: int, d: int, kw: str) -> None:
        ind = "\t" * d
        off = np.zeros(3) if j == 0 else rig.offsets[j] * CM
        lines.append(f"{ind}{kw} {rig.names[j]}")
        lines.append(f"{ind}{{")
        lines.append(f"{ind}\tOFFSET {off[0]:.9f} {off[1]:.9f} {off[2]:.9f}")
        lines.append(f"{ind}\tCHANNELS 6 {POS_CHANNELS} {ROT_CHANNELS}" if j == 0
                     else f"{ind}\tCHANNELS 3 {ROT_CHANNELS}")
        for c in _children(j):
            joint(c, d + 1, "JOINT")
        tip = _tip_of(j)
        if tip is not None:
            t = rig.offsets[tip] * CM
            lines.append(f"{ind}\tEnd Site")
            lines.append(f"{ind}\t{{")
            lines.append(f"{ind}\t\tOFFSET {t[0]:.9f} {t[1]:.9f} {t[2]:.9f}")
            lines.append(f"{ind}\t}}")
        lines.append(f"{ind}}}")
    joint(0, depth, keyword)


def _motion_columns(rig: HandRig) -> np.ndarray:
    """(T, 51): wrist position (cm), then Z X Y degrees for the 16 joints in hierarchy order."""
    T = rig.num_frames
    eul = np.degrees(continuous_euler(rig.local_R, ROT_ORDER))  # (T, 16, 3)
    return np.concatenate([rig.root_pos * CM, eul.reshape(T, 48)], 1)


def _document(rigs: list[HandRig], fps: float, one_root: bool) -> str:
    lines = ["HIERARCHY"]
    cols = []
    if one_root:
        lines += ["ROOT hands", "{", "\tOFFSET 0.000000 0.000000 0.000000",
                  f"\tCHANNELS 6 {POS_CHANNELS} {ROT_CHANNELS}"]
        for rig in rigs:
            _hierarchy(rig, 1, "JOINT", lines)
        lines.append("}")
        cols.append(np.zeros((rigs[0].num_frames, 6)))
    else:
        _hierarchy(rigs[0], 0, "ROOT", lines)
    cols += [_motion_columns(r) for r in rigs]
    data = np.concatenate(cols, 1)
    lines += ["MOTION", f"Frames: {data.shape[0]}", f"Frame Time: {1.0 / fps:.10f}"]
    row = " ".join(["%.6f"] * data.shape[1])
    body = "\n".join(row % tuple(r) for r in data.tolist())
    return "\n".join(lines) + "\n" + body + "\n"


def export_bvh(clip: Clip, path: str | Path, options: ExportOptions | None = None,
               layout: str = "per_hand") -> list[Path]:
    """Write the clip as BVH; returns the files written (one per hand unless ``one_root``)."""
    if layout not in LAYOUTS:
        raise ClipError(f"BVH layout must be one of {LAYOUTS}; got {layout!r}")
    options = options or ExportOptions()
    clip = prepare(clip, options)
    path = Path(path)
    hands = options.hand_indices()
    rigs = build_rigs(clip, hands, with_mesh=False)
    if layout == "one_root":
        jobs = [(path, rigs)]
    elif len(rigs) == 1:
        jobs = [(path, rigs)]
    else:
        jobs = [(path.with_name(f"{path.stem}_{r.side}{path.suffix}"), [r]) for r in rigs]
    written = []
    for out, rs in jobs:
        text = _document(rs, clip.fps, layout == "one_root").encode("ascii")
        atomic_write(out, lambda f, t=text: f.write(t))
        written.append(out)
    return written
