"""Clips with real finger motion for the export/import tests."""
from __future__ import annotations

import numpy as np
import torch

from engine.motion.clip import Clip, Prompt


def motion_clip(frames: int = 60, fps: float = 30.0, seed: int = 0, betas: bool = True) -> Clip:
    """Both hands: plausible finger poses blended over time, wrists turning more than 360 degrees
    about one axis (exercises Euler continuity) and drifting; non-zero size/finger-length betas."""
    from engine.hands import default_hands_cpu
    from engine.hands.anatomy import frames_for, sample_plausible_hand_pose

    g = torch.Generator().manual_seed(seed)
    hands = default_hands_cpu()
    t = np.linspace(0.0, 1.0, frames)
    keys = np.linspace(0.0, 1.0, 4)
    hand_pose = np.zeros((frames, 2, 45), np.float32)
    for h, model in enumerate((hands.left, hands.right)):
        key_poses = sample_plausible_hand_pose(4, frames_for(model), generator=g, spread=0.9).numpy()  # (4, 45)
        for d in range(45):
            hand_pose[:, h, d] = np.interp(t, keys, key_poses[:, d])
    go = np.zeros((frames, 2, 3), np.float32)
    spin = 2.4 * np.pi * t  # more than a full turn: Euler angles must stay continuous
    axis = np.array([0.3, 0.9, 0.3]) / np.linalg.norm([0.3, 0.9, 0.3])
    go[:, 1] = (axis[None] * (0.4 + 0.8 * np.sin(2 * np.pi * t))[:, None])
    go[:, 0] = np.stack([0.5 * np.sin(spin), np.zeros_like(spin), np.zeros_like(spin)], -1)
    go[:, 0, 0] = np.mod(spin, 2 * np.pi) - np.pi  # about x, angle sweeping the full circle
    transl = np.zeros((frames, 2, 3), np.float32)
    transl[:, 0] = np.stack([-0.25 + 0.05 * np.sin(3 * t), 0.1 * t, -0.3 + 0.02 * t], -1)
    transl[:, 1] = np.stack([0.15 + 0.03 * t, -0.05 * np.cos(4 * t), -0.35 + 0.1 * t], -1)
    b = np.zeros((2, 10), np.float32)
    if betas:
        b[0, :2] = (1.0, -1.5)
        b[1, :2] = (-2.0, 2.0)
    return Clip(transl, go, hand_pose, b, fps=fps, prompt=Prompt(text="test motion", right="turns"))
