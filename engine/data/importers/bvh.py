"""BVH import: a bounded parser, forward kinematics, then either our own rig read back exactly
(names ``L_wrist``/``R_index1``…, rest offsets of our hand) or any finger skeleton mapped by
bone names and retargeted through world positions + IK."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.importers.safe import read_text
from engine.data.importers.skeleton import (
    clip_from_keypoints, detect_units, map_skeleton, our_names, our_rig_betas, rest_hand_keypoints,
)
from engine.export.rig import BONE_PARENTS, axis_rotation, matrix_to_aa
from engine.hands.skeleton import HANDS, KEYPOINT_NAMES
from engine.io import FileFormatError
from engine.motion.clip import MAX_FRAMES, Clip

MAX_JOINTS = 1024
_CHANNELS = {"xposition", "yposition", "zposition", "xrotation", "yrotation", "zrotation"}


@dataclass
class BvhJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    end_site: np.ndarray | None = None  # offset of an End Site child
    first_channel: int = 0


@dataclass
class Bvh:
    joints: list[BvhJoint]
    frame_time: float
    motion: np.ndarray  # (T, C)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def forward_kinematics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World rotations (T, J, 3, 3), local rotations (T, J, 3, 3), world positions (T, J, 3)."""
        T, J = self.motion.shape[0], len(self.joints)
        Rl = np.empty((T, J, 3, 3))
        Rw = np.empty((T, J, 3, 3))
        pw = np.empty((T, J, 3))
        for j, jt in enumerate(self.joints):
            pos = np.broadcast_to(jt.offset, (T, 3)).copy()
            rot_axes, rot_cols = "", []
            for k, ch in enumerate(jt.channels):
                col = self.motion[:, jt.first_channel + k]
                axis = "XYZ".index(ch[0].upper())
                if ch.endswith("position"):
                    pos[:, axis] += col
                else:
                    rot_axes += "XYZ"[axis]
                    rot_cols.append(np.radians(col))
            R = np.broadcast_to(np.eye(3), (T, 3, 3)).copy()
            for ax, ang in zip(rot_axes, rot_cols):  # channel order is multiplication order
                R = R @ axis_rotation("XYZ".index(ax), ang)
            Rl[:, j] = R
            if jt.parent < 0:
                Rw[:, j], pw[:, j] = R, pos
            else:
                Rw[:, j] = Rw[:, jt.parent] @ R
                pw[:, j] = pw[:, jt.parent] + (Rw[:, jt.parent] @ pos[..., None])[..., 0]
        return Rw, Rl, pw


