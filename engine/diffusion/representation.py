"""Motion representation for the diffusion model, in MANO parameter space.

Per frame per hand 99 channels: 6D rotations of global_orient and the 15 hand_pose joints
(16 x 6 = 96, joint j at channels 6j..6j+5) then transl (3). A clip is (T, 2, 99); the network
sees it flattened to (T, 198) and normalised by per-channel mean/std stored in the checkpoint.
Betas are carried beside the tensor. Every constraint maps to channels through ``CHANNELS``.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.hands.skeleton import HANDS, NUM_JOINTS, hand_index
from engine.motion.clip import Clip, Prompt
from engine.motion.rotations import axis_angle_to_rot6d, matrix_to_axis_angle, rot6d_to_axis_angle, rot6d_to_matrix

ROT_DIM = 6
NUM_ROT_CHANNELS = NUM_JOINTS * ROT_DIM  # 96
HAND_CHANNELS = NUM_ROT_CHANNELS + 3  # 99
FRAME_CHANNELS = 2 * HAND_CHANNELS  # 198


def joint_channels(joint: int) -> slice:
    """Rotation channels of one joint (0 = global_orient, 1..15 = hand_pose joints)."""
    if not 0 <= joint < NUM_JOINTS:
        raise ValueError(f"joint must be 0..{NUM_JOINTS - 1}; got {joint}")
    return slice(ROT_DIM * joint, ROT_DIM * (joint + 1))


CHANNELS = {
    "global_orient": joint_channels(0),
    "hand_pose": slice(ROT_DIM, NUM_ROT_CHANNELS),
    "rotations": slice(0, NUM_ROT_CHANNELS),
    "transl": slice(NUM_ROT_CHANNELS, HAND_CHANNELS),
    "all": slice(0, HAND_CHANNELS),
}


def channel_mask(hand: str | int | None = None, part: str = "all", joint: int | None = None) -> np.ndarray:
    """(2, 99) bool: the channels of ``part`` (or one ``joint``'s rotation) for one hand or both."""
    m = np.zeros((2, HAND_CHANNELS), bool)
    hands = range(2) if hand is None else [hand_index(hand)]
    if joint is not None:
        sl = joint_channels(joint)
    elif part in CHANNELS:
        sl = CHANNELS[part]
    else:
        raise ValueError(f"part must be one of {sorted(CHANNELS)}; got {part!r}")
    for h in hands:
        m[h, sl] = True
    return m


def params_to_tensor(global_orient: torch.Tensor, hand_pose: torch.Tensor, transl: torch.Tensor) -> torch.Tensor:
    """global_orient (..., 2, 3), hand_pose (..., 2, 45), transl (..., 2, 3) -> (..., 2, 99)."""
    aa = torch.cat([global_orient[..., None, :], hand_pose.reshape(*hand_pose.shape[:-1], 15, 3)], -2)
    rot = axis_angle_to_rot6d(aa.double()).to(transl.dtype)  # (..., 2, 16, 6)
    return torch.cat([rot.flatten(-2), transl], -1)


def tensor_to_params(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., 2, 99) -> global_orient (..., 2, 3), hand_pose (..., 2, 45), transl (..., 2, 3).

    Rotations are converted in float64 so a round trip stays within 1e-6."""
    rot = x[..., :NUM_ROT_CHANNELS].reshape(*x.shape[:-1], NUM_JOINTS, ROT_DIM)
    aa = rot6d_to_axis_angle(rot.double()).to(x.dtype)  # (..., 2, 16, 3)
    return aa[..., 0, :], aa[..., 1:, :].flatten(-2), x[..., NUM_ROT_CHANNELS:]


def clip_to_tensor(clip: Clip) -> torch.Tensor:
    """Clip -> (T, 2, 99) float32."""
    return params_to_tensor(torch.from_numpy(clip.global_orient), torch.from_numpy(clip.hand_pose),
                            torch.from_numpy(clip.transl))


def tensor_to_clip(x: torch.Tensor, betas: np.ndarray | None = None, fps: float = 30.0,
                   prompt: Prompt | str = Prompt()) -> Clip:
    """(T, 2, 99) -> Clip (betas carried separately; zeros when not given)."""
    if x.dim() != 3 or x.shape[1:] != (2, HAND_CHANNELS):
        raise ValueError(f"motion tensor must have shape (T, 2, {HAND_CHANNELS}); got {tuple(x.shape)}")
    go, hp, tr = tensor_to_params(x.detach().cpu().float())
    b = np.zeros((2, 10), np.float32) if betas is None else betas
    return Clip(tr.numpy(), go.numpy(), hp.numpy(), b, fps=fps, prompt=prompt)


def compute_stats(x: torch.Tensor, min_std: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """x (N, T, 2, 99) -> mean, std (2, 99); std floored so near-constant channels do not explode."""
    flat = x.reshape(-1, 2, HAND_CHANNELS).double()
    return flat.mean(0).float(), flat.std(0).clamp_min(min_std).float()


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean) / std


def denormalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return x * std + mean


__all__ = ["HANDS", "HAND_CHANNELS", "FRAME_CHANNELS", "CHANNELS", "joint_channels", "channel_mask", "keypoints_from_rep",
           "params_to_tensor", "tensor_to_params", "clip_to_tensor", "tensor_to_clip", "compute_stats",
           "normalize", "denormalize", "mirror_rep", "mirror_keypoints"]


# Mirroring through the x = 0 plane (DESIGN.md: the left hand is the right one mirrored in x) maps
# each rotation R to M R M (M = diag(-1, 1, 1)); on the 6-D columns (c0, c1) that is a sign flip.
_MIRROR_6D = (1.0, -1.0, -1.0, -1.0, 1.0, 1.0)


def mirror_rep(x: torch.Tensor) -> torch.Tensor:
    """Raw representation (..., 2, 99) -> the mirror-image motion: hands swapped, every rotation
    mirrored, translation x negated. FK of the result is the mirrored keypoints of the input with
    the hands swapped (exact for the default hand, whose left is the right mirrored)."""
    sign = x.new_tensor(_MIRROR_6D * NUM_JOINTS + (-1.0, 1.0, 1.0))
    return x.flip(-2) * sign


def mirror_keypoints(j: torch.Tensor) -> torch.Tensor:
    """Keypoints (..., 2, 21, 3) -> mirror image: hands swapped, x negated."""
    return j.flip(-3) * j.new_tensor([-1.0, 1.0, 1.0])


def keypoints_from_rep(hands, x: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Raw representation (B, T, 2, 99) + betas (B, 2, 10) -> keypoints (B, T, 2, 21, 3) by FK
    (the kinematic losses of the diffusion training and of CLUTCH's refinement)."""
    B, T = x.shape[:2]
    R = rot6d_to_matrix(x[..., :NUM_ROT_CHANNELS].reshape(B, T, 2, 16, 6))
    aa = matrix_to_axis_angle(R).reshape(B * T, 2, 16, 3)
    tr = x[..., NUM_ROT_CHANNELS:].reshape(B * T, 2, 3)
    be = betas[:, None].expand(B, T, 2, 10).reshape(B * T, 2, 10)
    return hands.joints(be, aa[:, :, 0], aa[:, :, 1:].reshape(B * T, 2, 45), tr).reshape(B, T, 2, 21, 3)
