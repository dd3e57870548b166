"""HandX kinematic descriptors (appendix B) of a two-hand motion, from keypoints only.

Pure, vectorised numpy on ``joints`` (T, 2, 21, 3) metres (hand 0 = left, 1 = right; our 21
keypoint order, see ``engine.hands.skeleton``) and ``fps``, so they work on any clip, imported
ones included. World frame: +X the performer's right, +Y up, the performer looks along -Z.

Definitions (exact; thresholds live in :class:`Thresholds`):

- **Palm frame** per hand and frame. ``forward`` = unit(middle1 - wrist). ``normal`` points out
  of the palm: unit(cross(middle1 - wrist, pinky1 - index1)) on the right hand, its negation on
  the left (mirroring flips a cross product); -y for either hand at MANO's rest. ``lateral`` =
  unit(cross(forward, normal)) completes the frame (+z for MANO's right hand at rest).
- **Joint bend** (degrees, + toward the palm, - hyperextension): at joint p with predecessor
  and successor keypoints, v_in = p - p_prev, v_out = p_next - p. Fingers: atan2((v_in x v_out)
  . hinge, v_in . v_out) with hinge = unit(cross(MCP - wrist, normal)), the axis across that
  finger's metacarpal (the bend component only; spread is left out). Thumb: the full angle
  between v_in and v_out, signed by (v_in x v_out) . unit(unit(cross(v_in, normal)) + s normal),
  s = +1 right, -1 left (the thumb hinges obliquely across the palm). Three joints per finger:
  MCP, PIP, DIP (v_in of the MCP is the metacarpal wrist -> MCP); thumb CMC, MCP, IP.
- **Finger flexion** (degrees) = mean bend of the MCP, PIP and DIP joints; thumb: mean of MCP and
  IP (its CMC is opposition more than flexion). States: hyperextended < -20 <= extended < 30 <=
  partially bent < 60 <= fully bent.
- **Finger spacing** (degrees) of the adjacent pairs thumb-index, index-middle, middle-ring,
  ring-pinky: the angle between the two proximal phalanges (MCP -> PIP; thumb MCP -> IP)
  projected onto the palm plane, so differential bending does not read as spreading. Undefined
  (NaN, state ``unknown``) when either phalanx is within 25 deg of the palm normal (a curled
  finger has no in-plane direction). States: closed < 20 <= open.
- **Fingertip-fingertip distance** (m) between keypoint tips: within each hand all 10 pairs
  (``TIP_PAIRS``), across hands all 5 x 5 (left finger, right finger). Contact < 0.02.
- **Palm patch**: the polygon wrist, thumb1, index1, middle1, ring1, pinky1 (HandX's hull of the
  wrist and the five MCPs), fanned from its centroid into 6 triangles and sampled on a regular
  barycentric grid. **Fingertip-palm distance** (m): each fingertip of one hand to the nearest
  sample of the OTHER hand's palm patch. Contact < 0.025 <= near < 0.035 <= far.
- **Palm-palm relation**: ``palm_gap`` (m) = nearest distance between the two palm patches
  (joint planes: on the default hand the palm skin lies 1.6 cm outside the joint plane, so
  touching palms read about 3.2 cm; contact < 0.04 <= near < 0.07 <= apart);
  ``palm_angle`` (deg) between the normals; orientation states: parallel (< 45 deg, facing the
  same way), perpendicular (60..120), facing (> 135 and each normal points toward the other palm
  centre), back_to_back (> 135, both point away), opposite (> 135 otherwise), angled (else).
  ``palm_offset`` (T, 3) = right palm centre - left palm centre, world axes; per axis states
  (threshold 0.04 m): x: crossed / level / apart (right hand left of / level with / right of the
  left), y: below / level / above, z (forward = -z): behind / level / ahead (right relative to left).
- **Hand gap** (m): nearest distance between any keypoints of the two hands (HandX's inter-hand
  contact); contact < 0.02 <= close < 0.05 <= apart.
- **Wrist trajectory**: wrist keypoint, Gaussian-smoothed in time (sigma 0.05 s), velocity by
  central differences (m/s, world axes). Per axis direction states -1 / 0 / +1 with hysteresis:
  moving when |v| > 0.06 m/s (+- 0.02); x: left / right, y: down / up, z: forward (-z) / back.
- **Hand rotation**: the palm frame's rotation, integrated as a world-frame rotation vector
  (rad) from frame 0, for oscillation detection (a wave that pivots at the wrist barely moves it).
- **Hand turning**: angular speed (deg/s) of the palm frame; turning when above 45 deg/s (+- 15).
- **Oscillation**: on each wrist coordinate and each rotation component, a zig-zag of turning
  points with swings of at least 0.015 m / 10 deg; >= 3 consecutive alternating swings, each
  within 1 s, make an oscillation (start, end, swings, amplitude, frequency).

Every descriptor value is Gaussian-smoothed in time (sigma 0.05 s) before it is classified, and
state classification uses hysteresis (a state changes only once the value leaves the band of
+- margin around a boundary), so measurement jitter does not flicker states.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from engine.hands.skeleton import FINGER_JOINTS, FINGERS

FLEXION_STATES = ("hyperextended", "extended", "partially_bent", "fully_bent")
SPACING_STATES = ("closed", "open")  # -1 = unknown
CONTACT_STATES = ("contact", "no_contact")
TIP_PALM_STATES = ("contact", "near", "far")
PALM_PROXIMITY_STATES = ("contact", "near", "apart")
HAND_PROXIMITY_STATES = ("contact", "close", "apart")
PALM_ORIENTATION_STATES = ("parallel", "angled", "perpendicular", "facing", "back_to_back", "opposite")
OFFSET_STATES = {"x": ("crossed", "level", "apart"), "y": ("below", "level", "above"),
                 "z": ("behind", "level", "ahead")}
WRIST_DIRECTIONS = {"x": ("left", "still", "right"), "y": ("down", "still", "up"),
                    "z": ("forward", "still", "backward")}
AXES = ("x", "y", "z")
SPACING_PAIRS = (("thumb", "index"), ("index", "middle"), ("middle", "ring"), ("ring", "pinky"))
TIP_PAIRS = tuple((FINGERS[a], FINGERS[b]) for a in range(5) for b in range(a + 1, 5))
TIP_INDEX = {f: FINGER_JOINTS[f][3] for f in FINGERS}  # finger -> tip keypoint
PALM_POLYGON = (0, 13, 1, 4, 10, 7)  # wrist, thumb1, index1, middle1, ring1, pinky1 (perimeter order)


@dataclass(frozen=True)
class Thresholds:
    """Every boundary of the state tables (HandX Table A plus ours), in degrees, metres, m/s, s."""

    flexion: tuple = (-20.0, 30.0, 60.0)
    flexion_margin: float = 4.0
    spacing: float = 20.0
    spacing_margin: float = 3.0
    spacing_min_tilt: float = 25.0  # deg between a phalanx and the palm normal below which spacing is unknown
    tip_contact: float = 0.02
    tip_palm: tuple = (0.025, 0.035)
    palm_proximity: tuple = (0.04, 0.07)
    hand_proximity: tuple = (0.02, 0.05)
    distance_margin: float = 0.003
    palm_angle: tuple = (45.0, 60.0, 120.0, 135.0)
    angle_margin: float = 5.0
    offset: float = 0.04
    offset_margin: float = 0.01
    wrist_speed: float = 0.06
    wrist_speed_margin: float = 0.02
    turn_speed: float = 45.0
    turn_speed_margin: float = 15.0
    smooth_s: float = 0.05
    osc_translation: float = 0.015
    osc_rotation_deg: float = 10.0
    osc_min_swings: int = 3
    osc_max_half_period_s: float = 1.0


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Oscillation:
    """A back-and-forth of one hand along one channel; frames inclusive."""

    hand: int
    kind: str  # "translation" (wrist position) or "rotation" (palm frame)
    axis: str  # world axis: "x", "y" or "z"
    start: int
    end: int
    swings: int  # alternating half-cycles
    amplitude: float  # mean swing, m or deg
    frequency: float  # Hz (swings / 2 per second)


@dataclass
class HandFeatures:
    """Per-frame descriptors of both hands; arrays indexed (T, hand, ...) with hand 0 = left."""

    fps: float
    joints: np.ndarray  # (T, 2, 21, 3)
    palm_center: np.ndarray  # (T, 2, 3)
    palm_normal: np.ndarray  # (T, 2, 3) unit, out of the palm
    palm_forward: np.ndarray  # (T, 2, 3) unit, wrist -> middle MCP
    palm_lateral: np.ndarray  # (T, 2, 3) unit, finger hinge axis
    joint_bend: np.ndarray  # (T, 2, 5, 3) deg, fingers in FINGERS order, joints proximal -> distal
    flexion: np.ndarray  # (T, 2, 5) deg
    flexion_state: np.ndarray  # (T, 2, 5) int8 into FLEXION_STATES
    spacing: np.ndarray  # (T, 2, 4) deg, NaN where unknown; SPACING_PAIRS order
    spacing_state: np.ndarray  # (T, 2, 4) int8 into SPACING_STATES, -1 unknown
    tip_within: np.ndarray  # (T, 2, 10) m, TIP_PAIRS order
    tip_within_state: np.ndarray  # (T, 2, 10) int8 into CONTACT_STATES
    tip_across: np.ndarray  # (T, 5, 5) m, [left finger, right finger]
    tip_across_state: np.ndarray  # (T, 5, 5) int8 into CONTACT_STATES
    tip_palm: np.ndarray  # (T, 2, 5) m, hand h's fingertips to the other hand's palm
    tip_palm_state: np.ndarray  # (T, 2, 5) int8 into TIP_PALM_STATES
    palm_gap: np.ndarray  # (T,) m
    palm_gap_state: np.ndarray  # (T,) int8 into PALM_PROXIMITY_STATES
    palm_distance: np.ndarray  # (T,) m between palm centres
    palm_angle: np.ndarray  # (T,) deg between the normals
    palm_orientation: np.ndarray  # (T,) int8 into PALM_ORIENTATION_STATES
    palm_offset: np.ndarray  # (T, 3) m, right palm centre - left palm centre
    palm_offset_state: np.ndarray  # (T, 3) int8 into OFFSET_STATES[axis]
    hand_gap: np.ndarray  # (T,) m
    hand_gap_state: np.ndarray  # (T,) int8 into HAND_PROXIMITY_STATES
    wrist: np.ndarray  # (T, 2, 3) m, smoothed
    wrist_velocity: np.ndarray  # (T, 2, 3) m/s
    wrist_speed: np.ndarray  # (T, 2) m/s
    wrist_direction: np.ndarray  # (T, 2, 3) int8 in {-1, 0, 1}
    palm_axes: np.ndarray  # (T, 2, 3, 3) columns forward, lateral, normal
    hand_rotation: np.ndarray  # (T, 2, 3) rad, integrated world rotation vector
    turn_speed: np.ndarray  # (T, 2) deg/s
    turn_state: np.ndarray  # (T, 2) int8: 0 steady, 1 turning
    oscillations: list = field(default_factory=list)  # [Oscillation]
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])


# --- small pure helpers ---------------------------------------------------------------------

def _unit(v: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), eps)


def classify(values: np.ndarray, edges, margin: float) -> np.ndarray:
    """Values (T, ...) -> int8 class index (np.digitize on ``edges``) with hysteresis along time.

    Inside the band +- ``margin`` around a boundary the previous certain state is kept; frame 0
    takes its plain class. NaN values get -1.
    """
    edges = np.asarray(edges, np.float64)
    v = np.nan_to_num(values, nan=0.0)
    plain = np.digitize(v, edges)
    lo = np.digitize(v, edges - margin)
    hi = np.digitize(v, edges + margin)
    certain = lo == hi
    certain[0] = True
    T = v.shape[0]
    idx = np.where(certain, np.arange(T).reshape((T,) + (1,) * (v.ndim - 1)), 0)
    idx = np.maximum.accumulate(idx, axis=0)
    out = np.take_along_axis(plain, idx, axis=0).astype(np.int8)
    out[np.isnan(values)] = -1
    return out


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (..., N, M) between point sets a (..., N, 3) and b (..., M, 3)."""
    d2 = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2.0 * (a @ np.swapaxes(b, -1, -2))
    return np.sqrt(np.maximum(d2, 0.0))


