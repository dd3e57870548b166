"""What every exporter needs: export options, the per-hand rig (names, rest skeleton, skinned
mesh) and the animation as local rotations, all in float64 numpy in our world frame (metres,
+Y up, +X the performer's right, looking along -Z).

MANO semantics make this simple: every bone's rest orientation is identity, so a bone's local
rotation *is* the joint's axis-angle, the wrist gets ``global_orient`` and sits at
``J0_rest + transl``. Fingertips are end bones at the rest tip vertices, rigid on the distal bone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.hands.skeleton import HANDS, JOINT_NAMES, KEYPOINT_PARENTS, TIP_NAMES, hand_index
from engine.motion.clip import Clip, ClipError

SIDE_PREFIX = ("L_", "R_")
BONE_PARENTS = KEYPOINT_PARENTS  # 21 bones: MANO's 16 joints, then the five tip end bones


def bone_names(hand: int) -> list[str]:
    """The 21 bone names of one hand: ``L_wrist``, ``L_index1``, ..., ``L_thumb_tip``, ..."""
    return [SIDE_PREFIX[hand] + n for n in JOINT_NAMES + TIP_NAMES]


# --- small float64 rotation helpers (numpy; batched over leading dims) --------------------
def aa_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues in float64. aa (..., 3) -> (..., 3, 3)."""
    aa = np.asarray(aa, np.float64)
    theta = np.linalg.norm(aa, axis=-1)[..., None, None]
    small = theta < 1e-12
    safe = np.where(small, 1.0, theta)
    k = aa / safe[..., 0]
    K = np.zeros(aa.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 2] = -k[..., 2], k[..., 1], -k[..., 0]
    K[..., 1, 0], K[..., 2, 0], K[..., 2, 1] = k[..., 2], -k[..., 1], k[..., 0]
    R = np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * (K @ K)
    return np.where(small, np.eye(3), R)


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> unit quaternion (..., 4) as (w, x, y, z), w >= 0."""
    R = np.asarray(R, np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    t = np.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = t.argmax(-1)
    r = np.sqrt(np.maximum(np.take_along_axis(t, best[..., None], -1)[..., 0], 1e-300))
    q = np.empty(R.shape[:-2] + (4,))
    d = {0: (R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]),
         1: (R[..., 2, 1] - R[..., 1, 2], R[..., 1, 0] + R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0]),
         2: (R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] + R[..., 0, 1], R[..., 2, 1] + R[..., 1, 2]),
         3: (R[..., 1, 0] - R[..., 0, 1], R[..., 0, 2] + R[..., 2, 0], R[..., 2, 1] + R[..., 1, 2])}
    cands = np.stack([
        np.stack([r * r, d[0][0], d[0][1], d[0][2]], -1),
        np.stack([d[1][0], r * r, d[1][1], d[1][2]], -1),
        np.stack([d[2][0], d[2][1], r * r, d[2][2]], -1),
        np.stack([d[3][0], d[3][1], d[3][2], r * r], -1),
    ], -2) / (2 * r[..., None, None])
    q = np.take_along_axis(cands, best[..., None, None], -2)[..., 0, :]
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) wxyz -> (..., 3, 3)."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(q.shape[:-1] + (3, 3))


def matrix_to_aa(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> axis-angle (..., 3), angle in [0, pi]."""
    q = matrix_to_quat(R)
    s = np.linalg.norm(q[..., 1:], axis=-1, keepdims=True)
    angle = 2 * np.arctan2(s, q[..., :1])
    scale = np.where(s < 1e-12, 2.0, angle / np.maximum(s, 1e-300))
    return q[..., 1:] * scale


_AXIS = {"X": 0, "Y": 1, "Z": 2}


def axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    """Elementary rotation about x/y/z by ``angle`` (radians, any shape) -> (..., 3, 3)."""
    angle = np.asarray(angle, np.float64)
    c, s = np.cos(angle), np.sin(angle)
    R = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R[..., axis, axis] = 1
    R[..., i, i], R[..., j, j], R[..., i, j], R[..., j, i] = c, c, -s, s
    return R


def euler_to_matrix(angles: np.ndarray, order: str) -> np.ndarray:
    """Angles (..., 3) radians, one per letter of ``order``; R = R_order[0] @ R_order[1] @ R_order[2]."""
    R = axis_rotation(_AXIS[order[0]], angles[..., 0])
    for k in (1, 2):
        R = R @ axis_rotation(_AXIS[order[k]], angles[..., k])
    return R


def matrix_to_euler(R: np.ndarray, order: str) -> np.ndarray:
    """Inverse of ``euler_to_matrix`` (Tait-Bryan orders only). (..., 3, 3) -> (..., 3) radians,
    middle angle in [-pi/2, pi/2]."""
    i, j, k = (_AXIS[a] for a in order)
    s = 1.0 if (j - i) % 3 == 1 else -1.0  # +1 for cyclic orders (XYZ, YZX, ZXY)
    b = np.arcsin(np.clip(s * R[..., i, k], -1.0, 1.0))
    a = np.arctan2(-s * R[..., j, k], R[..., k, k])
    c = np.arctan2(-s * R[..., i, j], R[..., i, i])
    return np.stack([a, b, c], -1)


