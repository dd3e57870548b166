"""From a named skeleton in a file to a Clip: bone-name mapping, unit detection, our own rig
read back exactly, anything else retargeted through world positions + IK (engine.hands.fit)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from engine.hands.skeleton import FINGERS, HANDS, JOINT_NAMES, KEYPOINT_NAMES, MANO_RIGHT_REST_JOINTS
from engine.io import FileFormatError
from engine.motion.clip import Clip, ClipError

_FINGER_WORDS = {"thumb": "thumb", "index": "index", "middle": "middle", "ring": "ring", "pinky": "pinky",
                 "pinkie": "pinky", "little": "pinky"}
_PALM_LENGTH = float(np.linalg.norm(MANO_RIGHT_REST_JOINTS[4] - MANO_RIGHT_REST_JOINTS[0]))  # 0.0947 m
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
UNIT_NAMES = {"m": "metres", "cm": "centimetres", "mm": "millimetres"}


def classify_bone(name: str) -> tuple[int, str, int] | None:
    """Bone name -> (hand 0/1, part, segment): part 'wrist' or a finger, segment 0..4 (4/99 = tip).

    Knows our names (``R_index1``, ``R_index_tip``), Mixamo (``mixamorig:RightHandIndex1``),
    ``R_Index1``/``L_Wrist``, Unreal (``hand_r``, ``index_01_r``), Rigify-like (``hand.R``,
    ``f_index.01.R``) and DAZ-like (``rIndex1``). Returns None for anything else.
    """
    n = name.split(":")[-1].split("|")[-1].strip()
    n = re.sub(r"^mixamorig", "", n, flags=re.I)
    low = n.lower()
    side = None
    m = re.match(r"^(left|right)[ _.\-]?(.*)$", low)
    if m:
        side, rest = m.group(1), m.group(2)
    else:
        m = re.match(r"^(.*?)[ _.\-](l|r|left|right)$", low)
        if m:
            side, rest = m.group(2), m.group(1)
        else:
            m = re.match(r"^(l|r)[ _.\-](.*)$", low)
            if m:
                side, rest = m.group(1), m.group(2)
            else:
                m = re.match(r"^(l|r)(hand|wrist|thumb|index|middle|ring|pinky|pinkie|little|mid)(.*)$", low)
                if not m:
                    return None
                side, rest = m.group(1), m.group(2) + m.group(3)
    hand = 0 if side in ("l", "left") else 1
    rest = re.sub(r"[ _.\-]", "", rest)
    rest = re.sub(r"^f(?=(thumb|index|middle|ring|pinky|little))", "", rest)  # rigify f_index
    if rest in ("hand", "wrist"):
        return hand, "wrist", 0
    rest = re.sub(r"^hand(?=[a-z])", "", rest)  # mixamo HandIndex1
    rest = rest.replace("mid", "middle", 1) if rest.startswith("mid") and not rest.startswith("middle") else rest
    m = re.match(r"^(thumb|index|middle|ring|pinky|pinkie|little)(finger)?(\d+|tip|end|nub)?(end|tip|nub)?$", rest)
    if not m:
        return None
    finger = _FINGER_WORDS[m.group(1)]
    seg, suffix = m.group(3), m.group(4)
    if suffix or seg in ("tip", "end", "nub"):
        return hand, finger, 99
    if seg is None:
        return None
    return hand, finger, int(seg)


def map_skeleton(path: Path, names: list[str]) -> dict[int, dict[str, int]]:
    """Joint names -> per hand {keypoint name: joint index}; tips are filled later from End Sites
    when no tip joint exists. Segments numbered 0..2 are shifted to 1..3; metacarpals are ignored.
    No hand at all is an error naming the file."""
    found: dict[int, dict[str, dict[int, int]]] = {0: {}, 1: {}}
    for i, nm in enumerate(names):
        c = classify_bone(nm)
        if c is None:
            continue
        hand, part, seg = c
        found[hand].setdefault(part, {})
        found[hand][part].setdefault(seg, i)
    out: dict[int, dict[str, int]] = {}
    for hand, parts in found.items():
        if not parts:
            continue
        m: dict[str, int] = {}
        if "wrist" in parts:
            m["wrist"] = parts["wrist"][0]
        for f in FINGERS:
            segs = parts.get(f, {})
            nums = sorted(s for s in segs if s != 99)
            shift = 1 if nums[:3] == [0, 1, 2] and 3 not in nums else 0
            for s, idx in segs.items():
                k = 99 if s == 99 else s + shift
                if k in (1, 2, 3):
                    m[f"{f}{k}"] = idx
                elif k in (4, 99) and f"{f}_tip" not in m:
                    m[f"{f}_tip"] = idx
        out[hand] = m
    if not out:
        raise FileFormatError(path, "no hand bones found: expected names such as R_wrist/R_index1, "
                                    "RightHand/RightHandIndex1 (Mixamo) or hand_r/index_01_r (Unreal)")
    return out


def detect_units(path: Path, kp: np.ndarray, units: str = "auto", what: str = "") -> tuple[float, str]:
    """Scale to metres from the palm length (wrist -> middle knuckle, ~9.5 cm). kp (T, H, 21, 3) in
    our order. Returns (scale, note)."""
    if units != "auto":
        if units not in UNITS:
            raise FileFormatError(path, f"units must be auto, m, cm or mm; got {units!r}")
        return UNITS[units], f"{what}units {UNIT_NAMES[units]} (given)"
    palm = float(np.median(np.linalg.norm(kp[..., 4, :] - kp[..., 0, :], axis=-1)))
    for u in ("m", "cm", "mm"):
        ratio = palm * UNITS[u] / _PALM_LENGTH
        if 0.4 <= ratio <= 2.5:
            return UNITS[u], f"{what}units detected as {UNIT_NAMES[u]} (palm length {palm:.4g} {u})"
    raise FileFormatError(path, f"cannot tell the units: the palm (wrist to middle knuckle) measures {palm:.4g} "
                                "file units, which is no hand size in m, cm or mm; pass units explicitly")


def rest_hand_keypoints(hand: int, frames: int) -> tuple[np.ndarray, Clip]:
    """A placeholder for a hand the file does not contain: the rest pose at Clip.rest's place."""
    rest = Clip.rest(frames)
    return rest.joints[:, hand], rest


