"""Kinematic building blocks of the procedural generator: hand shapes in anatomical angles,
wrist orientations, timing curves, rotations (numpy), the default hand's FK, and the
thumb-opposition table that makes pinches reach real contact.

Everything is written for a *right-canonical* hand: the right hand as is, the left hand as
its mirror image (the compositor in ``synth.py`` mirrors). Anatomical angles are (15, 3)
(twist, spread, bend) in radians per hand_pose joint, in the right hand's frames
(``engine.hands.anatomy.frames_for``); a positive bend curls toward the palm; a positive MCP
spread moves a finger toward the pinky side.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from engine.hands.skeleton import MANO_RIGHT_REST_JOINTS, PARENTS

# rows of the (15, 3) anatomical view, proximal to distal
ROWS = {"index": (0, 1, 2), "middle": (3, 4, 5), "pinky": (6, 7, 8), "ring": (9, 10, 11),
        "thumb": (12, 13, 14)}
FINGERS4 = ("index", "middle", "ring", "pinky")
TIP = {"thumb": 16, "index": 17, "middle": 18, "ring": 19, "pinky": 20}
MCP = {"index": 1, "middle": 4, "ring": 10, "pinky": 7}
# sign of MCP spread that moves each finger away from the middle finger (opening the hand)
OPEN_SPREAD = {"index": -1.0, "middle": -0.15, "ring": 0.55, "pinky": 1.0}
PALM_JOINTS = (0, 1, 4, 7, 10)  # wrist + the four finger MCPs
PALM_HALF_THICKNESS = 0.015  # m, joint plane -> palm skin at the palm centre (default mesh: 12-16 mm)
PINCH_GAP = 0.007  # m between tip keypoints when two finger pads touch
MIRROR = np.array([-1.0, 1.0, 1.0], np.float32)
F32 = np.float32


# --- timing ---------------------------------------------------------------------------------
def minjerk(u: np.ndarray) -> np.ndarray:
    """Minimum-jerk profile 10u^3 - 15u^4 + 6u^5 on u clipped to [0, 1]."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (10 - 15 * u + 6 * u * u)


def ramp(n: int, start: float, length: float) -> np.ndarray:
    """(n,) 0 before ``start``, min-jerk rise over ``length`` frames, 1 after."""
    t = np.arange(n, dtype=F32)
    return minjerk((t - start) / max(length, 1.0)).astype(F32)


def pulse(n: int, start: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """(n,) min-jerk rise to 1, hold, min-jerk fall back to 0."""
    return ramp(n, start, rise) * (1 - ramp(n, start + rise + hold, fall))


def pulses(n: int, count: int, rng: np.random.Generator, duty: float = 0.5, jitter: float = 0.15,
           start: float = 0.0, stop: float | None = None) -> np.ndarray:
    """(n,) ``count`` smooth on/off cycles spread over [start, stop) with jittered timing."""
    stop = n if stop is None else stop
    period = (stop - start) / max(count, 1)
    out = np.zeros(n, F32)
    for k in range(count):
        s = start + k * period + rng.uniform(-jitter, jitter) * period * 0.5
        up = max(period * duty * rng.uniform(0.8, 1.2), 2.0)
        rise = max(up * 0.45, 1.5)
        out = np.maximum(out, pulse(n, s, rise, max(up - 2 * rise, 0.0), rise))
    return out


def oscillation(n: int, cycles: float, phase: float = 0.0, rng: np.random.Generator | None = None,
                wobble: float = 0.08) -> np.ndarray:
    """(n,) sin with ``cycles`` periods over n frames; slight tempo wobble if rng is given."""
    t = np.arange(n, dtype=F32) / max(n - 1, 1)
    if rng is not None:  # a smooth tempo change keeps repeated motion from looking mechanical
        t = t + wobble / (2 * np.pi * max(cycles, 0.5)) * np.sin(2 * np.pi * (t * rng.uniform(0.5, 1.2) + rng.uniform()))
    return np.sin(2 * np.pi * cycles * t + phase).astype(F32)


def smooth_noise(rng: np.random.Generator, n: int, shape: tuple, fps: float, hz: tuple = (0.2, 1.2),
                 k: int = 3) -> np.ndarray:
    """(n, *shape) low-frequency noise: ``k`` random sines per channel, unit-ish RMS."""
    c = int(np.prod(shape))
    t = np.arange(n, dtype=F32)[:, None, None] / fps
    f = rng.uniform(*hz, size=(1, c, k)).astype(F32)
    ph = rng.uniform(0, 2 * np.pi, size=(1, c, k)).astype(F32)
    a = rng.uniform(0.5, 1.0, size=(1, c, k)).astype(F32)
    x = (a * np.sin(2 * np.pi * f * t + ph)).sum(-1) / np.sqrt(k / 2 * 0.58)
    return x.reshape(n, *shape).astype(F32)


# --- rotations (numpy, batched) ---------------------------------------------------------------
def rot_axis(axis, angle) -> np.ndarray:
    """Rodrigues. axis (3,) or (..., 3); angle (...) radians -> (..., 3, 3)."""
    angle = np.asarray(angle, F32)
    axis = np.broadcast_to(np.asarray(axis, F32), angle.shape + (3,))
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    o = np.zeros_like(x)
    K = np.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*angle.shape, 3, 3)
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return (np.eye(3, dtype=F32) + s * K + (1 - c) * (K @ K)).astype(F32)


