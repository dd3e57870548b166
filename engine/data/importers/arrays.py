"""Array files (npz / npy / json): MANO parameter sequences and (T, 2, 21, 3) keypoints.

MANO layouts understood (T frames; any key may be prefixed ``left_``/``right_`` or suffixed
``_l``/``_r`` for one hand):
- stacked: ``global_orient`` (T,2,3), ``hand_pose`` (T,2,45), ``transl`` (T,2,3), ``betas`` (2,10);
- per hand: ``{side}_global_orient`` + ``{side}_hand_pose`` or ``{side}_pose`` (T,48 = 3 + 45),
  ARCTIC-style ``rot_r``/``pose_r``/``trans_r``/``shape_r``; ``*_trans``/``*_transl``, ``*_betas``/``*_shape``;
- PCA: ``hand_pose`` with k < 45 columns needs ``hands_components`` (>= k, 45) (per hand or shared)
  and optionally ``hands_mean`` (45,), which is added (MANO's ``flat_hand_mean=False``).
Keypoints: ``keypoints``/``joints``/``kp3d``/... (T,2,21,3) in our, OpenPose or MediaPipe order
(detected from bone-length proportions unless given), in m/cm/mm (detected from the palm size).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.data.importers.safe import float_array
from engine.data.importers.skeleton import clip_from_keypoints, detect_units
from engine.hands.skeleton import HANDS, KEYPOINT_PARENTS, OPENPOSE_FROM_OURS
from engine.io import FileFormatError
from engine.motion.clip import MAX_FRAMES, Clip, ClipError

KEYPOINT_KEYS = ("keypoints", "keypoints3d", "joints", "joints3d", "kp3d", "hand_keypoints", "landmarks")
ORDERS = ("auto", "ours", "openpose", "mediapipe")
_SIDE_TAGS = {0: ("left_", "l_", "_l", "_left", "lh_", "left"), 1: ("right_", "r_", "_r", "_right", "rh_", "right")}
_FIELDS = {
    "global_orient": ("global_orient", "root_orient", "rot", "global_rot", "orient"),
    "hand_pose": ("hand_pose", "fingers_pose", "finger_pose", "poses_hand"),
    "pose48": ("pose", "poses", "full_pose", "mano_pose", "hand_pose48"),
    "transl": ("transl", "trans", "translation"),
    "betas": ("betas", "shape", "shapes", "beta"),
    "components": ("hands_components", "components", "pca_components", "pca_basis"),
    "mean": ("hands_mean", "pose_mean", "mean_pose"),
}
_FPS_KEYS = ("fps", "frame_rate", "framerate", "mocap_framerate", "mocap_frame_rate")


def _lookup(d: dict, field: str, hand: int | None) -> tuple[str, object] | None:
    for base in _FIELDS[field]:
        if hand is None:
            cands = [base]
        else:
            cands = []
            for tag in _SIDE_TAGS[hand]:
                if tag.endswith("_"):
                    cands.append(tag + base)
                elif tag.startswith("_"):
                    cands.append(base + tag)
            cands.append(f"{HANDS[hand]}/{base}")
        for k in cands:
            if k in d:
                return k, d[k]
    return None


def _fps(path: Path, d: dict, fps: float | None, notes: list[str]) -> float:
    for k in _FPS_KEYS:
        if k in d:
            v = float_array(path, k, d[k], (), "frames per second").item() if np.ndim(d[k]) == 0 else None
            if v is None or not 1.0 <= v <= 1000.0:
                raise FileFormatError(path, f"{k} must be one number in 1..1000; got {d[k]!r:.40}")
            return v
    if fps is None:
        notes.append("the file gives no frame rate; assuming 30 fps")
        return 30.0
    return float(fps)


def looks_like_mano(d: dict) -> bool:
    keys = set(d)
    for field in ("hand_pose", "pose48", "global_orient"):
        for h in (None, 0, 1):
            if _lookup(d, field, h) is not None:
                return True
    return bool(keys & {"rot_r", "pose_r", "rot_l", "pose_l"})


def mano_from_dict(path: Path, d: dict, fps: float | None = None, side: str | None = None,
                   notes: list[str] | None = None) -> Clip:
    """MANO parameter sequences (see the module docstring) -> Clip."""
    notes = notes if notes is not None else []
    fps_v = _fps(path, d, fps, notes)
    per_hand = {}
    if _lookup(d, "hand_pose", None) is not None or _lookup(d, "pose48", None) is not None:
        hp = _lookup(d, "hand_pose", None) or _lookup(d, "pose48", None)
        arr = np.asarray(hp[1]) if not isinstance(hp[1], (list, dict)) else hp[1]
        if np.ndim(arr) == 3:  # stacked (T, 2, K)
            for h in range(2):
                per_hand[h] = _hand(path, d, None, h, stacked=True)
        else:
            if side is None:
                side_v = d.get("side", d.get("hand"))
                if "is_rhand" in d:
                    side_v = "right" if bool(np.asarray(d["is_rhand"]).reshape(-1)[0]) else "left"
                side = str(np.asarray(side_v).reshape(())) if side_v is not None else None
            if side not in HANDS:
                raise FileFormatError(path, "single-hand MANO parameters need the hand: a 'side' entry "
                                            "('left'/'right'), 'is_rhand', or the hand named on import "
                                            "(--hands left|right, or the Import dialog's \"Single hand is\")")
            per_hand[HANDS.index(side)] = _hand(path, d, None, HANDS.index(side), stacked=False)
    for h in range(2):
        if h not in per_hand and (_lookup(d, "hand_pose", h) or _lookup(d, "pose48", h)):
            per_hand[h] = _hand(path, d, h, h, stacked=False)
    if not per_hand:
        raise FileFormatError(path, "no MANO hand_pose found: expected hand_pose (T,2,45), left_pose/right_pose "
                                    "(T,48), {left,right}_hand_pose (T,45) or pose_r/rot_r (ARCTIC)")
    T = {v[0].shape[0] for v in per_hand.values()}
    if len(T) != 1:
        raise FileFormatError(path, f"the hands have different frame counts {sorted(T)}")
    T = T.pop()
    if not 1 <= T <= MAX_FRAMES:
        raise FileFormatError(path, f"1..{MAX_FRAMES} frames expected; got {T}")
    rest = Clip.rest(T, fps=fps_v)
    tr, go, hp_all, betas = (np.array(a, np.float64) for a in (rest.transl, rest.global_orient, rest.hand_pose, rest.betas))
    for h, (g, p, t, b) in per_hand.items():
        go[:, h], hp_all[:, h], tr[:, h], betas[h] = g, p, t, b
    for h in range(2):
        if h not in per_hand:
            notes.append(f"the file has no {HANDS[h]} hand; it is set to the rest pose")
    notes.append(f"MANO parameters: {T} frames, {' and '.join(HANDS[h] for h in sorted(per_hand))} hand")
    try:
        return Clip(tr, go, hp_all, betas, fps=fps_v)
    except ClipError as e:
        raise FileFormatError(path, str(e)) from None


def _hand(path: Path, d: dict, key_hand: int | None, h: int, stacked: bool):
    """(global_orient (T,3), hand_pose (T,45), transl (T,3), betas (10,)) of one hand."""
    sel = (lambda a: a[:, h]) if stacked else (lambda a: a)
    name = HANDS[h]
    g = _lookup(d, "global_orient", key_hand)
    hp = _lookup(d, "hand_pose", key_hand)
    p48 = _lookup(d, "pose48", key_hand)
    if hp is None and p48 is not None:
        full = float_array(path, p48[0], p48[1], (None, 2, None) if stacked else (None, None), "axis-angle pose")
        full = sel(full)
        if full.shape[1] not in (48,) and g is None:
            raise FileFormatError(path, f"{p48[0]} must have 48 columns (3 global + 45 joints); got {full.shape[1]}")
        if full.shape[1] == 48:
            gv, pose = full[:, :3], full[:, 3:]
        else:
            gv, pose = None, full
    else:
        pose = sel(float_array(path, hp[0], hp[1], (None, 2, None) if stacked else (None, None), "hand pose"))
        gv = None
    T = pose.shape[0]
    if gv is None:
        if g is None:
            raise FileFormatError(path, f"the {name} hand has a hand_pose but no global_orient")
        gv = sel(float_array(path, g[0], g[1], (None, 2, 3) if stacked else (None, 3), "axis-angle"))
    if pose.shape[1] != 45:
        comps = _lookup(d, "components", key_hand) or _lookup(d, "components", None)
        k = pose.shape[1]
        if comps is None:
            raise FileFormatError(path, f"the {name} hand_pose has {k} columns: PCA coefficients need "
                                        "hands_components (>= k, 45); a full pose has 45 columns")
        C = float_array(path, comps[0], comps[1], (None, 45), "PCA basis")
        if C.shape[0] < k:
            raise FileFormatError(path, f"{comps[0]} has {C.shape[0]} components; {k} coefficients need at least {k}")
        pose = pose @ C[:k]
    mean = _lookup(d, "mean", key_hand) or _lookup(d, "mean", None)
    if mean is not None:
        pose = pose + float_array(path, mean[0], mean[1], (45,), "mean pose")
    t = _lookup(d, "transl", key_hand)
    tv = sel(float_array(path, t[0], t[1], (None, 2, 3) if stacked else (None, 3), "metres")) if t is not None \
        else np.zeros((T, 3))
    b = _lookup(d, "betas", key_hand)
    bv = np.zeros(10)
    if b is not None:
        ndim = np.ndim(b[1]) if not isinstance(b[1], (list, tuple)) else np.asarray(b[1], dtype=object).ndim
        if not 1 <= ndim <= 3:
            raise FileFormatError(path, f"{b[0]} must be (10,), (T, 10) or per hand (2, 10); got {ndim} dims")
        ba = float_array(path, b[0], b[1], (None,) * ndim, "shape coefficients")
        if stacked and ba.ndim >= 2 and ba.shape[-2] == 2:
            ba = ba[..., h, :]
        ba = ba.reshape(-1, ba.shape[-1])[0]  # per-frame betas: the first frame's
        bv[:min(10, ba.shape[0])] = ba[:10]
    if gv.shape[0] != T or tv.shape[0] != T:
        raise FileFormatError(path, f"the {name} hand's global_orient/transl/hand_pose differ in frame count "
                                    f"({gv.shape[0]}, {tv.shape[0]}, {T})")
    return gv, pose, tv, bv


def find_keypoints(d: dict) -> tuple[str, object] | None:
    for k in KEYPOINT_KEYS:
        if k in d:
            return k, d[k]
    return None


def _bone_score(kp: np.ndarray) -> float:
    """How far bone-length proportions are from the default hand's (0 = identical). kp (T, H, 21, 3)."""
    from engine.hands import default_hands_cpu
    from engine.hands.anatomy import rest_keypoints
    rest = rest_keypoints(default_hands_cpu().right).double().numpy()
    idx = [j for j, p in enumerate(KEYPOINT_PARENTS) if p >= 0]
    par = [KEYPOINT_PARENTS[j] for j in idx]
    ref = np.log(np.linalg.norm(rest[idx] - rest[par], axis=-1))
    L = np.log(np.maximum(np.linalg.norm(kp[..., idx, :] - kp[..., par, :], axis=-1), 1e-12)) - ref
    L = L - np.median(L, -1, keepdims=True)
    return float(np.median(np.abs(L)))


