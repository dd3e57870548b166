"""The one interface every hand backend implements, and the two-hand model built on it.

``vertices, joints = hand(betas, global_orient, hand_pose, transl)`` with
betas (B, 10), global_orient (B, 3), hand_pose (B, 45), transl (B, 3)
-> vertices (B, V, 3), joints (B, 21, 3) (MANO's 16 + tips thumb..pinky).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.hands.skeleton import HANDS, NUM_JOINTS, PARENTS, hand_index


def check_pose_shapes(betas, global_orient, hand_pose, transl) -> int:
    """Validate one hand's batched parameters; returns B."""
    B = global_orient.shape[0] if global_orient.dim() == 2 else -1
    expected = {"betas": (B, 10), "global_orient": (B, 3), "hand_pose": (B, 45), "transl": (B, 3)}
    for name, t in zip(expected, (betas, global_orient, hand_pose, transl)):
        if tuple(t.shape) != expected[name]:
            want = "(B, " + ", ".join(str(s) for s in expected[name][1:]) + ")"
            raise ValueError(f"{name} must have shape {want} with one B for all; got {tuple(t.shape)}")
    return B


class HandModel(nn.Module):
    """One hand (left or right). Subclasses implement ``forward``; buffers hold the assets."""

    side: str
    backend: str
    faces: np.ndarray  # (F, 3) int32, outward CCW winding for this side
    rest_joints_np: np.ndarray  # (16, 3) betas = 0

    @property
    def num_vertices(self) -> int:
        raise NotImplementedError

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """betas (B, 10) -> rest joints (B, 16, 3) for that shape."""
        raise NotImplementedError

    def forward(self, betas, global_orient, hand_pose, transl):  # pragma: no cover - interface
        raise NotImplementedError

    def keypoints(self, betas, global_orient, hand_pose, transl) -> torch.Tensor:
        """Only the (B, 21, 3) keypoints; backends override this when it can skip skinning."""
        return self.forward(betas, global_orient, hand_pose, transl)[1]


class TwoHands(nn.Module):
    """Both hands in one call: index 0 = left, 1 = right."""

    def __init__(self, left: HandModel, right: HandModel):
        super().__init__()
        if left.side != "left" or right.side != "right":
            raise ValueError(f"TwoHands needs (left, right); got ({left.side}, {right.side})")
        self.left, self.right = left, right
        self.backend = right.backend
        self.parents = PARENTS
        self.num_joints = NUM_JOINTS

    def hand(self, hand: str | int) -> HandModel:
        return (self.left, self.right)[hand_index(hand)]

    @property
    def device(self) -> torch.device:
        return next(iter(self.buffers())).device

    def forward(self, betas: torch.Tensor, global_orient: torch.Tensor, hand_pose: torch.Tensor,
                transl: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """betas (2, 10) or (B, 2, 10); global_orient (B, 2, 3); hand_pose (B, 2, 45); transl (B, 2, 3).

        Returns ([left vertices (B, Vl, 3), right vertices (B, Vr, 3)], joints (B, 2, 21, 3)).
        Vertices are a list because the backends may differ in vertex count.
        """
        if global_orient.dim() != 3 or global_orient.shape[1:] != (2, 3):
            raise ValueError(f"global_orient must have shape (B, 2, 3); got {tuple(global_orient.shape)}")
        B = global_orient.shape[0]
        if betas.dim() == 2:
            betas = betas[None].expand(B, 2, betas.shape[-1])
        verts, joints = [], []
        for h, model in enumerate((self.left, self.right)):
            v, j = model(betas[:, h], global_orient[:, h], hand_pose[:, h], transl[:, h])
            verts.append(v)
            joints.append(j)
        return verts, torch.stack(joints, 1)

    def joints(self, betas, global_orient, hand_pose, transl) -> torch.Tensor:
        """Keypoints only, (B, 2, 21, 3); cheaper than ``forward`` (no full skinning)."""
        B = global_orient.shape[0]
        if betas.dim() == 2:
            betas = betas[None].expand(B, 2, betas.shape[-1])
        return torch.stack([m.keypoints(betas[:, h], global_orient[:, h], hand_pose[:, h], transl[:, h])
                            for h, m in enumerate((self.left, self.right))], 1)

    def info(self) -> dict:
        return {"backend": self.backend, "hands": list(HANDS),
                "vertices": [self.left.num_vertices, self.right.num_vertices]}