def mat_to_aa(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> axis-angle (..., 3), through a stable quaternion."""
    m = R.astype(np.float64)
    tr = np.stack([1 + m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                   1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], 1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1)
    best = tr.argmax(-1)
    r = np.sqrt(np.clip(np.take_along_axis(tr, best[..., None], -1)[..., 0], 1e-12, None))
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s21, s02, s10 = m[..., 2, 1] + m[..., 1, 2], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1]
    cand = np.stack([np.stack([r * r, d21, d02, d10], -1), np.stack([d21, r * r, s10, s02], -1),
                     np.stack([d02, s10, r * r, s21], -1), np.stack([d10, s02, s21, r * r], -1)], -2)
    q = np.take_along_axis(cand, best[..., None, None].repeat(4, -1), -2)[..., 0, :] / (2 * r[..., None])
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[..., :1] < 0, -q, q)
    sin = np.linalg.norm(q[..., 1:], axis=-1)
    angle = 2 * np.arctan2(sin, q[..., 0])
    scale = np.where(sin > 1e-9, angle / np.maximum(sin, 1e-12), 2.0)
    return (q[..., 1:] * scale[..., None]).astype(F32)


def to6d(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 3, 2): the first two columns."""
    return R[..., :, :2]


def from6d(d: np.ndarray) -> np.ndarray:
    """(..., 3, 2) -> (..., 3, 3) by Gram-Schmidt."""
    a = d[..., :, 0] / np.linalg.norm(d[..., :, 0], axis=-1, keepdims=True)
    b = d[..., :, 1] - (a * d[..., :, 1]).sum(-1, keepdims=True) * a
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.stack([a, b, np.cross(a, b)], -1).astype(F32)


# at zero global_orient the right hand's fingers point along -x, palm faces -y, thumb +z
_LOCAL = np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], F32).T  # columns: fingers, palm, thumb