def distances_to_samples(points: np.ndarray, poly: np.ndarray, weights: np.ndarray,
                         outer: np.ndarray | None = None) -> np.ndarray:
    """Distances (B, N, K) from points (B, N, 3) to the samples ``weights @ poly`` of polygons
    poly (B, P, 3), weights (K, P); done as 2-D matmuls (no (B, N, K, 3) temporary).
    ``outer`` (P*P, K) = the weights' outer products, precomputed for speed."""
    B, N, P = points.shape[0], points.shape[1], poly.shape[1]
    if outer is None:
        outer = _outer(weights)
    tp = (points @ np.swapaxes(poly, -1, -2)).reshape(B * N, P) @ weights.T  # (B*N, K)
    gram = (poly @ np.swapaxes(poly, -1, -2)).reshape(B, P * P)  # (B, P*P)
    qq = gram @ outer  # (B, K) squared sample norms
    d2 = (points * points).sum(-1)[..., None] + qq[:, None, :] - 2.0 * tp.reshape(B, N, -1)
    return np.sqrt(np.maximum(d2, 0.0))


def _barycentric_grid(level: int) -> np.ndarray:
    """(K, 3) barycentric weights of a regular grid on a triangle, K = (level+1)(level+2)/2."""
    pts = [(i, j, level - i - j) for i in range(level + 1) for j in range(level + 1 - i)]
    return np.asarray(pts, np.float64) / level