MAX_KEYPOINT_M = 1000.0  # a keypoint farther than 1 km from the origin is a unit or file error


def clip_from_keypoints(path: Path, kp: np.ndarray, present: list[bool], fps: float,
                        notes: list[str]) -> Clip:
    """Fit world keypoints (T, 2, 21, 3) metres with the IK; absent hands become the rest pose."""
    from engine.hands import default_hands_cpu
    from engine.hands.fit import fit_keypoints_iter

    T = kp.shape[0]
    kp = kp.copy()
    rest = Clip.rest(T, fps=fps)
    for h in range(2):
        if not present[h]:
            kp[:, h] = rest.joints[:, h]
    kp32 = kp.astype(np.float32)
    if not np.isfinite(kp32).all() or np.abs(kp32).max(initial=0.0) > MAX_KEYPOINT_M:
        raise FileFormatError(path, f"keypoints must be finite and within {MAX_KEYPOINT_M:g} m of the origin "
                                    f"(after unit conversion); got values up to {np.nanmax(np.abs(kp32)):.3g}")
    result = None
    try:
        for item in fit_keypoints_iter(kp32, default_hands_cpu(), fps=fps):
            if item.get("done"):
                result = item
    except ClipError as e:  # the fit diverged on degenerate input (e.g. all joints at one point)
        raise FileFormatError(path, f"the keypoints could not be fitted to a hand ({e})") from None
    clip = result["clip"]
    notes.append(f"fitted with IK: mean joint error {result['error_mm']:.2f} mm over {T} frames")
    for h in range(2):
        if not present[h]:
            notes.append(f"the file has no {HANDS[h]} hand; it is set to the rest pose")
            clip = _replace_hand(clip, h, rest)
    return clip


def _replace_hand(clip: Clip, h: int, src: Clip) -> Clip:
    tr, go, hp, b = (np.array(a) for a in (clip.transl, clip.global_orient, clip.hand_pose, clip.betas))
    tr[:, h], go[:, h], hp[:, h], b[h] = src.transl[:, h], src.global_orient[:, h], src.hand_pose[:, h], src.betas[h]
    return clip.copy(transl=tr, global_orient=go, hand_pose=hp, betas=b)


def our_rig_betas(offsets_m: np.ndarray, hand: int, tol: float = 2e-6) -> np.ndarray | None:
    """If 21 rest offsets (metres; wrist's ignored) are exactly our default hand's rig for some
    size/finger-length betas, return those betas (10,), else None."""
    import torch
    from engine.export.rig import BONE_PARENTS
    from engine.hands import default_hands_cpu

    model = (default_hands_cpu().left, default_hands_cpu().right)[hand]
    J0 = model.J_rest.double().numpy()
    s = np.linalg.norm(offsets_m[4]) / np.linalg.norm(J0[4] - J0[0])
    flen = np.linalg.norm(offsets_m[5]) / (s * np.linalg.norm(J0[5] - J0[4]))
    betas = np.zeros(10, np.float32)
    betas[0], betas[1] = (s - 1) / 0.05, (flen - 1) / 0.05
    if not (0.7 <= s <= 1.3 and 0.7 <= flen <= 1.3):
        return None
    with torch.no_grad():
        v, J = model.shaped(torch.from_numpy(betas[None]))
    rest = np.concatenate([J[0].double().numpy(), v[0].double().numpy()[model.tip_ids]], 0)
    want = np.array([rest[j] - rest[p] for j, p in enumerate(BONE_PARENTS) if p >= 0])
    if np.abs(want - offsets_m[1:]).max() > tol:
        return None
    return betas


def our_names(hand: int) -> list[str]:
    prefix = ("L_", "R_")[hand]
    return [prefix + n for n in KEYPOINT_NAMES]


def is_our_joint_set(names: list[str], hand: int) -> bool:
    prefix = ("L_", "R_")[hand]
    return all(prefix + n in names for n in JOINT_NAMES)