def orient(yaw=0.0, pitch=0.0, roll=0.0) -> np.ndarray:
    """Wrist rotation of a right-canonical hand from degrees (scalars or (n,) arrays) -> (..., 3, 3).

    Zero = fingers forward (-Z), palm down. ``roll`` turns the palm inward (toward -X, 90 = palm
    facing the other hand, 180 = palm up); ``pitch`` raises the fingers (90 = fingers up);
    ``yaw`` swings the fingers inward (toward -X).
    """
    yaw, pitch, roll = (np.radians(np.asarray(v, F32)) for v in (yaw, pitch, roll))
    shape = np.broadcast_shapes(yaw.shape, pitch.shape, roll.shape)
    fingers = np.array([0, 0, -1], F32)
    palm = np.array([0, -1, 0], F32)
    base = np.stack([fingers, palm, np.cross(fingers, palm)], -1)  # world columns
    R0 = base @ _LOCAL.T  # maps local axes to the base world axes
    Rr = rot_axis(fingers, np.broadcast_to(-roll, shape))
    Rp = rot_axis([1, 0, 0], np.broadcast_to(pitch, shape))
    Ry = rot_axis([0, 1, 0], np.broadcast_to(yaw, shape))
    return (Ry @ Rp @ Rr @ R0).astype(F32)


def mirror_rot(R: np.ndarray) -> np.ndarray:
    """Right <-> left wrist rotation: M R M with M = diag(-1, 1, 1)."""
    return (R * MIRROR[:, None] * MIRROR[None, :]).astype(F32)


# --- hand shapes (right-canonical anatomical angles) -----------------------------------------
def deg(a) -> np.ndarray:
    return np.radians(np.asarray(a, F32)).astype(F32)


def set_finger(ang: np.ndarray, name: str, mcp: float, pip: float, dip: float | None = None,
               spread: float = 0.0) -> np.ndarray:
    """Write one finger's bends (degrees) and MCP spread (degrees, + opens the hand) into ang (…, 15, 3)."""
    a, b, c = ROWS[name]
    ang[..., a, 2], ang[..., b, 2] = np.radians(mcp), np.radians(pip)
    ang[..., c, 2] = np.radians(0.7 * pip if dip is None else dip)
    ang[..., a, 1] = np.radians(spread * OPEN_SPREAD[name])
    return ang


def set_thumb(ang: np.ndarray, twist: float, spread: float, bend: float, mcp: float, ip: float) -> np.ndarray:
    """Thumb CMC (twist, spread, bend), MCP bend, IP bend in degrees into ang (…, 15, 3).

    CMC spread < 0 swings the thumb away from the palm (abduction), bend > 0 across it.
    """
    a, b, c = ROWS["thumb"]
    ang[..., a, :] = np.radians([twist, spread, bend])
    ang[..., b, 2], ang[..., c, 2] = np.radians(mcp), np.radians(ip)
    return ang


THUMB = {  # (twist, spread, bend, mcp, ip) degrees
    "relaxed": (10, 0, 12, 15, 15),
    "along": (0, 12, 2, 5, 5),  # flat hand, thumb beside the index
    "out": (-10, -14, -8, 0, 0),  # abducted: spread hand, L, thumbs up
    "wrap": (35, 30, 35, 58, 72),  # over the curled index and middle (fist): MCP ~60, IP ~70 as in a real fist
    "tuck": (35, 22, 40, 55, 45),  # across the palm, over ring/pinky (counting)
    "side": (10, 25, 10, 30, 20),  # against the side of the curled index (point)
}


def hand_shape(curl: dict | float, spread: float = 0.0, thumb: str | tuple = "relaxed",
               pip_ratio: float = 1.1) -> np.ndarray:
    """(15, 3) pose from per-finger curl in 0..1 (0 straight, 1 fist), spread (deg) and a thumb preset."""
    ang = np.zeros((15, 3), F32)
    for f in FINGERS4:
        c = float(curl.get(f, 0.0) if isinstance(curl, dict) else curl)
        set_finger(ang, f, mcp=85 * c, pip=min(95 * c * pip_ratio, 98), spread=spread)
    set_thumb(ang, *(THUMB[thumb] if isinstance(thumb, str) else thumb))
    return ang


def relaxed_shape(rng: np.random.Generator) -> np.ndarray:
    """A relaxed, slightly cupped hand with the natural index-to-pinky cascade."""
    base = rng.uniform(0.12, 0.3)
    casc = rng.uniform(0.02, 0.08)
    curl = {f: base + k * casc + rng.uniform(-0.03, 0.03) for k, f in enumerate(FINGERS4)}
    t = np.asarray(THUMB["relaxed"], F32) + rng.uniform(-6, 6, 5).astype(F32)
    return hand_shape(curl, spread=rng.uniform(0, 6), thumb=tuple(t))


