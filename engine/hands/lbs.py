"""Forward kinematics and linear blend skinning over a kinematic tree. Pure torch functions.

MANO semantics: every joint's rotation is expressed in the world-aligned rest frame; joint 0's
rotation (``global_orient``) turns the hand about the rest wrist J0, then ``transl`` is added.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from engine.motion.rotations import axis_angle_to_matrix


@lru_cache(maxsize=8)
def tree_levels(parents: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Joints grouped by depth (root first), so FK runs one batched matmul per level."""
    depth = []
    for j, p in enumerate(parents):
        if p >= j:
            raise ValueError(f"parents must list each parent before its child; joint {j} has parent {p}")
        depth.append(0 if p < 0 else depth[p] + 1)
    return tuple(tuple(j for j in range(len(parents)) if depth[j] == d) for d in range(max(depth) + 1))


def rigid_transforms(rot_mats: torch.Tensor, rest_joints: torch.Tensor,
                     parents: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose a skeleton.

    rot_mats (B, J, 3, 3) local rotations; rest_joints (B, J, 3), (1, J, 3) or (J, 3).
    Returns posed joints (B, J, 3) (before any translation) and skinning transforms
    A (B, J, 4, 4) that map rest-space points to posed space for each joint.
    """
    B, J = rot_mats.shape[:2]
    rest = rest_joints.expand(B, J, 3)
    parent_idx = torch.tensor([max(p, 0) for p in parents], device=rest.device)
    rel = rest - torch.where(torch.tensor(parents, device=rest.device)[None, :, None] >= 0,
                             rest[:, parent_idx], torch.zeros_like(rest))  # (B, J, 3)
    world_R = [None] * J
    world_t = [None] * J
    for level in tree_levels(tuple(parents)):
        idx = list(level)
        R = rot_mats[:, idx]  # (B, n, 3, 3)
        if parents[idx[0]] < 0:
            for k, j in enumerate(idx):
                world_R[j] = R[:, k]
                world_t[j] = rest[:, j]
            continue
        pR = torch.stack([world_R[parents[j]] for j in idx], 1)  # (B, n, 3, 3)
        pt = torch.stack([world_t[parents[j]] for j in idx], 1)  # (B, n, 3)
        wR = pR @ R
        wt = pt + (pR @ rel[:, idx, :, None])[..., 0]
        for k, j in enumerate(idx):
            world_R[j] = wR[:, k]
            world_t[j] = wt[:, k]
    Rw = torch.stack(world_R, 1)  # (B, J, 3, 3)
    posed = torch.stack(world_t, 1)  # (B, J, 3)
    t = posed - (Rw @ rest[..., None])[..., 0]  # so A @ rest_j = posed_j
    A = torch.zeros(B, J, 4, 4, dtype=Rw.dtype, device=Rw.device)
    A[..., :3, :3] = Rw
    A[..., :3, 3] = t
    A[..., 3, 3] = 1
    return posed, A


def forward_kinematics(global_orient: torch.Tensor, hand_pose: torch.Tensor, transl: torch.Tensor,
                       rest_joints: torch.Tensor, parents: tuple[int, ...]
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Axis-angle pose -> posed joints (B, J, 3) and skinning transforms (B, J, 4, 4).

    global_orient (B, 3), hand_pose (B, 3*(J-1)), transl (B, 3), rest_joints (B|1, J, 3) or (J, 3).
    The transforms include ``transl``.
    """
    B = global_orient.shape[0]
    aa = torch.cat([global_orient[:, None], hand_pose.reshape(B, -1, 3)], 1)  # (B, J, 3)
    posed, A = rigid_transforms(axis_angle_to_matrix(aa), rest_joints, parents)
    A = A.clone()
    A[..., :3, 3] = A[..., :3, 3] + transl[:, None]
    return posed + transl[:, None], A


def skin(vertices: torch.Tensor, weights: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning. vertices (B|1, V, 3) or (V, 3); weights (V, J); A (B, J, 4, 4) -> (B, V, 3)."""
    B = A.shape[0]
    T = torch.einsum("vj,bjxy->bvxy", weights, A[..., :3, :])  # (B, V, 3, 4)
    v = vertices.expand(B, *vertices.shape[-2:])
    return (T[..., :3] @ v[..., None])[..., 0] + T[..., 3]
