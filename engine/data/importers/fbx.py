"""FBX (binary 7.x) import: our own files read back directly (Euler curves -> axis-angle);
other skeletons mapped by bone names and retargeted through world positions + IK.

Evaluated per node: ``Lcl Translation`` / ``Lcl Rotation`` (any ``RotationOrder`` of the six
Tait-Bryan orders) / ``PreRotation`` / ``PostRotation`` / ``Lcl Scaling``; curves are sampled at
the frames of the scene's frame rate with linear interpolation between keys (tangents ignored).
Units follow ``UnitScaleFactor``; axes follow the file's ``UpAxis``/``FrontAxis``/``CoordAxis``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.data.importers.safe import check_file
from engine.data.importers.skeleton import (
    clip_from_keypoints, detect_units, map_skeleton, our_names, our_rig_betas,
)
from engine.export.fbx import KTIME_PER_SECOND
from engine.export.fbx_binary import FbxParseError, Node, read_document
from engine.export.rig import BONE_PARENTS, euler_to_matrix, matrix_to_aa
from engine.hands.skeleton import HANDS, KEYPOINT_NAMES
from engine.io import FileFormatError
from engine.motion.clip import MAX_FRAMES, Clip

_ORDERS = {0: "ZYX", 1: "YZX", 2: "XZY", 3: "ZXY", 4: "YXZ", 5: "XYZ"}  # FBX enum -> matrix order
_FPS = {1: 120.0, 2: 100.0, 3: 60.0, 4: 50.0, 5: 48.0, 6: 30.0, 7: 30.0, 8: 30000 / 1001, 9: 30000 / 1001,
        10: 25.0, 11: 24.0, 12: 1000.0, 13: 24000 / 1001, 15: 96.0, 16: 72.0, 17: 60000 / 1001, 18: 120000 / 1001}


def _props(node: Node) -> dict[str, list]:
    p70 = node.find("Properties70")
    out = {}
    for p in (p70.children if p70 is not None else []):
        if p.name == "P" and len(p.props) >= 4:
            out[str(p.props[0][1])] = [v for _, v in p.props[4:]]
    return out


def _vec(props: dict, key: str, default) -> np.ndarray:
    v = props.get(key)
    if v is None or len(v) < 3:
        return np.array(default, np.float64)
    return np.array([float(x) for x in v[:3]])


class _Model:
    def __init__(self, uid: int, name: str, kind: str, props: dict):
        self.uid, self.name, self.kind, self.props = uid, name, kind, props
        self.parent: int = 0
        self.curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}


def _name(raw) -> str:
    s = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return s.split("\x00\x01")[0].split("::")[-1]


def read_scene(path: Path) -> tuple[dict[int, _Model], float, dict]:
    """Models with parents and animation curves, the frame rate and the global settings."""
    check_file(path)
    try:
        top = read_document(Path(path).read_bytes())
    except FbxParseError as e:
        raise FileFormatError(path, f"not a valid binary FBX ({e})") from None
    by = {n.name: n for n in top}
    if "Objects" not in by or "Connections" not in by:
        raise FileFormatError(path, "the FBX has no Objects/Connections sections")
    gs = _props(by["GlobalSettings"]) if "GlobalSettings" in by else {}
    try:
        mode = int(gs.get("TimeMode", [0])[0])
        fps = float(gs["CustomFrameRate"][0]) if mode == 14 and "CustomFrameRate" in gs else _FPS.get(mode, 30.0)
    except (TypeError, ValueError):
        raise FileFormatError(path, "GlobalSettings TimeMode/CustomFrameRate are not numbers") from None
    if not 1.0 <= fps <= 1000.0:
        raise FileFormatError(path, f"the frame rate must be 1..1000 fps; got {fps:g}")
    models: dict[int, _Model] = {}
    curve_nodes: dict[int, str] = {}
    curves: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    try:
        for n in by["Objects"].children:
            uid = int(n.props[0][1]) if n.props else None
            if n.name == "Model" and len(n.props) >= 3:
                models[uid] = _Model(uid, _name(n.props[1][1]), str(n.props[2][1]), _props(n))
            elif n.name == "AnimationCurveNode":
                curve_nodes[uid] = _name(n.props[1][1])
            elif n.name == "AnimationCurve":
                kt, kv = n.find("KeyTime"), n.find("KeyValueFloat")
                if kt is None or kv is None:
                    raise FileFormatError(path, f"AnimationCurve {uid} lacks KeyTime/KeyValueFloat")
                t, v = np.asarray(kt.value(), np.int64), np.asarray(kv.value(), np.float64)
                if t.shape != v.shape or t.ndim != 1 or not len(t):
                    raise FileFormatError(path, f"AnimationCurve {uid}: KeyTime and KeyValueFloat differ in length")
                curves[uid] = (t, v)
        cn_target: dict[int, tuple[int, str]] = {}
        curve_of: dict[int, tuple[int, str]] = {}
        for c in by["Connections"].children:
            if c.name != "C" or len(c.props) < 3:
                continue
            kind, child, parent = c.props[0][1], int(c.props[1][1]), int(c.props[2][1])
            prop = str(c.props[3][1]) if len(c.props) > 3 else ""
            if kind == "OO" and child in models and (parent in models or parent == 0):
                models[child].parent = parent
            elif kind == "OP" and child in curve_nodes and parent in models:
                cn_target[child] = (parent, prop)
            elif kind == "OP" and child in curves and parent in curve_nodes:
                curve_of[child] = (parent, prop)
    except (IndexError, TypeError, ValueError) as e:
        raise FileFormatError(path, f"malformed FBX object or connection record ({e})") from None
    for cid, (cn, prop) in curve_of.items():
        if cn in cn_target:
            mid, mprop = cn_target[cn]
            models[mid].curves.setdefault(mprop, {})[prop.replace("d|", "")] = curves[cid]
    return models, fps, gs


def _axis_matrix(gs: dict) -> np.ndarray:
    """File coordinates -> ours (X right, Y up, Z front = toward the viewer)."""
    def axis(key, default):
        a, s = int(gs.get(key, [default])[0]), int(gs.get(key + "Sign", [1])[0])
        v = np.zeros(3)
        v["XYZ".index("XYZ"[a % 3])] = 1.0 if s >= 0 else -1.0
        return v
    return np.stack([axis("CoordAxis", 0), axis("UpAxis", 1), axis("FrontAxis", 2)])


def _sample(curve, times: np.ndarray, default: float) -> np.ndarray:
    if curve is None:
        return np.full(len(times), default)
    t, v = curve
    return np.interp(times, t.astype(np.float64), v)


def evaluate(path: Path, models: dict[int, _Model], fps: float):
    """Per model: local rotation (T,3,3), world rotation, world position, over the frames."""
    starts, stops = [], []
    for m in models.values():
        for comp in m.curves.values():
            for t, _ in comp.values():
                starts.append(t[0])
                stops.append(t[-1])
    tick = KTIME_PER_SECOND / fps
    if starts:
        f0, f1 = int(np.floor(min(starts) / tick + 1e-6)), int(np.floor(max(stops) / tick + 1e-6))
    else:
        f0 = f1 = 0
    T = f1 - f0 + 1
    if not 1 <= T <= MAX_FRAMES:
        raise FileFormatError(path, f"the animation spans {T} frames; 1..{MAX_FRAMES} expected")
    times = (np.arange(f0, f1 + 1) * tick)
    order = {}
    ids = list(models)
    for uid in ids:  # parents first
        seen, u = [], uid
        while u in models and u not in order:
            seen.append(u)
            u = models[u].parent
            if len(seen) > len(models):
                raise FileFormatError(path, "the model hierarchy has a cycle")
        for k in reversed(seen):
            order[k] = len(order)
    Rl, Rw, pw = {}, {}, {}
    for uid in sorted(order, key=order.get):
        m = models[uid]
        p = m.props
        ro = int(p.get("RotationOrder", [0])[0])
        if ro not in _ORDERS:
            raise FileFormatError(path, f"model {m.name!r}: RotationOrder {ro} (spheric) is not supported")
        seq = _ORDERS[ro]
        comps = []
        for key, default in (("Lcl Translation", (0, 0, 0)), ("Lcl Rotation", (0, 0, 0)), ("Lcl Scaling", (1, 1, 1))):
            d = _vec(p, key, default)
            cv = m.curves.get(key, {})
            comps.append(np.stack([_sample(cv.get(a), times, d[k]) for k, a in enumerate("XYZ")], -1))
        tr, rot, sc = comps
        rad = np.radians(rot)
        ang = np.stack([rad[:, "XYZ".index(a)] for a in seq], -1)
        R = euler_to_matrix(ang, seq)
        pre = np.radians(_vec(p, "PreRotation", (0, 0, 0)))
        post = np.radians(_vec(p, "PostRotation", (0, 0, 0)))
        R = euler_to_matrix(pre[::-1], "ZYX") @ R @ euler_to_matrix(post[::-1], "ZYX").T
        Rl[uid] = R
        par = m.parent
        if par in models:
            Rw[uid] = Rw[par] @ R
            pw[uid] = pw[par] + (Rw[par] @ tr[..., None])[..., 0]  # parent scale ignored (1 for our files)
        else:
            Rw[uid], pw[uid] = R, tr
        if np.abs(sc - 1).max() > 1e-4 and any(models[c].parent == uid for c in models):
            raise FileFormatError(path, f"model {m.name!r} scales its children; scaled skeletons are not supported")
    return Rl, Rw, pw, f0, T


def import_fbx(path: Path, units: str = "auto", fps: float | None = None,
               notes: list[str] | None = None) -> Clip:
    notes = notes if notes is not None else []
    path = Path(path)
    models, file_fps, gs = read_scene(path)
    if fps is not None and abs(fps - file_fps) > 1e-6:
        notes.append(f"fps {fps:g} given; the file says {file_fps:g}; using the file's")
    Rl, Rw, pw, f0, T = evaluate(path, models, file_fps)
    by_name = {m.name: uid for uid, m in models.items()}
    try:
        unit_cm = float(gs.get("UnitScaleFactor", [1.0])[0])
    except (TypeError, ValueError):
        raise FileFormatError(path, "GlobalSettings UnitScaleFactor is not a number") from None
    M = _axis_matrix(gs)
    exact = _read_our_rig(path, models, by_name, Rl, Rw, pw, M, unit_cm, file_fps, T, notes)
    if exact is not None:
        return exact
    names = [m.name for m in models.values()]
    uids = list(models)
    mapping = map_skeleton(path, names)
    kp = np.full((T, 2, 21, 3), np.nan)
    for hand, m in mapping.items():
        missing = [kn for kn in KEYPOINT_NAMES if kn not in m]
        if missing:
            raise FileFormatError(path, f"the {HANDS[hand]} hand lacks bones {missing}; expected a wrist, three "
                                        "bones per finger and fingertip end bones")
        for k, kn in enumerate(KEYPOINT_NAMES):
            kp[:, hand, k] = pw[uids[m[kn]]] @ M.T
    present = [h in mapping for h in range(2)]
    if units == "auto":
        scale = unit_cm / 100.0
        notes.append(f"units from UnitScaleFactor {unit_cm:g} (cm per file unit)")
    else:
        scale, note = detect_units(path, kp[:, present], units)
        notes.append(note)
    notes.append(f"FBX skeleton from another tool: {sum(present)} hand(s) retargeted through world positions")
    return clip_from_keypoints(path, kp * scale, present, file_fps, notes)


def _read_our_rig(path, models, by_name, Rl, Rw, pw, M, unit_cm, fps, T, notes) -> Clip | None:
    hands = [h for h in range(2) if all(n in by_name for n in our_names(h))]
    if not hands or np.abs(M - np.eye(3)).max() > 0:
        return None
    rest = Clip.rest(T, fps=fps)
    tr, go, hp, betas = (np.array(a, np.float64) for a in (rest.transl, rest.global_orient, rest.hand_pose, rest.betas))
    scale = unit_cm / 100.0
    from engine.hands import default_hands_cpu
    for h in hands:
        uids = [by_name[n] for n in our_names(h)]
        if any(models[uids[j]].parent != uids[p] for j, p in enumerate(BONE_PARENTS) if p >= 0):
            return None
        offsets = np.array([_vec(models[u].props, "Lcl Translation", (0, 0, 0)) for u in uids]) * scale
        b = our_rig_betas(offsets, h, tol=1e-6)
        if b is None:
            return None
        J0 = (default_hands_cpu().left, default_hands_cpu().right)[h].J_rest[0].double().numpy()
        local = np.stack([Rl[u] for u in uids[:16]], 1)
        local[:, 0] = Rw[uids[0]]
        aa = matrix_to_aa(local)
        go[:, h], hp[:, h] = aa[:, 0], aa[:, 1:].reshape(T, 45)
        tr[:, h] = pw[uids[0]] * scale - J0
        betas[h] = b
    notes.append(f"our own FBX rig ({' and '.join(HANDS[h] for h in hands)} hand): read back directly")
    for h in range(2):
        if h not in hands:
            notes.append(f"the file has no {HANDS[h]} hand; it is set to the rest pose")
    return Clip(tr, go, hp, betas, fps=fps)