def jitter_shape(ang: np.ndarray, rng: np.random.Generator, bend_deg: float = 5.0) -> np.ndarray:
    """Small random variation of a shape's bends and spreads (stays a recognisably same shape)."""
    out = ang.copy()
    out[:, 2] += deg(rng.uniform(-bend_deg, bend_deg, 15))
    out[:, 1] += deg(rng.uniform(-bend_deg, bend_deg, 15) * 0.4)
    return out


# --- the default hand's kinematics -------------------------------------------------------------
@lru_cache(maxsize=1)
def kin() -> "HandKin":
    return HandKin()


class HandKin:
    """Default-hand FK for the generator: anatomical frames as numpy, shaped rest joints once per clip."""

    def __init__(self):
        from engine.hands import default_hands_cpu
        from engine.hands.anatomy import frames_for, limits_radians
        self.hands = default_hands_cpu()
        self.frames = frames_for(self.hands.right).numpy().astype(F32)  # (15, 3, 3) right frames
        lo, hi = limits_radians()
        self.lo, self.hi = lo.numpy().astype(F32), hi.numpy().astype(F32)  # (15, 3)
        self.J0 = np.stack([self.hands.left.J_rest[0].numpy(), self.hands.right.J_rest[0].numpy()]).astype(F32)

    def hand_pose(self, ang: np.ndarray) -> np.ndarray:
        """Right-canonical (..., 15, 3) anatomical -> right hand_pose (..., 45)."""
        return np.einsum("jab,...jb->...ja", self.frames, ang).reshape(*ang.shape[:-2], 45).astype(F32)

    @torch.no_grad()
    def keypoints(self, betas: np.ndarray, go: np.ndarray, hp: np.ndarray) -> np.ndarray:
        """betas (2, 10), go (T, 2, 3), hp (T, 2, 45) -> keypoints (T, 2, 21, 3) at zero transl."""
        from engine.hands.lbs import forward_kinematics, skin
        out = []
        for h, m in enumerate((self.hands.left, self.hands.right)):
            b = torch.from_numpy(np.ascontiguousarray(betas[h:h + 1]))
            if bool((b[:, :2] == 0).all()):
                J, tips = m.J_rest, m.v_template[m.tip_index]
            else:
                v, J = m.shaped(b)
                J, tips = J[0], v[0, m.tip_index]
            g = torch.from_numpy(np.ascontiguousarray(go[:, h]))
            joints, A = forward_kinematics(g, torch.from_numpy(np.ascontiguousarray(hp[:, h])),
                                           torch.zeros_like(g), J, PARENTS)
            out.append(torch.cat([joints, skin(tips, m.weights[m.tip_index], A)], 1))
        return torch.stack(out, 1).numpy()


def palm_frame(kp: np.ndarray, side_sign: np.ndarray | float = 1.0):
    """Palm centre, outward palm normal and finger direction from keypoints (..., 21, 3).

    ``side_sign`` is +1 for a right hand, -1 for a left one (mirroring flips a cross product).
    Returns centre (..., 3), normal (..., 3) (out of the palm), fingers (..., 3), all unit but the centre.
    """
    c = kp[..., PALM_JOINTS, :].mean(-2)
    n = np.cross(kp[..., 4, :] - kp[..., 0, :], kp[..., 10, :] - kp[..., 0, :])
    n = n * (np.asarray(side_sign, F32)[..., None] if np.ndim(side_sign) else side_sign)
    n = n / np.linalg.norm(n, axis=-1, keepdims=True)
    f = kp[..., 4, :] - kp[..., 0, :]
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    return c, n.astype(F32), f.astype(F32)


# --- thumb opposition table (pinch contact) ---------------------------------------------------
PINCH_VARIANTS = 12


