"""The papers' metrics as pure numpy functions (HandX Table 2, T2M conventions).

Embedding metrics take L2-normalised embeddings from the shared evaluator. Kinematic metrics
take keypoints (N, T, 2, 21, 3) in metres. Constraint metrics (exactness of kept channels, keyed
joints, wrist paths, seams) and physical plausibility (capsule interpenetration of the two hands,
anatomical joint limits) take one clip's arrays; engine.evaluation.physical supplies the hand
model's capsules and joint angles.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from engine.hands.skeleton import FINGER_JOINTS

TIPS = [FINGER_JOINTS[f][3] for f in ("thumb", "index", "middle", "ring", "pinky")]


def _check_emb(*arrays):
    for a in arrays:
        if a.ndim != 2:
            raise ValueError(f"embeddings must be (N, D); got {a.shape}")


def fid(real: np.ndarray, gen: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two embedding sets (N, D)."""
    _check_emb(real, gen)
    mu1, mu2 = real.mean(0), gen.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(gen, rowvar=False)
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def kid(real: np.ndarray, gen: np.ndarray, subsets: int = 50, subset_size: int = 500, seed: int = 0) -> float:
    """Kernel inception distance: unbiased MMD^2 with the cubic polynomial kernel, averaged over subsets."""
    _check_emb(real, gen)
    rng = np.random.default_rng(seed)
    d = real.shape[1]
    m = min(subset_size, len(real), len(gen))
    vals = []
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = gen[rng.choice(len(gen), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                    - 2 * kxy.mean())
    return float(np.mean(vals))


def r_precision(text: np.ndarray, motion: np.ndarray, pool: int = 32, top: int = 3, seed: int = 0) -> list[float]:
    """Pair i is (text[i], motion[i]). In shuffled pools of ``pool`` pairs, how often the matching
    motion is among each text's k nearest (Euclidean) motions, for k = 1..top.

    Ties count against the match: a distractor at the same distance as the true motion ranks
    above it, so the true motion is in the top k only when at most k - 1 distractors are at
    least as close. A model whose embeddings are all equal scores 0 for every k < ``pool``
    (counting ties as hits gave it 1.0)."""
    _check_emb(text, motion)
    if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)) or pool < 2:
        raise ValueError(f"r_precision pool must be an int >= 2; got {pool!r}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(text))
    hits = np.zeros(top)
    n = 0
    for s in range(0, len(order) - pool + 1, pool):
        idx = order[s:s + pool]
        d = np.linalg.norm(text[idx][:, None] - motion[idx][None], axis=-1)  # (pool, pool)
        # distractors at least as close as the true motion (the diagonal itself is not counted)
        true = d.diagonal()
        rank = np.where(np.isfinite(true), (d <= true[:, None]).sum(1) - 1, pool)  # NaN: a miss
        for k in range(top):
            hits[k] += (rank <= k).sum()
        n += pool
    if n == 0:
        raise ValueError(f"r_precision needs at least {pool} pairs; got {len(text)}")
    return list(hits / n)


def mm_dist(text: np.ndarray, motion: np.ndarray) -> float:
    """Mean Euclidean distance between each text and its own motion."""
    return float(np.linalg.norm(text - motion, axis=-1).mean())


def diversity(motion: np.ndarray, pairs: int = 300, seed: int = 0) -> float:
    """Mean distance between random pairs of motion embeddings."""
    rng = np.random.default_rng(seed)
    n = min(pairs, len(motion))
    a, b = rng.choice(len(motion), n, replace=False), rng.choice(len(motion), n, replace=False)
    return float(np.linalg.norm(motion[a] - motion[b], axis=-1).mean())


def multimodality(groups: np.ndarray, pairs: int = 10, seed: int = 0) -> float:
    """groups (P, R, D): R generations per prompt; mean distance between random pairs within a prompt."""
    rng = np.random.default_rng(seed)
    P, R, _ = groups.shape
    a, b = rng.integers(0, R, (P, pairs)), rng.integers(0, R, (P, pairs))
    keep = a != b
    d = np.linalg.norm(groups[np.arange(P)[:, None], a] - groups[np.arange(P)[:, None], b], axis=-1)
    return float(d[keep].mean()) if keep.any() else 0.0


# --- contact ------------------------------------------------------------------------------------
def contact_masks(joints: np.ndarray, thr: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """(N, T, 2, 21, 3) -> intra (N, T, 2, 5, 5) thumb-and-finger tip contacts per hand, inter
    (N, T, 5, 5) left-tip-to-right-tip contacts, both at ``thr`` metres."""
    tips = joints[..., TIPS, :]  # (N, T, 2, 5, 3)
    intra = np.linalg.norm(tips[..., :, None, :] - tips[..., None, :, :], axis=-1) < thr
    intra &= ~np.eye(5, dtype=bool)
    inter = np.linalg.norm(tips[..., 0, :, None, :] - tips[..., 1, None, :, :], axis=-1) < thr
    return intra, inter


def _prf(g: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall, F1 of boolean labels ``g`` (generated) against ``r`` (reference)."""
    tp, fp, fn = (g & r).sum(), (g & ~r).sum(), (~g & r).sum()
    p = tp / (tp + fp) if tp + fp else 1.0 if fn == 0 else 0.0
    rc = tp / (tp + fn) if tp + fn else 1.0 if fp == 0 else 0.0
    return float(p), float(rc), float(2 * p * rc / (p + rc)) if p + rc else 0.0


def contact_prf(gen: np.ndarray, ref: np.ndarray, thr: float = 0.02) -> dict[str, float]:
    """Precision / recall / F1 of fingertip contacts of generated vs reference motion, intra- and
    inter-hand, frame by frame (a contact must happen at the same frame; pooled over the set).
    Stricter than HandX's sequence-level definition (``contact_prf_sequences``)."""
    out = {}
    for name, g, r in zip(("intra", "inter"), contact_masks(gen, thr), contact_masks(ref, thr)):
        out[f"{name}_precision"], out[f"{name}_recall"], out[f"{name}_f1"] = _prf(g, r)
    return out


def thumb_gaps(joints: np.ndarray) -> np.ndarray:
    """(..., 21, 3) -> (..., 4): thumb tip to index / middle / ring / little tip of the same hand."""
    tips = np.asarray(joints)[..., TIPS, :]
    return np.linalg.norm(tips[..., 1:, :] - tips[..., :1, :], axis=-1)


def contact_labels(joints: np.ndarray, thr: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """HandX's contact labels (appendix E.1), one per sequence: intra (N, 2, 4) - the thumb tip
    within ``thr`` of the index / middle / ring / little tip of the same hand at any frame; inter
    (N,) - the closest keypoint pair across the two hands within ``thr`` at any frame.
    joints (N, T, 2, 21, 3) metres."""
    j = np.asarray(joints)
    if j.ndim != 5 or j.shape[2:] != (2, 21, 3):
        raise ValueError(f"joints must be (N, T, 2, 21, 3); got {j.shape}")
    intra = (thumb_gaps(j) < thr).any(axis=1)
    inter = np.empty(len(j), dtype=bool)
    for i in range(len(j)):  # (T, 21, 21) per clip keeps memory flat
        d = np.linalg.norm(j[i, :, 0, :, None, :] - j[i, :, 1, None, :, :], axis=-1)
        inter[i] = bool((d < thr).any())
    return intra, inter


def contact_prf_sequences(gen: np.ndarray, ref: np.ndarray, thr: float = 0.02) -> dict[str, float]:
    """HandX's contact precision / recall / F1 (appendix E.1): sequence-level labels of
    ``contact_labels`` for the generated motion against its reference, pooled over the set (intra:
    8 thumb-finger labels per clip; inter: one per clip)."""
    out = {}
    for name, g, r in zip(("intra", "inter"), contact_labels(gen, thr), contact_labels(ref, thr)):
        out[f"{name}_precision"], out[f"{name}_recall"], out[f"{name}_f1"] = _prf(g, r)
        out[f"{name}_ref_rate"] = float(r.mean())  # how often the reference has the contact
    return out


# --- reconstruction -----------------------------------------------------------------------------
def speed_ratio(gen: np.ndarray, ref: np.ndarray) -> float:
    """How much the generated motion moves against its references: mean keypoint speed of ``gen``
    over that of ``ref`` (both (N, T, 2, 21, 3)); 1 = as lively as the data, below 1 = calmer. A
    contrastive evaluator and FID barely see a take that does the right thing at a third of the
    amplitude; this does."""
    g, r = hand_activity(gen).mean(), hand_activity(ref).mean()
    if not r > 0:
        raise ValueError("speed_ratio: the reference motions do not move")
    return float(g / r)


def hand_activity(joints: np.ndarray) -> np.ndarray:
    """Keypoints (N, T, 2, 21, 3) -> (N, 2) mean joint speed per hand (m per frame): how much each hand moves."""
    v = np.linalg.norm(np.diff(np.asarray(joints, np.float64), axis=1), axis=-1)  # (N, T-1, 2, 21)
    return v.mean(axis=(1, 3))


def handedness_accuracy(gen: np.ndarray, ref: np.ndarray, ratio: float = 2.0) -> dict[str, float]:
    """Which hand does the work. Over the reference clips where one hand moves at least ``ratio`` x
    more than the other (one-handed actions), the fraction of generated clips whose busier hand is
    that one. A contrastive evaluator barely notices a swapped or doubled hand; this does.
    -> {"acc": fraction, "n": number of one-handed reference clips} (acc NaN when there are none)."""
    a_ref, a_gen = hand_activity(ref), hand_activity(gen)
    r = a_ref[:, 0] / np.maximum(a_ref[:, 1], 1e-12)
    one = (r >= ratio) | (r <= 1.0 / ratio)
    if not one.any():
        return {"acc": float("nan"), "n": 0}
    busy_ref = (a_ref[one, 1] > a_ref[one, 0])
    busy_gen = (a_gen[one, 1] > a_gen[one, 0])
    return {"acc": float((busy_ref == busy_gen).mean()), "n": int(one.sum())}


def mpjpe(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean per-joint position error (metres), keypoints (..., 21, 3)."""
    return float(np.linalg.norm(pred - ref, axis=-1).mean())


def pa_mpjpe(pred: np.ndarray, ref: np.ndarray) -> float:
    """MPJPE after a per-hand-frame similarity (Procrustes) alignment."""
    P = pred.reshape(-1, pred.shape[-2], 3).astype(np.float64)
    R_ = ref.reshape(-1, ref.shape[-2], 3).astype(np.float64)
    mp, mr = P.mean(1, keepdims=True), R_.mean(1, keepdims=True)
    P0, R0 = P - mp, R_ - mr
    H = P0.transpose(0, 2, 1) @ R0
    U, S, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(Vt.transpose(0, 2, 1) @ U.transpose(0, 2, 1)))
    D = np.eye(3)[None].repeat(len(P), 0)
    D[:, 2, 2] = d
    Rot = Vt.transpose(0, 2, 1) @ D @ U.transpose(0, 2, 1)
    scale = (S * D.diagonal(axis1=1, axis2=2)).sum(1) / (P0 ** 2).sum((1, 2))
    aligned = scale[:, None, None] * P0 @ Rot.transpose(0, 2, 1) + mr
    return float(np.linalg.norm(aligned - R_, axis=-1).mean())


def accel_error(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean difference of keypoint accelerations (metres / frame^2), sequences (N, T, ..., 3)."""
    return float(np.linalg.norm(np.diff(pred, 2, axis=1) - np.diff(ref, 2, axis=1), axis=-1).mean())


def seam_ratio(joints: np.ndarray, seams: list[int]) -> float:
    """Max keypoint acceleration within 2 frames of the seams over the clip's median (1 = no spike)."""
    r = seam_spike_ratio(joints, seams)
    return 1.0 if np.isnan(r) else r


# --- constraints ----------------------------------------------------------------------------------
# Units: the representation's channels (6D rotation entries are unitless, transl is metres);
# positions are reported in millimetres; accelerations cancel in ratios.
def locked_channel_error(x: np.ndarray, target: np.ndarray, keep_mask: np.ndarray) -> float:
    """Max |x - target| over the kept channels, in representation units (0.0 when nothing is kept).
    x, target (T, 2, 99) float, keep_mask (T, 2, 99) bool (True = the constraint pins it)."""
    x, target, keep_mask = np.asarray(x), np.asarray(target), np.asarray(keep_mask, bool)
    if not x.shape == target.shape == keep_mask.shape:
        raise ValueError(f"x, target and keep_mask must have one shape; got {x.shape}, {target.shape}, "
                         f"{keep_mask.shape}")
    return float(np.abs(x - target)[keep_mask].max()) if keep_mask.any() else 0.0


def keyed_joint_error_mm(joints: np.ndarray, ref: np.ndarray, keyed: np.ndarray) -> dict[str, float]:
    """Keypoint error (mm) on the keyed (frame, hand) pairs: ``mean_mm`` over all their keypoints and
    ``max_mm``; NaN when nothing is keyed. joints, ref (T, 2, 21, 3) metres; keyed (T, 2) bool."""
    joints, ref, keyed = np.asarray(joints), np.asarray(ref), np.asarray(keyed, bool)
    if joints.shape != ref.shape or joints.shape[:2] != keyed.shape:
        raise ValueError(f"joints and ref must be (T, 2, 21, 3) and keyed (T, 2); got {joints.shape}, "
                         f"{ref.shape}, {keyed.shape}")
    if not keyed.any():
        return {"mean_mm": float("nan"), "max_mm": float("nan")}
    err = np.linalg.norm(joints[keyed] - ref[keyed], axis=-1) * 1000  # (K, 21)
    return {"mean_mm": float(err.mean()), "max_mm": float(err.max())}


def wrist_path_error_mm(wrists: np.ndarray, path: np.ndarray, pinned: np.ndarray) -> dict[str, dict[str, float]]:
    """Wrist distance to its path (mm) over the pinned frames, per hand that has any:
    ``{"left"|"right": {"mean_mm", "max_mm", "frames"}}``. wrists, path (T, 2, 3) metres; pinned (T, 2) bool."""
    wrists, path, pinned = np.asarray(wrists), np.asarray(path), np.asarray(pinned, bool)
    if wrists.shape != path.shape or wrists.shape[:2] != pinned.shape or wrists.shape[1:] != (2, 3):
        raise ValueError(f"wrists and path must be (T, 2, 3) and pinned (T, 2); got {wrists.shape}, "
                         f"{path.shape}, {pinned.shape}")
    out = {}
    for h, name in enumerate(("left", "right")):
        sel = pinned[:, h]
        if sel.any():
            d = np.linalg.norm(wrists[sel, h] - path[sel, h], axis=-1) * 1000
            out[name] = {"mean_mm": float(d.mean()), "max_mm": float(d.max()), "frames": int(sel.sum())}
    return out


def keep_boundaries(keep_mask: np.ndarray) -> list[int]:
    """Frames f where any channel's keep-mask differs from frame f-1 (a constraint starts or ends
    between f-1 and f). keep_mask (T, ...) bool."""
    k = np.asarray(keep_mask, bool)
    if k.ndim < 1 or len(k) < 2:
        return []
    changed = (k[1:] != k[:-1]).reshape(len(k) - 1, -1).any(1)
    return [int(f) + 1 for f in np.flatnonzero(changed)]


def _peak_acceleration(joints: np.ndarray) -> np.ndarray:
    """(T, ..., 3) -> (T-2,) the largest keypoint acceleration magnitude at frames 1..T-2."""
    return np.linalg.norm(np.diff(joints, 2, axis=0), axis=-1).reshape(len(joints) - 2, -1).max(1)


def _near(boundaries: list[int], radius: int, n: int) -> list[int]:
    """Indices into ``_peak_acceleration``'s output within ``radius`` frames of any boundary."""
    return sorted({f - 1 for s in boundaries for f in range(s - radius, s + radius + 1) if 0 <= f - 1 < n})


def seam_peak(joints: np.ndarray, boundaries: list[int], radius: int = 2) -> float:
    """Peak keypoint acceleration (m / frame^2) within ``radius`` frames of any boundary; NaN without
    boundaries. Divided by the reference's own peak at the same frames it asks "does the seam jerk
    more than real motion does there", free of the clip's median, which a calmer (or busier)
    generation elsewhere moves. joints (T, ..., 3) metres."""
    joints = np.asarray(joints, np.float64)
    if joints.ndim < 2 or joints.shape[-1] != 3 or len(joints) < 3:
        raise ValueError(f"joints must be (T >= 3, ..., 3); got {joints.shape}")
    acc = _peak_acceleration(joints)
    near = _near(boundaries, radius, len(acc))
    return float(acc[near].max()) if near else float("nan")


def seam_spike_ratio(joints: np.ndarray, boundaries: list[int], radius: int = 2, baseline: str = "frame") -> float:
    """Peak keypoint acceleration at the frames within ``radius`` of any boundary, over the clip's
    median (unitless; 1 = no spike, target <= 2). NaN without boundaries.

    ``baseline="frame"``: the median per-frame peak (the issue's literal "the clip's median"); a max
    over 2 radius + 1 frames against a one-frame median is above 1 even where nothing happens (the
    ground truth scores 5-9 at the eval's seams). ``"window"``: the median of the same
    (2 radius + 1)-frame peak taken at every frame of the clip, so a seam is compared with any other
    stretch of the same length: 1 = typical, 2 = a spike twice what the motion does elsewhere.
    joints (T, ..., 3) metres; acceleration at frame f is x[f+1] - 2 x[f] + x[f-1]."""
    joints = np.asarray(joints, np.float64)
    if joints.ndim < 2 or joints.shape[-1] != 3:
        raise ValueError(f"joints must be (T, ..., 3); got {joints.shape}")
    if len(joints) < 3:
        raise ValueError(f"seam_spike_ratio needs at least 3 frames; got {len(joints)}")
    if baseline not in ("frame", "window"):
        raise ValueError(f"baseline must be 'frame' or 'window'; got {baseline!r}")
    acc = _peak_acceleration(joints)
    near = _near(boundaries, radius, len(acc))
    if not near:
        return float("nan")
    if baseline == "frame":
        base = np.median(acc)
    else:
        base = np.median([acc[max(0, c - radius):c + radius + 1].max() for c in range(len(acc))])
    return float(acc[near].max() / max(base, 1e-9))


# --- physical plausibility ------------------------------------------------------------------------
def segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Closest distance between segments [p0, p1] and [q0, q1] (Ericson, Real-Time Collision
    Detection 5.1.9), broadcast over leading axes. (..., 3) each -> (...)."""
    p0, p1, q0, q1 = (np.asarray(v, np.float64) for v in (p0, p1, q0, q1))
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a, e = (d1 * d1).sum(-1), (d2 * d2).sum(-1)
    b, c, f = (d1 * d2).sum(-1), (d1 * r).sum(-1), (d2 * r).sum(-1)
    a_, e_ = np.maximum(a, eps), np.maximum(e, eps)
    denom = a * e - b * b
    # both proper segments: closest points of the lines, clamped to p, then t, then s again
    s = np.where(denom > 1e-10 * a * e, np.clip((b * f - c * e) / np.maximum(denom, eps * eps), 0, 1), 0.0)
    t = (b * s + f) / e_
    s = np.where(t < 0, np.clip(-c / a_, 0, 1), np.where(t > 1, np.clip((b - c) / a_, 0, 1), s))
    t = np.clip(t, 0, 1)
    # degenerate segments (points)
    s, t = np.where(e <= eps, np.clip(-c / a_, 0, 1), s), np.where(e <= eps, 0.0, t)
    s, t = np.where(a <= eps, 0.0, s), np.where(a <= eps, np.where(e <= eps, 0.0, np.clip(f / e_, 0, 1)), t)
    return np.linalg.norm((p0 + s[..., None] * d1) - (q0 + t[..., None] * d2), axis=-1)


def capsule_penetration(p0, p1, rp, q0, q1, rq) -> np.ndarray:
    """Penetration depth of two capsules (segment + radius), metres: max(0, rp + rq - distance).
    Points (..., 3), radii broadcastable to (...)."""
    return np.maximum(0.0, np.asarray(rp) + np.asarray(rq) - segment_distance(p0, p1, q0, q1))


def hand_penetration_depth(joints: np.ndarray, bones: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Deepest overlap between any left-hand capsule and any right-hand capsule per frame, metres.
    joints (T, 2, 21, 3) metres; bones (B, 2) keypoint indices (parent, child); radii (B,) or (2, B)
    metres (per hand). -> (T,)."""
    joints, bones = np.asarray(joints, np.float64), np.asarray(bones)
    if joints.ndim != 4 or joints.shape[1:] != (2, 21, 3):
        raise ValueError(f"joints must be (T, 2, 21, 3); got {joints.shape}")
    radii = np.broadcast_to(np.asarray(radii, np.float64), (2, len(bones)))
    a, b = joints[:, :, bones[:, 0]], joints[:, :, bones[:, 1]]  # (T, 2, B, 3)
    depth = capsule_penetration(a[:, 0, :, None], b[:, 0, :, None], radii[0][:, None],
                                a[:, 1, None], b[:, 1, None], radii[1][None])  # (T, B, B)
    return depth.reshape(len(joints), -1).max(1)


def penetration_summary(depth: np.ndarray, threshold_mm: float = 2.0) -> dict[str, float]:
    """Per-frame depths (metres) -> ``pen_mean_mm`` (mean over all frames, 0 where the hands are
    apart), ``pen_max_mm`` and ``pen_frac`` (share of frames deeper than ``threshold_mm``)."""
    d = np.asarray(depth, np.float64).ravel() * 1000
    if d.size == 0:
        raise ValueError("penetration_summary needs at least one frame")
    return {"pen_mean_mm": float(d.mean()), "pen_max_mm": float(d.max()), "pen_frac": float((d > threshold_mm).mean())}


def limit_violations(angles: np.ndarray, lo: np.ndarray, hi: np.ndarray, tol_deg: float = 0.0) -> dict[str, float]:
    """Anatomical joint-limit violations. angles (..., 15, 3) radians (twist, spread, bend per
    hand_pose joint, engine.hands.anatomy); lo, hi (15, 3) radians. An entry is one (frame, hand,
    joint); it violates when any of its three angles is more than ``tol_deg`` outside [lo, hi].
    -> ``limit_frac`` (share of entries violating) and ``limit_excess_deg`` (mean over the violating
    entries of their largest excess beyond the limit, degrees; 0 when none)."""
    ang = np.degrees(np.asarray(angles, np.float64))
    lo, hi = np.degrees(np.asarray(lo, np.float64)), np.degrees(np.asarray(hi, np.float64))
    if ang.shape[-2:] != (15, 3) or lo.shape != (15, 3) or hi.shape != (15, 3):
        raise ValueError(f"angles must be (..., 15, 3) and lo, hi (15, 3); got {ang.shape}, {lo.shape}, {hi.shape}")
    excess = np.maximum(np.maximum(lo - ang, ang - hi), 0).max(-1).reshape(-1)  # (entries,)
    bad = excess > tol_deg
    return {"limit_frac": float(bad.mean()) if bad.size else 0.0,
            "limit_excess_deg": float(excess[bad].mean()) if bad.any() else 0.0}
