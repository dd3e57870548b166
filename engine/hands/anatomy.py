"""Anatomical joint frames and limits (HANDS.md), and a sampler of plausible hand poses.

Each hand_pose joint gets a frame with columns (twist, spread, bend): twist along the bone,
bend = twist x palm normal so a positive bend curls toward the palm on either hand.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.hands.skeleton import FINGER_JOINTS, PARENTS

# Degrees (twist, spread, bend) lo/hi for hand_pose joints 1..15; human range where HANDS.md
# gives a loss tolerance (MCP spread +-20, MCP bend -15..90), DIP/PIP hinge-like.
_FINGER_LIMITS = [((-5, -20, -15), (5, 20, 90)), ((-5, -5, -5), (5, 5, 100)), ((-5, -5, -5), (5, 5, 90))]
_THUMB_LIMITS = [((-45, -15, -10), (45, 45, 45)), ((-5, -10, -10), (5, 10, 90)), ((-5, -5, -10), (5, 5, 90))]


def limits_radians() -> tuple[torch.Tensor, torch.Tensor]:
    """(15, 3) lower and upper anatomical limits (twist, spread, bend), radians."""
    lo, hi = np.zeros((15, 3)), np.zeros((15, 3))
    for finger, (a, b, c, _) in FINGER_JOINTS.items():
        table = _THUMB_LIMITS if finger == "thumb" else _FINGER_LIMITS
        for k, j in enumerate((a, b, c)):
            lo[j - 1], hi[j - 1] = table[k]
    return torch.tensor(np.radians(lo), dtype=torch.float32), torch.tensor(np.radians(hi), dtype=torch.float32)


def anatomical_frames(rest_joints: torch.Tensor, tips_rest: torch.Tensor, side: str) -> torch.Tensor:
    """Per hand_pose joint an orthonormal frame, columns (twist, spread, bend). (16,3), (5,3) -> (15, 3, 3).

    twist = bone direction; bend = twist x palm normal (thumb: the normal of its joints' plane),
    so a positive bend curls toward the palm on both sides; spread completes the frame. The left
    hand's frames are the mirror image, so mirrored poses have equal anatomical angles.
    """
    child = {p: j for j, p in enumerate(PARENTS) if p > 0}
    tips = {j3: t for t, (_, _, j3, _) in enumerate([FINGER_JOINTS[f] for f in ("thumb", "index", "middle", "ring", "pinky")])}
    palm = torch.cross(rest_joints[4] - rest_joints[0], rest_joints[10] - rest_joints[0], dim=-1)
    palm = palm / palm.norm()
    # palm normal points out of the palm (-y for MANO's right hand); mirrored x keeps y on the left
    if palm[1] > 0:
        palm = -palm
    # the thumb flexes in the plane of its own joints, not toward the palm normal
    thumb_bend = torch.cross(rest_joints[14] - rest_joints[13], rest_joints[15] - rest_joints[14], dim=-1)
    frames = []
    for j in range(1, 16):
        end = rest_joints[child[j]] if j in child else tips_rest[tips[j]]
        t = end - rest_joints[j]
        t = t / t.norm()
        b = torch.cross(t, palm, dim=-1) if j < 13 else thumb_bend - (thumb_bend @ t) * t
        b = b / b.norm()
        s = torch.cross(b, t, dim=-1)
        frames.append(torch.stack([t, s, b], -1))
    frames = torch.stack(frames)
    if side == "left":
        # Mirroring maps a right axis-angle a to -M a (M = diag(-1, 1, 1)); the bend axis above
        # already follows, twist and spread come out as +M: flip them so a mirrored pose has the
        # same (twist, spread, bend) on both hands and one limit table serves both.
        frames = frames * frames.new_tensor([-1.0, -1.0, 1.0])
    return frames


def anatomical_angles(hand_pose: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """hand_pose (..., 45) -> (..., 15, 3) axis-angle expressed in each joint's (twist, spread, bend) frame."""
    aa = hand_pose.reshape(*hand_pose.shape[:-1], 15, 3)
    return (frames.transpose(-1, -2) @ aa[..., None])[..., 0]


def from_anatomical(angles: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """(..., 15, 3) (twist, spread, bend) -> hand_pose (..., 45)."""
    return (frames @ angles[..., None])[..., 0].reshape(*angles.shape[:-2], 45)



def sample_plausible_hand_pose(n: int, frames: torch.Tensor, generator: torch.Generator | None = None,
                               spread: float = 0.8) -> torch.Tensor:
    """n random hand poses inside the anatomical limits (no twist on hinge joints). frames (15,3,3) -> (n, 45).

    ``spread`` in (0, 1] is the share of each joint's range that is used, centred in the range.
    """
    lo, hi = limits_radians()
    mid, half = (lo + hi) / 2, (hi - lo) / 2 * spread
    u = torch.rand(n, 15, 3, generator=generator) * 2 - 1
    ang = mid + u * half  # (n, 15, 3)
    return from_anatomical(ang, frames)


def rest_keypoints(model, betas: torch.Tensor | None = None) -> torch.Tensor:
    """A hand model's (21, 3) keypoints at zero pose and zero translation."""
    dev = model.J_rest.device if hasattr(model, "J_rest") else next(iter(model.buffers())).device
    betas = torch.zeros(1, 10, device=dev) if betas is None else betas.reshape(1, 10).to(dev)
    zero = torch.zeros(1, 3, device=dev)
    with torch.no_grad():
        return model.keypoints(betas, zero, torch.zeros(1, 45, device=dev), zero)[0]


def frames_for(model, betas: torch.Tensor | None = None) -> torch.Tensor:
    """Anatomical frames (15, 3, 3) of one hand model (either side, any backend)."""
    kp = rest_keypoints(model, betas)
    return anatomical_frames(kp[:16], kp[16:], model.side)