@lru_cache(maxsize=1)
def pinch_table() -> dict[str, np.ndarray]:
    """Per finger, ``PINCH_VARIANTS`` right-canonical poses (k, 15, 3) whose thumb pad meets that fingertip.

    Solved once per process by L-BFGS through the default hand (angles parametrised inside their
    limits with a sigmoid); variants differ in how far the finger curls (tip pinch to pad pinch).
    """
    from engine.optim import LBFGS
    from engine.threads import torch_threads
    K = kin()
    frames = torch.from_numpy(K.frames)
    lo, hi = torch.from_numpy(K.lo), torch.from_numpy(K.hi)
    rng = np.random.default_rng(1234)
    init, finger_of = [], []
    for fi, f in enumerate(FINGERS4):
        for v in range(PINCH_VARIANTS):
            u = v / (PINCH_VARIANTS - 1)
            c = 0.3 + 0.25 * u + 0.1 * fi  # farther fingers curl more to meet the thumb
            ang = relaxed_shape(rng)
            set_finger(ang, f, mcp=75 * c, pip=85 * c + 5)
            set_thumb(ang, 25 + 5 * fi, -5 + 8 * fi, 25 + 6 * fi, 20, 15)
            init.append(ang)
            finger_of.append(fi)
    init_t = torch.from_numpy(np.stack(init))  # (B, 15, 3)
    B = init_t.shape[0]
    span = (hi - lo).clamp_min(1e-4)
    z0 = torch.logit(((init_t - lo) / span).clamp(0.02, 0.98))
    free = torch.zeros(B, 15, 3, dtype=torch.bool)
    free[:, 12:15] = True  # thumb
    tips_f = torch.tensor([TIP[FINGERS4[i]] for i in finger_of])
    for b, fi in enumerate(finger_of):
        free[b, list(ROWS[FINGERS4[fi]])] = True
        free[b, ROWS[FINGERS4[fi]][0], 0] = False  # no MCP twist
    z = z0.clone().requires_grad_(True)
    m = K.hands.right
    zero3 = torch.zeros(B, 3)
    betas = torch.zeros(B, 10)

    def closure():
        zz = torch.where(free, z, z0)
        ang = lo + span * torch.sigmoid(zz)
        kp = m.keypoints(betas, zero3, (frames @ ang[..., None])[..., 0].reshape(B, 45), zero3)
        d = kp[:, 16] - kp[torch.arange(B), tips_f]
        dist = d.norm(dim=-1)
        loss = ((dist - PINCH_GAP) * 100).pow(2).sum() + 0.02 * ((ang - init_t) * free).pow(2).sum()
        # the thumb pad, not its side, faces the finger: keep the thumb's distal bone roughly along -d
        bone = kp[:, 16] - kp[:, 15]
        loss = loss + 0.5 * ((bone * d).sum(-1) / (bone.norm(dim=-1) * dist + 1e-6) + 0.3).clamp_min(0).pow(2).sum()
        loss.backward()
        return loss

    with torch_threads(1):
        opt = LBFGS([z], history=10)
        for _ in range(60):
            opt.step(closure)
    with torch.no_grad():
        ang = (lo + span * torch.sigmoid(torch.where(free, z, z0))).numpy().astype(F32)
    return {f: ang[i * PINCH_VARIANTS:(i + 1) * PINCH_VARIANTS] for i, f in enumerate(FINGERS4)}


def pinch_shape(finger: str, rng: np.random.Generator, others: dict | None = None) -> np.ndarray:
    """(15, 3) a thumb-to-``finger`` pinch from the table; ``others`` curls (0..1) the remaining fingers."""
    tab = pinch_table()[finger]
    ang = tab[rng.integers(len(tab))].copy()
    for f, c in (others or {}).items():
        if f != finger:
            set_finger(ang, f, mcp=85 * c, pip=min(100 * c, 98), spread=0.0)
    return ang


REST_WRIST = np.asarray(MANO_RIGHT_REST_JOINTS[0], F32)