def continuous_euler(R: np.ndarray, order: str) -> np.ndarray:
    """Euler angles (T, ..., 3) for rotations (T, ..., 3, 3) that never jump between frames.

    Per frame both solutions (a, b, c) and (a+pi, pi-b, c+pi) are unwrapped by 2 pi toward the
    previous frame and the closer one is kept, so interpolating readers never spin 360 degrees.
    """
    e = matrix_to_euler(R, order)  # (T, ..., 3)
    alt = np.stack([e[..., 0] + np.pi, np.pi - e[..., 1], e[..., 2] + np.pi], -1)
    two_pi = 2 * np.pi
    out = np.empty_like(e)
    out[0] = e[0]
    for t in range(1, e.shape[0]):
        prev = out[t - 1]
        a = e[t] + two_pi * np.round((prev - e[t]) / two_pi)
        b = alt[t] + two_pi * np.round((prev - alt[t]) / two_pi)
        pick_b = np.abs(b - prev).sum(-1) < np.abs(a - prev).sum(-1)
        out[t] = np.where(pick_b[..., None], b, a)
    return out


def quat_slerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Spherical interpolation of wxyz quaternions (..., 4) with weights u (...,)."""
    dot = (q0 * q1).sum(-1)
    q1 = np.where(dot[..., None] < 0, -q1, q1)
    dot = np.abs(dot).clip(max=1.0)
    omega = np.arccos(dot)
    so = np.sin(omega)
    lin = so < 1e-6
    w0 = np.where(lin, 1 - u, np.sin((1 - u) * omega) / np.where(lin, 1, so))
    w1 = np.where(lin, u, np.sin(u * omega) / np.where(lin, 1, so))
    q = w0[..., None] * q0 + w1[..., None] * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


# --- options -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportOptions:
    """Frame range [start, stop) in the source clip's frames, output fps (resampled), hands."""

    frame_range: tuple[int, int | None] | None = None
    fps: float | None = None
    hands: tuple[str, ...] = HANDS

    def hand_indices(self) -> list[int]:
        if not self.hands:
            raise ClipError("hands must name at least one of 'left', 'right'")
        idx = sorted({hand_index(h) for h in self.hands})
        return idx


def parse_range(text: str | None) -> tuple[int, int | None] | None:
    """'START:STOP' / 'START:' / ':STOP' (frames, stop exclusive) -> tuple; None stays None."""
    if text is None or text == "":
        return None
    parts = text.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start = int(parts[0]) if parts[0] else 0
        stop = int(parts[1]) if parts[1] else None
    except ValueError:
        raise ClipError(f"frame range must look like START:STOP (frames, stop exclusive); got {text!r}") from None
    return start, stop


def parse_hands(text: str | None) -> tuple[str, ...]:
    """'both' / 'left' / 'right' / 'left,right' -> tuple of hand names."""
    if text is None or text in ("both", "all", ""):
        return HANDS
    names = tuple(h.strip().lower() for h in text.split(","))
    for h in names:
        if h not in HANDS:
            raise ClipError(f"hands must be 'both', 'left', 'right' or 'left,right'; got {text!r}")
    return names


def resample(clip: Clip, fps: float) -> Clip:
    """The clip at another frame rate: slerp per joint, linear translation; frames at k / fps
    for every k with k / fps <= the last source frame's time."""
    fps = float(fps)
    if not (1.0 <= fps <= 1000.0):
        raise ClipError(f"fps must be in 1..1000; got {fps:g}")
    if abs(fps - clip.fps) < 1e-9:
        return clip
    n = int(np.floor((clip.num_frames - 1) * fps / clip.fps + 1e-9)) + 1
    return sample(clip, np.arange(n) * clip.fps / fps, fps)


def sample(clip: Clip, at, fps: float) -> Clip:
    """The clip at fractional source frames ``at`` (N,) in 0..T-1, labelled ``fps``: slerp per
    joint, linear translation (``resample`` on any grid, e.g. one that ends on the last frame)."""
    at = np.asarray(at, np.float64)
    T = clip.num_frames
    if at.ndim != 1 or at.size == 0:
        raise ClipError(f"frames to sample must be a non-empty 1-D array; got shape {at.shape}")
    if not np.isfinite(at).all() or at.min() < 0 or at.max() > T - 1 + 1e-9:
        raise ClipError(f"frames to sample must lie in 0..{T - 1}; got {at.min():g}..{at.max():g}")
    n = len(at)
    i0 = np.minimum(np.floor(at).astype(int), T - 1)
    i1 = np.minimum(i0 + 1, T - 1)
    u = at - i0  # (n,)
    aa = np.concatenate([clip.global_orient[:, :, None], clip.hand_pose.reshape(T, 2, 15, 3)], 2)  # (T,2,16,3)
    q = matrix_to_quat(aa_to_matrix(aa))
    qn = quat_slerp(q[i0], q[i1], np.broadcast_to(u[:, None, None], (n, 2, 16)))
    aan = matrix_to_aa(quat_to_matrix(qn))  # (n, 2, 16, 3)
    tr = clip.transl[i0] * (1 - u)[:, None, None] + clip.transl[i1] * u[:, None, None]
    return clip.copy(transl=tr, global_orient=aan[:, :, 0], hand_pose=aan[:, :, 1:].reshape(n, 2, 45), fps=fps)


