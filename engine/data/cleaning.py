"""Cleaning real mocap before it becomes training data (CLUTCH §3.2, HandX A.3-A.4).

Steps, each a pure function, chained by ``clean_sequence`` which reports what each removed:
1. defective frames: non-finite values or jumps faster than a hand can move;
2. temporal smoothing: Savitzky-Golay, then Gaussian (rotations smoothed in 6D, re-orthonormalised);
3. non-overlapping clip extraction (60 frames) inside the valid intervals only;
4. jitter rejection: mean of the top-3 sequence-level accelerations of translation and rotation;
5. intensity filter: weighted joint angular velocity of the finger chains, both hands.

Thresholds are configurable. HandX gives the intensity thresholds (25 deg/s per hand, 30 deg/s
on average). CLUTCH gives no numbers for the jitter filter; its metric is applied here to the
high-frequency part of the motion (see ``jitter_score``), with defaults that flag a one-frame
glitch of ~1.5 cm or ~25 degrees while 1 mm / 1 degree tracking noise passes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import savgol_filter

from engine.hands.skeleton import FINGER_JOINTS, KEYPOINT_PARENTS
from engine.motion.clip import Clip


@dataclass(frozen=True)
class CleaningConfig:
    """Thresholds of every step (defaults: the papers' where they give one)."""

    max_speed: float = 5.0  # m/s of any keypoint between two frames; faster = defective frame
    savgol_window: int = 9  # frames (odd); 0 disables
    savgol_order: int = 3
    gauss_sigma: float = 0.5  # frames; 0 disables (9/3 + 0.5: 1 mm on clean synth clips, noise -40 %)
    clip_length: int = 60
    max_transl_accel: float = 30.0  # m/s^2, top-3 high-frequency wrist acceleration (~1.5 cm glitch)
    max_rot_accel: float = 30000.0  # deg/s^2, same for rotations (~25 degree one-frame glitch)
    min_hand_intensity: float = 25.0  # deg/s, HandX tau_hand
    min_avg_intensity: float = 30.0  # deg/s, HandX tau_avg

    def __post_init__(self):
        """Each threshold in its valid range, else one ValueError that starts with the field's name
        and gives the range ("max_speed must be > 0 (a finite number, m/s); got 0.0")."""
        for name, (is_int, lo, lo_open, what) in _CLEANING_RANGES.items():
            v = getattr(self, name)
            ok_type = isinstance(v, (int, np.integer)) if is_int else isinstance(v, (int, float, np.integer, np.floating))
            if isinstance(v, bool) or not ok_type or not math.isfinite(v) or (v <= lo if lo_open else v < lo):
                kind = "an integer" if is_int else "a finite number"
                raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo:g} ({kind}, {what}); got {v!r}")
        if self.savgol_window and (self.savgol_window % 2 == 0 or self.savgol_window <= self.savgol_order):
            raise ValueError(f"savgol_window must be 0 or an odd number above savgol_order ({self.savgol_order}) "
                             f"(frames; 0 turns it off); got {self.savgol_window}")


# field -> (integer?, lower bound, bound excluded?, meaning). No upper bounds: a huge threshold is
# how a filter is switched off (e.g. max_transl_accel=1e9).
_CLEANING_RANGES = {
    "max_speed": (False, 0.0, True, "m/s"),
    "savgol_window": (True, 0, False, "frames; 0 turns it off"),
    "savgol_order": (True, 0, False, "polynomial order, below savgol_window"),
    "gauss_sigma": (False, 0.0, False, "frames; 0 turns it off"),
    "clip_length": (True, 8, False, "frames"),
    "max_transl_accel": (False, 0.0, False, "m/s^2"),
    "max_rot_accel": (False, 0.0, False, "deg/s^2"),
    "min_hand_intensity": (False, 0.0, False, "deg/s"),
    "min_avg_intensity": (False, 0.0, False, "deg/s"),
}


@dataclass
class CleaningReport:
    """What each step removed; ``kept`` are the clips that survived."""

    frames_in: int = 0
    defective_frames: int = 0
    frames_outside_clips: int = 0
    clips_extracted: int = 0
    rejected_jitter: int = 0
    rejected_intensity: int = 0
    kept: int = 0
    jitter_scores: list = field(default_factory=list)
    intensities: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def merge(self, other: "CleaningReport") -> "CleaningReport":
        out = CleaningReport()
        for k, v in asdict(self).items():
            setattr(out, k, v + getattr(other, k))
        return out