def parse_bvh(path: Path) -> Bvh:
    """Parse a BVH file with every count and value checked; FileFormatError on any defect."""
    text = read_text(path, "BVH")
    m = re.search(r"^\s*MOTION\s*$", text, flags=re.M)
    if not text.lstrip().upper().startswith("HIERARCHY") or m is None:
        raise FileFormatError(path, "not a BVH file: expected a HIERARCHY section followed by MOTION")
    tokens = text[:m.start()].split()[1:]
    joints: list[BvhJoint] = []
    stack: list[int] = []
    i, nchan, in_end, end_offset_for = 0, 0, False, -1

    def need(k: int, what: str) -> list[str]:
        if i + k > len(tokens):
            raise FileFormatError(path, f"the hierarchy ends early (expected {what})")
        return tokens[i:i + k]

    def number(s: str, what: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise FileFormatError(path, f"expected a number for {what}; got {s[:40]!r}") from None
        if not np.isfinite(v):
            raise FileFormatError(path, f"{what} must be finite; got {s!r}")
        return v

    pending: BvhJoint | None = None
    while i < len(tokens):
        t = tokens[i]
        up = t.upper()
        if up in ("ROOT", "JOINT"):
            (name,) = need(2, "a joint name")[1:]
            if up == "ROOT" and (joints or stack):
                raise FileFormatError(path, "a second ROOT; one ROOT per file is expected")
            if up == "JOINT" and not stack:
                raise FileFormatError(path, f"JOINT {name!r} outside any ROOT")
            if len(joints) >= MAX_JOINTS:
                raise FileFormatError(path, f"more than {MAX_JOINTS} joints")
            pending = BvhJoint(name, stack[-1] if stack else -1, np.zeros(3))
            i += 2
        elif up == "END":
            need(2, "End Site")
            if not stack:
                raise FileFormatError(path, "End Site outside any joint")
            in_end, end_offset_for = True, stack[-1]
            i += 2
        elif t == "{":
            if pending is not None:
                joints.append(pending)
                stack.append(len(joints) - 1)
                pending = None
            elif in_end:
                stack.append(-2)
            else:
                raise FileFormatError(path, "unexpected '{' in the hierarchy")
            i += 1
        elif t == "}":
            if not stack:
                raise FileFormatError(path, "unbalanced '}' in the hierarchy")
            if stack.pop() == -2:
                in_end = False
            i += 1
        elif up == "OFFSET":
            vals = need(4, "OFFSET x y z")[1:]
            off = np.array([number(v, "OFFSET") for v in vals])
            if stack and stack[-1] == -2:
                joints[end_offset_for].end_site = off
            elif stack:
                joints[stack[-1]].offset = off
            else:
                raise FileFormatError(path, "OFFSET outside any joint")
            i += 4
        elif up == "CHANNELS":
            (n,) = need(2, "CHANNELS count")[1:]
            if not n.isdigit() or int(n) > 6 or not stack or stack[-1] < 0:
                raise FileFormatError(path, f"CHANNELS must be a count 0..6 inside a joint; got {n[:20]!r}")
            chans = need(2 + int(n), f"{n} channel names")[2:]
            for c in chans:
                if c.lower() not in _CHANNELS:
                    raise FileFormatError(path, f"unknown channel {c[:30]!r}; expected X/Y/Z position/rotation")
            jt = joints[stack[-1]]
            jt.channels, jt.first_channel = [c.lower() for c in chans], nchan
            nchan += int(n)
            i += 2 + int(n)
        else:
            raise FileFormatError(path, f"unexpected {t[:40]!r} in the hierarchy")
    if stack or pending is not None:
        raise FileFormatError(path, "the hierarchy is not closed (missing '}')")
    if not joints:
        raise FileFormatError(path, "the hierarchy has no joints")

    lines = text[m.end():].lstrip("\r\n").split("\n", 2)
    if len(lines) < 2:
        raise FileFormatError(path, "MOTION must be followed by 'Frames: N' and 'Frame Time: t'")
    fm = re.match(r"^\s*Frames:\s*(\d+)\s*$", lines[0])
    tm = re.match(r"^\s*Frame\s+Time:\s*(\S+)\s*$", lines[1])
    if not fm or not tm:
        raise FileFormatError(path, "MOTION must be followed by 'Frames: N' and 'Frame Time: t'")
    frames = int(fm.group(1))
    if not 1 <= frames <= MAX_FRAMES:
        raise FileFormatError(path, f"Frames must be 1..{MAX_FRAMES}; got {frames}")
    frame_time = number(tm.group(1), "Frame Time")
    if not 1e-3 <= frame_time <= 1.0:
        raise FileFormatError(path, f"Frame Time must be 0.001..1 s (1..1000 fps); got {frame_time}")
    body = lines[2] if len(lines) > 2 else ""
    values = body.split()
    if len(values) != frames * nchan:
        raise FileFormatError(path, f"MOTION holds {len(values)} values; {frames} frames x {nchan} channels "
                                    f"= {frames * nchan} expected (truncated file?)")
    try:
        motion = np.array(values, dtype=np.float64).reshape(frames, nchan)
    except ValueError as e:
        raise FileFormatError(path, f"MOTION values must be numbers ({e})") from None
    if not np.isfinite(motion).all():
        r, c = (int(v) for v in np.argwhere(~np.isfinite(motion))[0])
        raise FileFormatError(path, f"MOTION value at frame {r}, channel {c} is not finite")
    return Bvh(joints, frame_time, motion)


def import_bvh(path: Path, units: str = "auto", fps: float | None = None,
               notes: list[str] | None = None) -> Clip:
    """One BVH file -> Clip (hands it lacks are set to rest). See the module docstring."""
    notes = notes if notes is not None else []
    path = Path(path)
    bvh = parse_bvh(path)
    names = [j.name for j in bvh.joints]
    file_fps = round(bvh.fps, 6)
    if fps is not None and abs(fps - file_fps) > 1e-6:
        notes.append(f"fps {fps:g} given; the file says {file_fps:g}; using the file's")
    Rw, Rl, pw = bvh.forward_kinematics()
    T = bvh.motion.shape[0]

    exact = _read_our_rig(path, bvh, Rw, Rl, pw, file_fps, notes)
    if exact is not None:
        return exact

    mapping = map_skeleton(path, names)
    kp = np.full((T, 2, 21, 3), np.nan)
    for hand, m in mapping.items():
        missing = []
        for k, kn in enumerate(KEYPOINT_NAMES):
            if kn in m:
                kp[:, hand, k] = pw[:, m[kn]]
            elif kn.endswith("_tip") and f"{kn[:-4]}3" in m and bvh.joints[m[f"{kn[:-4]}3"]].end_site is not None:
                j = m[f"{kn[:-4]}3"]
                kp[:, hand, k] = pw[:, j] + (Rw[:, j] @ bvh.joints[j].end_site)
            else:
                missing.append(kn)
        if missing:
            raise FileFormatError(path, f"the {HANDS[hand]} hand lacks joints {missing}; expected a wrist, "
                                        "three joints per finger and fingertips (joints or End Sites)")
    present = [h in mapping for h in range(2)]
    scale, note = detect_units(path, kp[:, present], units)
    notes.append(note)
    notes.append(f"BVH from another tool: {sum(present)} hand(s) retargeted by bone names through world positions")
    return clip_from_keypoints(path, kp * scale, present, file_fps, notes)


def _read_our_rig(path: Path, bvh: Bvh, Rw, Rl, pw, fps: float, notes: list[str]) -> Clip | None:
    """Our own BVH (either layout): rotations are MANO axis-angles; exact, no IK."""
    names = [j.name for j in bvh.joints]
    hands = [h for h in range(2) if all(n in names for n in our_names(h)[:16])]
    if not hands:
        return None
    T = bvh.motion.shape[0]
    rest = Clip.rest(T, fps=fps)
    tr, go, hp, betas = (np.array(a, np.float64) for a in (rest.transl, rest.global_orient, rest.hand_pose, rest.betas))
    for h in hands:
        idx = [names.index(n) for n in our_names(h)[:16]]
        jts = [bvh.joints[i] for i in idx]
        if any(jts[j].parent != idx[p] for j, p in enumerate(BONE_PARENTS[:16]) if p >= 0):
            return None
        if any(jts[j].end_site is None for j in (3, 6, 9, 12, 15)):
            return None
        offsets = np.zeros((21, 3))
        for j in range(1, 16):
            offsets[j] = jts[j].offset / 100.0
        for t, j in enumerate((15, 3, 6, 12, 9)):  # TIP_NAMES order -> distal joint
            offsets[16 + t] = jts[j].end_site / 100.0
        b = our_rig_betas(offsets, h)
        if b is None:
            return None
        from engine.hands import default_hands_cpu
        J0 = (default_hands_cpu().left, default_hands_cpu().right)[h].J_rest[0].double().numpy()
        local = Rl[:, idx].copy()
        local[:, 0] = Rw[:, idx[0]]  # the wrist in the world (one_root files have a static parent)
        aa = matrix_to_aa(local)  # (T, 16, 3)
        go[:, h], hp[:, h] = aa[:, 0], aa[:, 1:].reshape(T, 45)
        tr[:, h] = pw[:, idx[0]] / 100.0 - J0
        betas[h] = b
    notes.append(f"our own BVH rig ({' and '.join(HANDS[h] for h in hands)} hand): read back exactly, cm")
    for h in range(2):
        if h not in hands:
            notes.append(f"the file has no {HANDS[h]} hand; it is set to the rest pose")
    return Clip(tr, go, hp, betas, fps=fps)


def merge_hands(path: Path, clips: list[tuple[Clip, list[int]]]) -> Clip:
    """Combine single-hand imports (e.g. NAME_left.bvh + NAME_right.bvh) into one clip."""
    base, _ = clips[0]
    tr, go, hp, b = (np.array(a) for a in (base.transl, base.global_orient, base.hand_pose, base.betas))
    for clip, hands in clips[1:]:
        if clip.num_frames != base.num_frames or abs(clip.fps - base.fps) > 1e-6:
            raise FileFormatError(path, f"the files to merge differ in length or fps "
                                        f"({base.num_frames} @ {base.fps:g} vs {clip.num_frames} @ {clip.fps:g})")
        for h in hands:
            tr[:, h], go[:, h], hp[:, h], b[h] = clip.transl[:, h], clip.global_orient[:, h], clip.hand_pose[:, h], clip.betas[h]
    return base.copy(transl=tr, global_orient=go, hand_pose=hp, betas=b)


__all__ = ["parse_bvh", "import_bvh", "merge_hands", "rest_hand_keypoints"]