def keypoints_clip(path: Path, value, name: str, order: str = "auto", units: str = "auto",
                   fps: float = 30.0, notes: list[str] | None = None) -> Clip:
    """(T, 2, 21, 3) keypoints (or (2, 21, 3), one frame) -> Clip through the IK."""
    notes = notes if notes is not None else []
    if order not in ORDERS:
        raise FileFormatError(path, f"keypoint order must be one of {ORDERS}; got {order!r}")
    if np.ndim(value) == 3:
        value = np.asarray(value)[None]
    kp = float_array(path, name, value, (None, 2, 21, 3), "frames x hands (left, right) x 21 keypoints x xyz")
    if not 1 <= kp.shape[0] <= MAX_FRAMES:
        raise FileFormatError(path, f"1..{MAX_FRAMES} frames expected; got {kp.shape[0]}")
    ours_from_op = np.argsort(np.asarray(OPENPOSE_FROM_OURS))
    cands = {"ours": kp, "openpose": kp[:, :, ours_from_op]}
    if order == "auto":
        scores = {k: _bone_score(v) for k, v in cands.items()}
        best, other = sorted(scores, key=scores.get)
        if scores[best] > 0.35 or scores[best] > 0.6 * scores[other]:
            raise FileFormatError(path, f"cannot tell the keypoint order (bone-length mismatch ours "
                                        f"{scores['ours']:.2f}, OpenPose/MediaPipe {scores['openpose']:.2f}); "
                                        "pass the order explicitly")
        notes.append(f"keypoint order detected as {'ours (MANO + tips)' if best == 'ours' else 'OpenPose/MediaPipe'}")
    else:
        best = "ours" if order == "ours" else "openpose"
        notes.append(f"keypoint order {order} (given)")
    kp = cands[best]
    scale, note = detect_units(path, kp, units, "keypoint ")
    notes.append(note)
    return clip_from_keypoints(path, kp * scale, [True, True], fps, notes)
