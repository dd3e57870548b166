"""Physical plausibility of two-hand clips: the hand model's side of the metrics in metrics.py.

Interpenetration uses one capsule per bone (the 20 keypoint bones, parent -> child, tips included)
with a radius measured once on the embedded default hand (resources/hands): every rest-pose
vertex goes to its nearest bone segment, and the radius is the median distance of the vertices
that project inside the segment (t in 0.1..0.9, so the rounded ends do not bias it). Measured:
finger bones 4.8-9.3 mm (distal to proximal), palm bones (wrist -> knuckle) 11-14 mm, thumb
6.8-17.7 mm (the thenar eminence is the thickest); the palm is 30 mm thick, so its capsules are
about its half thickness. Radii scale with the default hand's size control (1 + 0.05 betas[0],
clamped 0.7..1.3), like its mesh.

Joint limits are the anatomical ones the IK already uses (engine.hands.anatomy.limits_radians:
HANDS.md's manotorch prior widened to the human range, MCP spread +-20 deg, MCP bend -15..90 deg),
applied to the (twist, spread, bend) angles of each hand_pose joint in its anatomical frame.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from engine.evaluation import metrics as M
from engine.hands.skeleton import KEYPOINT_PARENTS

BONES = np.array([(KEYPOINT_PARENTS[c], c) for c in range(1, len(KEYPOINT_PARENTS))], np.int64)  # (20, 2)
PENETRATION_MM = 2.0  # a frame counts as interpenetrating beyond this depth


@lru_cache(maxsize=1)
def bone_radii() -> np.ndarray:
    """(20,) capsule radius per bone of ``BONES``, metres, from the default right hand at rest
    (the left hand is its mirror image, so the same radii serve both)."""
    from engine.hands import default_hands_cpu
    from engine.hands.anatomy import rest_keypoints
    hand = default_hands_cpu().right
    verts = hand.v_template.detach().cpu().numpy().astype(np.float64)  # (V, 3)
    kp = rest_keypoints(hand).cpu().numpy().astype(np.float64)  # (21, 3)
    a, b = kp[BONES[:, 0]], kp[BONES[:, 1]]  # (20, 3)
    ab = b - a
    t = np.einsum("vbk,bk->vb", verts[:, None] - a[None], ab) / (ab * ab).sum(-1)  # (V, 20)
    d = M.segment_distance(verts[:, None], verts[:, None], a[None], b[None])  # (V, 20)
    nearest = d.argmin(1)
    radii = np.empty(len(BONES))
    for k in range(len(BONES)):
        sel = (nearest == k) & (t[:, k] > 0.1) & (t[:, k] < 0.9)
        if sel.sum() < 3:
            raise ValueError(f"default hand: bone {tuple(BONES[k])} has {int(sel.sum())} vertices beside it; "
                             "expected a mesh around every bone")
        radii[k] = np.median(d[sel, k])
    radii.setflags(write=False)
    return radii


def hand_radii(betas: np.ndarray) -> np.ndarray:
    """(2, 10) betas -> (2, 20) capsule radii in metres for the default hand of that size."""
    betas = np.asarray(betas, np.float64)
    if betas.shape != (2, 10):
        raise ValueError(f"betas must be (2, 10); got {betas.shape}")
    scale = np.clip(1 + 0.05 * betas[:, 0], 0.7, 1.3)
    return scale[:, None] * bone_radii()[None]


def penetration_depth(joints: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """(T, 2, 21, 3) keypoints (metres) + (2, 10) betas -> (T,) deepest left/right capsule overlap, metres."""
    return M.hand_penetration_depth(joints, BONES, hand_radii(betas))


@torch.no_grad()
def joint_angles(hand_pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """hand_pose (T, 2, 45) axis-angle + betas (2, 10) -> (T, 2, 15, 3) radians (twist, spread, bend)
    of each hand_pose joint in its anatomical frame (engine.hands.anatomy), default hand."""
    from engine.hands import default_hands_cpu
    from engine.hands.anatomy import anatomical_angles, frames_for
    hp = np.asarray(hand_pose, np.float32)
    if hp.ndim != 3 or hp.shape[1:] != (2, 45):
        raise ValueError(f"hand_pose must be (T, 2, 45); got {hp.shape}")
    hands = default_hands_cpu()
    out = []
    for h in range(2):
        frames = frames_for(hands.hand(h), torch.as_tensor(np.asarray(betas, np.float32)[h]))  # (15, 3, 3)
        out.append(anatomical_angles(torch.from_numpy(hp[:, h]), frames).numpy())
    return np.stack(out, 1)


def limit_violations(hand_pose: np.ndarray, betas: np.ndarray, tol_deg: float = 0.0) -> dict[str, float]:
    """``limit_frac`` and ``limit_excess_deg`` (metrics.limit_violations) of one clip's hand_pose (T, 2, 45)."""
    from engine.hands.anatomy import limits_radians
    lo, hi = limits_radians()
    return M.limit_violations(joint_angles(hand_pose, betas), lo.numpy(), hi.numpy(), tol_deg)


def physical_metrics(clips: list) -> dict[str, float]:
    """Pooled over all frames of the clips: ``pen_mean_mm``, ``pen_max_mm``, ``pen_frac`` (frames
    deeper than 2 mm), ``limit_frac``, ``limit_excess_deg`` (see metrics.py for the definitions)."""
    if not clips:
        raise ValueError("physical_metrics needs at least one clip")
    depth = np.concatenate([penetration_depth(c.joints, c.betas) for c in clips])
    angles = np.concatenate([joint_angles(c.hand_pose, c.betas).reshape(-1, 15, 3) for c in clips])
    from engine.hands.anatomy import limits_radians
    lo, hi = limits_radians()
    return {**M.penetration_summary(depth, PENETRATION_MM), **M.limit_violations(angles, lo.numpy(), hi.numpy())}
