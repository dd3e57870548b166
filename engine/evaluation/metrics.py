"""The papers' metrics as pure numpy functions (HandX Table 2, T2M conventions).

Embedding metrics take L2-normalised embeddings from the shared evaluator. Kinematic metrics
take keypoints (N, T, 2, 21, 3) in metres.
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
    motion is among each text's k nearest (Euclidean) motions, for k = 1..top."""
    _check_emb(text, motion)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(text))
    hits = np.zeros(top)
    n = 0
    for s in range(0, len(order) - pool + 1, pool):
        idx = order[s:s + pool]
        d = np.linalg.norm(text[idx][:, None] - motion[idx][None], axis=-1)  # (pool, pool)
        rank = (d < d.diagonal()[:, None]).sum(1)  # motions closer than the true one
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


def contact_prf(gen: np.ndarray, ref: np.ndarray, thr: float = 0.02) -> dict[str, float]:
    """Precision / recall / F1 of fingertip contacts of generated vs reference motion, intra- and
    inter-hand (frame-level, pooled over the set)."""
    out = {}
    for name, g, r in zip(("intra", "inter"), contact_masks(gen, thr), contact_masks(ref, thr)):
        tp, fp, fn = (g & r).sum(), (g & ~r).sum(), (~g & r).sum()
        p = tp / (tp + fp) if tp + fp else 1.0 if fn == 0 else 0.0
        rc = tp / (tp + fn) if tp + fn else 1.0 if fp == 0 else 0.0
        out[f"{name}_precision"], out[f"{name}_recall"] = float(p), float(rc)
        out[f"{name}_f1"] = float(2 * p * rc / (p + rc)) if p + rc else 0.0
    return out


# --- reconstruction -----------------------------------------------------------------------------
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
    acc = np.linalg.norm(np.diff(joints, 2, axis=0), axis=-1).max(axis=tuple(range(1, joints.ndim - 1)))  # (T-2,)
    near = [f for s in seams for f in range(s - 3, s + 2) if 0 <= f < len(acc)]
    return float(acc[near].max() / max(np.median(acc), 1e-9)) if near else 1.0