# --- 1. defective frames ----------------------------------------------------------------

def defective_frames(keypoints: np.ndarray, fps: float, max_speed: float = 5.0) -> np.ndarray:
    """(T, 2, 21, 3) metres -> (T,) bool: non-finite, or reached by a jump faster than ``max_speed``.

    A jump marks the frame *after* it (the first frame of a wrong stretch is the one to drop).
    """
    T = keypoints.shape[0]
    bad = ~np.isfinite(keypoints).reshape(T, -1).all(1)
    if T > 1:
        step = np.linalg.norm(np.diff(keypoints, axis=0), axis=-1).max(axis=(1, 2)) * fps  # (T-1,)
        with np.errstate(invalid="ignore"):
            bad[1:] |= ~(step <= max_speed)  # NaN steps count as jumps
    return bad


def valid_intervals(bad: np.ndarray) -> list[tuple[int, int]]:
    """Maximal [start, stop) runs of good frames."""
    good = np.concatenate([[False], ~bad, [False]])
    edges = np.flatnonzero(np.diff(good.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


# --- 2. smoothing -------------------------------------------------------------------------

def _smooth_time(x: np.ndarray, cfg: CleaningConfig) -> np.ndarray:
    """Savitzky-Golay then Gaussian along axis 0 (any trailing shape)."""
    T = x.shape[0]
    out = x.astype(np.float64)
    w = min(cfg.savgol_window, T if T % 2 else T - 1)
    if cfg.savgol_window and w > cfg.savgol_order:
        out = savgol_filter(out, w, cfg.savgol_order, axis=0, mode="interp")
    if cfg.gauss_sigma > 0 and T > 1:
        out = gaussian_filter1d(out, cfg.gauss_sigma, axis=0, mode="nearest")
    return out


def smooth_clip(clip: Clip, cfg: CleaningConfig = CleaningConfig()) -> Clip:
    """Temporal smoothing of translation (directly) and rotations (in 6D, then Gram-Schmidt)."""
    import torch

    from engine.motion.rotations import rot6d_to_axis_angle

    T = clip.num_frames
    aa = rot6d_to_axis_angle(torch.from_numpy(_smooth_time(_rot6d(clip), cfg))).numpy()  # (T, 2, 16, 3)
    return clip.copy(transl=_smooth_time(clip.transl, cfg), global_orient=aa[:, :, 0],
                     hand_pose=aa[:, :, 1:].reshape(T, 2, 45))


# --- 3. clip extraction -------------------------------------------------------------------

def extract_windows(bad: np.ndarray, length: int = 60) -> list[tuple[int, int]]:
    """Non-overlapping [start, stop) windows of ``length`` frames that contain no bad frame."""
    out = []
    for a, b in valid_intervals(bad):
        out.extend((s, s + length) for s in range(a, b - length + 1, length))
    return out


# --- 4. jitter ----------------------------------------------------------------------------

def _rot6d(clip: Clip) -> np.ndarray:
    """(T, 2, 16, 6) 6D rotations of global_orient + the 15 joints."""
    import torch

    from engine.motion.rotations import axis_angle_to_rot6d

    T = clip.num_frames
    aa = np.concatenate([clip.global_orient[:, :, None], clip.hand_pose.reshape(T, 2, 15, 3)], 2)
    return axis_angle_to_rot6d(torch.from_numpy(aa).double()).numpy()


def jitter_score(raw: Clip, smoothed: Clip) -> tuple[float, float]:
    """CLUTCH's mean of the top-3 frame accelerations, of translation (m/s^2) and rotation
    (deg/s^2 of the 6D columns), taken on what the smoothing removed (raw - smoothed).

    Plain top-3 accelerations cannot tell a 2 cm one-frame glitch (~40 m/s^2) from a brisk clap
    in our data; the high-frequency part can: smooth motion leaves ~1 m/s^2 there.
    """
    if raw.num_frames < 3:
        return 0.0, 0.0
    f2 = raw.fps * raw.fps
    top3 = lambda a: float(np.sort(a)[-3:].mean())  # noqa: E731
    acc_t = np.linalg.norm(np.diff(raw.transl - smoothed.transl, n=2, axis=0), axis=-1).max(1) * f2  # (T-2,)
    r = _rot6d(raw) - _rot6d(smoothed)
    acc_r = np.degrees(np.linalg.norm(np.diff(r, n=2, axis=0), axis=-1).max(axis=(1, 2))) * f2  # (T-2,)
    return top3(acc_t), top3(acc_r)


# --- 5. intensity -------------------------------------------------------------------------

# Joint weights per finger chain, proximal > distal (HandX A.4 "hierarchical importance").
_CHAIN_WEIGHTS = (3.0, 2.0, 1.0)


def bend_angles(keypoints: np.ndarray) -> np.ndarray:
    """Inter-segment angle at each finger joint (3 per finger). (T, 2, 21, 3) -> (T, 2, 15) radians."""
    out = []
    for j1, j2, j3, tip in FINGER_JOINTS.values():
        chain = (KEYPOINT_PARENTS[j1], j1, j2, j3, tip)
        for k in range(1, 4):
            a = keypoints[..., chain[k], :] - keypoints[..., chain[k - 1], :]
            b = keypoints[..., chain[k + 1], :] - keypoints[..., chain[k], :]
            cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)
            out.append(np.arccos(np.clip(cos, -1, 1)))
    return np.stack(out, -1)


def hand_intensity(keypoints: np.ndarray, fps: float) -> np.ndarray:
    """Weighted mean angular speed of the finger joints, per hand. (T, 2, 21, 3) -> (2,) deg/s."""
    if keypoints.shape[0] < 2:
        return np.zeros(2)
    speed = np.abs(np.diff(np.degrees(bend_angles(keypoints)), axis=0)) * fps  # (T-1, 2, 15)
    w = np.tile(_CHAIN_WEIGHTS, 5)  # (15,)
    return (speed * w).sum(-1).mean(0) / w.sum()


def intensity_ok(keypoints: np.ndarray, fps: float, cfg: CleaningConfig = CleaningConfig()) -> tuple[bool, np.ndarray]:
    """HandX's rule: both hands >= tau_hand and their mean >= tau_avg."""
    inten = hand_intensity(keypoints, fps)
    return bool((inten >= cfg.min_hand_intensity).all() and inten.mean() >= cfg.min_avg_intensity), inten


# --- the pipeline -------------------------------------------------------------------------

def clean_sequence(clip: Clip, cfg: CleaningConfig = CleaningConfig(),
                   bad: np.ndarray | None = None) -> tuple[list[Clip], CleaningReport]:
    """One long sequence -> clean training clips + a report of what each step removed.

    ``bad`` (T,) marks frames already known to be defective (e.g. NaN keypoints an importer
    replaced before fitting); jumps are detected here on top of it.
    """
    rep = CleaningReport(frames_in=clip.num_frames)
    bad = np.zeros(clip.num_frames, bool) if bad is None else np.asarray(bad, bool).copy()
    bad |= defective_frames(clip.joints, clip.fps, cfg.max_speed)
    rep.defective_frames = int(bad.sum())
    kept = []
    for a, b in valid_intervals(bad):
        if b - a < cfg.clip_length:
            rep.frames_outside_clips += b - a
            continue
        raw = clip.slice(a, b)
        smooth = smooth_clip(raw, cfg)  # smooth whole intervals, never across a gap
        n = (b - a) // cfg.clip_length
        rep.clips_extracted += n
        rep.frames_outside_clips += (b - a) - n * cfg.clip_length
        for k in range(n):
            s0, s1 = k * cfg.clip_length, (k + 1) * cfg.clip_length
            c = smooth.slice(s0, s1)
            jt, jr = jitter_score(raw.slice(s0, s1), c)
            rep.jitter_scores.append((round(jt, 3), round(jr, 3)))
            if jt > cfg.max_transl_accel or jr > cfg.max_rot_accel:
                rep.rejected_jitter += 1
                continue
            ok, inten = intensity_ok(c.joints, c.fps, cfg)
            rep.intensities.append([round(float(x), 3) for x in inten])
            if not ok:
                rep.rejected_intensity += 1
                continue
            kept.append(c)
    rep.kept = len(kept)
    return kept, rep