def palm_sample_weights(level: int) -> np.ndarray:
    """(K, 6) weights mapping the 6 palm polygon keypoints to samples of the fanned patch."""
    bary = _barycentric_grid(level)  # (k, 3): centroid, vertex a, vertex b
    rows = []
    for a in range(6):
        b = (a + 1) % 6
        w = np.zeros((len(bary), 6))
        w += bary[:, :1] / 6.0
        w[:, a] += bary[:, 1]
        w[:, b] += bary[:, 2]
        rows.append(w)
    return np.concatenate(rows)


def _outer(weights: np.ndarray) -> np.ndarray:
    """(K, P) -> (P*P, K) contiguous, so |weights @ poly|^2 = gram(poly).ravel() @ outer."""
    return np.ascontiguousarray(np.einsum("ki,kj->ijk", weights, weights).reshape(-1, weights.shape[0]))


_PALM_DENSE = palm_sample_weights(5)  # (126, 6), ~3 mm spacing on an adult palm
_PALM_DENSE_OUTER = _outer(_PALM_DENSE)
_PALM_COARSE = palm_sample_weights(2)  # (36, 6)


def palm_frames(joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """joints (T, 2, 21, 3) -> centre, normal, forward, lateral, each (T, 2, 3)."""
    wrist, index1, middle1, pinky1 = (joints[..., i, :] for i in (0, 1, 4, 7))
    forward = _unit(middle1 - wrist)
    normal = np.cross(middle1 - wrist, pinky1 - index1)
    normal[:, 0] *= -1.0  # left hand: mirroring flips the cross product
    normal = _unit(normal)
    lateral = _unit(np.cross(forward, normal))
    center = joints[..., PALM_POLYGON, :].mean(-2)
    return center, normal, forward, lateral


def joint_bends(joints: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """(T, 2, 21, 3), palm normals (T, 2, 3) -> signed bends (T, 2, 5, 3) degrees."""
    chains = np.array([(0,) + FINGER_JOINTS[f] for f in FINGERS])  # (5, 5) wrist, j1, j2, j3, tip
    p = joints[..., chains, :]  # (T, 2, 5, 5, 3)
    bone = p[..., 1:, :] - p[..., :-1, :]  # (T, 2, 5, 4, 3)
    v_in, v_out = bone[..., :-1, :], bone[..., 1:, :]  # (T, 2, 5, 3, 3)
    c = np.cross(v_in, v_out)
    dot = (v_in * v_out).sum(-1)  # (T, 2, 5, 3)
    # each finger hinges about the axis across its own metacarpal (the pinky fans out from the index)
    hinge = _unit(np.cross(v_in[:, :, 1:, 0], normal[:, :, None]))  # (T, 2, 4, 3)
    fingers = np.arctan2((c[:, :, 1:] * hinge[:, :, :, None]).sum(-1), dot[:, :, 1:])
    # thumb: full angle, signed against an axis across the palm
    n = normal[:, :, None]  # (T, 2, 1, 3)
    side = np.array([-1.0, 1.0])[None, :, None, None]  # the normal term does not mirror with the cross
    axis = _unit(_unit(np.cross(v_in[:, :, 0], n)) + side * n)  # (T, 2, 3, 3)
    sign = np.where((c[:, :, 0] * axis).sum(-1) < 0, -1.0, 1.0)
    thumb = sign * np.arctan2(np.linalg.norm(c[:, :, 0], axis=-1), dot[:, :, 0])
    return np.degrees(np.concatenate([thumb[:, :, None], fingers], axis=2))


def finger_spacing(joints: np.ndarray, normal: np.ndarray, min_tilt_deg: float) -> np.ndarray:
    """Angles (T, 2, 4) deg between adjacent proximal phalanges in the palm plane; NaN if undefined."""
    prox = {f: (FINGER_JOINTS[f][0], FINGER_JOINTS[f][1]) for f in FINGERS}
    prox["thumb"] = (14, 15)
    a = np.stack([joints[..., prox[f][1], :] - joints[..., prox[f][0], :] for f, _ in SPACING_PAIRS], 2)
    b = np.stack([joints[..., prox[g][1], :] - joints[..., prox[g][0], :] for _, g in SPACING_PAIRS], 2)
    n = normal[:, :, None]  # (T, 2, 1, 3)
    a, b = _unit(a), _unit(b)
    pa = a - (a * n).sum(-1, keepdims=True) * n
    pb = b - (b * n).sum(-1, keepdims=True) * n
    la, lb = np.linalg.norm(pa, axis=-1), np.linalg.norm(pb, axis=-1)
    cos = (pa * pb).sum(-1) / np.maximum(la * lb, 1e-12)
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    min_len = np.sin(np.radians(min_tilt_deg))
    return np.where((la < min_len) | (lb < min_len), np.nan, ang)


def _rotation_log(R: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) -> rotation vectors (..., 3) (angles well below pi)."""
    cos = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    ang = np.arccos(cos)
    w = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    scale = np.where(ang > 1e-6, ang / np.maximum(2.0 * np.sin(ang), 1e-12), 0.5)
    return w * scale[..., None]


def zigzag(signal: list, threshold: float) -> list:
    """Alternating turning-point frame indices of a 1-D signal whose swings are >= threshold."""
    T = len(signal)
    if T < 2:
        return []
    lo_i = hi_i = 0
    direction, ext = 0, 0
    pivots: list = []
    for i in range(1, T):
        s = signal[i]
        if direction == 0:
            if s < signal[lo_i]:
                lo_i = i
            if s > signal[hi_i]:
                hi_i = i
            if s - signal[lo_i] >= threshold and lo_i < i:
                pivots.append(lo_i)
                direction, ext = 1, i
            elif signal[hi_i] - s >= threshold and hi_i < i:
                pivots.append(hi_i)
                direction, ext = -1, i
        elif direction == 1:
            if s > signal[ext]:
                ext = i
            elif signal[ext] - s >= threshold:
                pivots.append(ext)
                direction, ext = -1, i
        else:
            if s < signal[ext]:
                ext = i
            elif s - signal[ext] >= threshold:
                pivots.append(ext)
                direction, ext = 1, i
    if direction != 0:
        pivots.append(ext)
    return pivots


def find_oscillations(signal: np.ndarray, threshold: float, fps: float, min_swings: int,
                      max_half_period_s: float) -> list[tuple[int, int, int, float, float]]:
    """1-D signal (T,) -> [(start, end, swings, mean amplitude, frequency Hz)] of back-and-forths."""
    if signal.shape[0] < 3 or np.ptp(signal) < threshold:
        return []
    s = signal.tolist()
    piv = zigzag(s, threshold)
    out = []
    max_gap = max_half_period_s * fps
    run = [piv[0]] if piv else []
    for p in piv[1:] + [None]:
        if p is not None and p - run[-1] <= max_gap:
            run.append(p)
            continue
        swings = len(run) - 1
        if swings >= min_swings:
            amp = float(np.mean(np.abs(np.diff([s[i] for i in run]))))
            dur = (run[-1] - run[0]) / fps
            out.append((run[0], run[-1], swings, amp, swings / 2.0 / dur if dur > 0 else 0.0))
        run = [p] if p is not None else []
    return out


# --- the descriptor set -----------------------------------------------------------------------

def features_from_joints(joints: np.ndarray, fps: float, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> HandFeatures:
    """All descriptors of keypoints (T, 2, 21, 3) metres sampled at ``fps``."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 4 or joints.shape[1:] != (2, 21, 3):
        raise ValueError(f"joints must have shape (T, 2, 21, 3); got {joints.shape}")
    if joints.shape[0] < 1:
        raise ValueError("joints must have at least 1 frame; got 0")
    if not np.isfinite(joints).all():
        raise ValueError("joints must be finite; found NaN or inf")
    fps = float(fps)
    if not fps > 0:
        raise ValueError(f"fps must be positive; got {fps}")
    th = thresholds
    T = joints.shape[0]

    sigma = th.smooth_s * fps
    smooth = T >= 3 and sigma > 0.3

    def lowpass(x: np.ndarray) -> np.ndarray:
        """Gaussian along time (sigma ``smooth_s``), NaN-aware; measurement jitter does not reach the states."""
        if not smooth:
            return x
        nan = np.isnan(x)
        if nan.any():
            y = gaussian_filter1d(np.where(nan, 0.0, x), sigma, axis=0, mode="nearest")
            w = gaussian_filter1d((~nan).astype(float), sigma, axis=0, mode="nearest")
            return np.where(nan, np.nan, y / np.maximum(w, 1e-6))
        return gaussian_filter1d(x, sigma, axis=0, mode="nearest")

    center, normal, forward, lateral = palm_frames(joints)

    bends = joint_bends(joints, normal)  # (T, 2, 5, 3)
    flexion = lowpass(np.concatenate([bends[:, :, :1, 1:].mean(-1), bends[:, :, 1:].mean(-1)], axis=2))  # (T, 2, 5)
    flexion_state = classify(flexion, th.flexion, th.flexion_margin)

    spacing = lowpass(finger_spacing(joints, normal, th.spacing_min_tilt))
    spacing_state = classify(spacing, (th.spacing,), th.spacing_margin)

    tips = joints[:, :, [TIP_INDEX[f] for f in FINGERS]]  # (T, 2, 5, 3)
    ia = np.array([FINGERS.index(a) for a, _ in TIP_PAIRS])
    ib = np.array([FINGERS.index(b) for _, b in TIP_PAIRS])
    tip_within = lowpass(np.linalg.norm(tips[:, :, ia] - tips[:, :, ib], axis=-1))  # (T, 2, 10)
    tip_across = lowpass(pairwise_distances(tips[:, 0], tips[:, 1]))  # (T, 5, 5)
    tip_within_state = classify(tip_within, (th.tip_contact,), th.distance_margin)
    tip_across_state = classify(tip_across, (th.tip_contact,), th.distance_margin)

    poly = joints[:, :, PALM_POLYGON]  # (T, 2, 6, 3)
    other = poly[:, ::-1].reshape(T * 2, 6, 3)  # the other hand's palm polygon
    tip_palm = lowpass(distances_to_samples(tips.reshape(T * 2, 5, 3), other, _PALM_DENSE,
                                            _PALM_DENSE_OUTER).min(-1).reshape(T, 2, 5))
    tip_palm_state = classify(tip_palm, th.tip_palm, th.distance_margin)

    coarse = np.einsum("kp,thpc->thkc", _PALM_COARSE, poly)  # (T, 2, k, 3)
    palm_gap = lowpass(pairwise_distances(coarse[:, 0], coarse[:, 1]).reshape(T, -1).min(-1))  # (T,)
    palm_gap_state = classify(palm_gap, th.palm_proximity, th.distance_margin)
    offset = center[:, 1] - center[:, 0]  # (T, 3)
    palm_distance = np.linalg.norm(offset, axis=-1)
    palm_angle = lowpass(np.degrees(np.arccos(np.clip((normal[:, 0] * normal[:, 1]).sum(-1), -1.0, 1.0))))
    band = classify(palm_angle, th.palm_angle, th.angle_margin)  # 0..4
    toward_l = (normal[:, 0] * offset).sum(-1) > 0  # left normal points at the right palm
    toward_r = (normal[:, 1] * -offset).sum(-1) > 0
    orient = np.array([0, 1, 2, 1, 5], np.int8)[band]
    orient[(band == 4) & toward_l & toward_r] = 3
    orient[(band == 4) & ~toward_l & ~toward_r] = 4
    offset_state = classify(offset, (-th.offset, th.offset), th.offset_margin)

    hand_gap = lowpass(pairwise_distances(joints[:, 0], joints[:, 1]).reshape(T, -1).min(-1))  # (T,)
    hand_gap_state = classify(hand_gap, th.hand_proximity, th.distance_margin)

    wrist = lowpass(joints[:, :, 0])
    vel = np.gradient(wrist, axis=0) * fps if T >= 2 else np.zeros_like(wrist)  # (T, 2, 3)
    speed = np.linalg.norm(vel, axis=-1)
    direction = classify(vel, (-th.wrist_speed, th.wrist_speed), th.wrist_speed_margin) - 1

    R = np.stack([forward, lateral, normal], axis=-1)  # (T, 2, 3, 3) columns
    if T >= 2:
        dR = R[1:] @ np.swapaxes(R[:-1], -1, -2)  # world-frame increments
        inc = _rotation_log(dR)  # (T-1, 2, 3)
        rot = np.concatenate([np.zeros((1, 2, 3)), np.cumsum(inc, axis=0)])
    else:
        rot = np.zeros((T, 2, 3))
    rot = lowpass(rot)
    omega = np.gradient(rot, axis=0) * fps if T >= 2 else np.zeros_like(rot)  # (T, 2, 3) rad/s
    turn_speed = np.degrees(np.linalg.norm(omega, axis=-1))
    turn_state = classify(turn_speed, (th.turn_speed,), th.turn_speed_margin)

    osc = []
    for h in range(2):
        for kind, sig, thr, unit in (("translation", wrist, th.osc_translation, 1.0),
                                     ("rotation", rot, np.radians(th.osc_rotation_deg), 180.0 / np.pi)):
            for a in range(3):
                for s, e, n, amp, freq in find_oscillations(sig[:, h, a], thr, fps, th.osc_min_swings,
                                                            th.osc_max_half_period_s):
                    osc.append(Oscillation(h, kind, AXES[a], s, e, n, amp * unit, freq))

    return HandFeatures(
        fps=fps, joints=joints, palm_center=center, palm_normal=normal, palm_forward=forward,
        palm_lateral=lateral, joint_bend=bends, flexion=flexion, flexion_state=flexion_state,
        spacing=spacing, spacing_state=spacing_state, tip_within=tip_within,
        tip_within_state=tip_within_state, tip_across=tip_across, tip_across_state=tip_across_state,
        tip_palm=tip_palm, tip_palm_state=tip_palm_state, palm_gap=palm_gap,
        palm_gap_state=palm_gap_state, palm_distance=palm_distance, palm_angle=palm_angle,
        palm_orientation=orient, palm_offset=offset, palm_offset_state=offset_state.astype(np.int8),
        hand_gap=hand_gap, hand_gap_state=hand_gap_state, wrist=wrist, wrist_velocity=vel,
        wrist_speed=speed, wrist_direction=direction.astype(np.int8), palm_axes=R, hand_rotation=rot,
        turn_speed=turn_speed, turn_state=turn_state,
        oscillations=osc, thresholds=th)


def kinematic_features(clip, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> HandFeatures:
    """All descriptors of a ``Clip`` (anything with ``joints`` (T, 2, 21, 3) and ``fps``)."""
    return features_from_joints(clip.joints, clip.fps, thresholds)