def prepare(clip: Clip, options: ExportOptions | None) -> Clip:
    """Apply frame range and fps resampling."""
    options = options or ExportOptions()
    if options.frame_range is not None:
        start, stop = options.frame_range
        clip = clip.slice(start, stop)
    if options.fps is not None:
        clip = resample(clip, options.fps)
    return clip


# --- the rig -------------------------------------------------------------------------------
@dataclass
class HandRig:
    """One hand ready to export. Positions in metres, our world frame; T frames."""

    hand: int  # 0 left, 1 right
    names: list[str]  # 21 bone names
    rest: np.ndarray  # (21, 3) rest world positions (betas applied), tips at the rest tip vertices
    offsets: np.ndarray  # (21, 3) rest - rest[parent]; the wrist's is its rest position
    local_R: np.ndarray  # (T, 16, 3, 3) local rotations (wrist: global_orient)
    root_pos: np.ndarray  # (T, 3) wrist world position = J0 + transl
    vertices: np.ndarray  # (V, 3) rest mesh (betas applied)
    faces: np.ndarray  # (F, 3) int
    weights: np.ndarray  # (V, 16) skin weights of the 16 joints

    @property
    def side(self) -> str:
        return HANDS[self.hand]

    @property
    def num_frames(self) -> int:
        return int(self.root_pos.shape[0])

    def world(self) -> tuple[np.ndarray, np.ndarray]:
        """Rigid FK of the 21 bones: world rotations (T, 21, 3, 3), positions (T, 21, 3)."""
        T = self.num_frames
        Rw = np.empty((T, 21, 3, 3))
        pw = np.empty((T, 21, 3))
        for j, p in enumerate(BONE_PARENTS):
            Rl = self.local_R[:, j] if j < 16 else np.eye(3)
            if p < 0:
                Rw[:, j], pw[:, j] = Rl, self.root_pos
            else:
                Rw[:, j] = Rw[:, p] @ Rl
                pw[:, j] = pw[:, p] + Rw[:, p] @ self.offsets[j]
        return Rw, pw


def build_rigs(clip: Clip, hands: list[int] | None = None, with_mesh: bool = True) -> list[HandRig]:
    """The rigs of the requested hands (default both) from the default hand model."""
    import torch
    from engine.hands import default_hands_cpu
    from engine.threads import torch_threads

    model = default_hands_cpu()
    rigs = []
    for h in (hands if hands is not None else [0, 1]):
        m = (model.left, model.right)[h]
        with torch.no_grad(), torch_threads(1):  # tiny tensors: 2 threads are ~100x slower here
            verts, J = m.shaped(torch.from_numpy(clip.betas[h][None].astype(np.float32)))
        verts = verts[0].double().numpy()
        J = J[0].double().numpy()
        rest = np.concatenate([J, verts[m.tip_ids]], 0)  # (21, 3)
        offsets = rest.copy()
        for j, p in enumerate(BONE_PARENTS):
            if p >= 0:
                offsets[j] = rest[j] - rest[p]
        T = clip.num_frames
        aa = np.concatenate([clip.global_orient[:, h, None], clip.hand_pose[:, h].reshape(T, 15, 3)], 1)
        rigs.append(HandRig(
            hand=h, names=bone_names(h), rest=rest, offsets=offsets,
            local_R=aa_to_matrix(aa.astype(np.float64)),
            root_pos=rest[0] + clip.transl[:, h].astype(np.float64),
            vertices=verts if with_mesh else np.zeros((0, 3)),
            faces=np.asarray(m.faces, np.int64) if with_mesh else np.zeros((0, 3), np.int64),
            weights=m.weights.double().numpy() if with_mesh else np.zeros((0, 16)),
        ))
    return rigs


def reference_positions(clip: Clip, hands: list[int] | None = None) -> dict[str, np.ndarray]:
    """Bone name -> (T, 3) world positions in metres by our own FK (what readers must reproduce)."""
    out = {}
    for rig in build_rigs(clip, hands, with_mesh=False):
        _, pw = rig.world()
        for j, name in enumerate(rig.names):
            out[name] = pw[:, j]
    return out
