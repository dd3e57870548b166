"""Where the two hands touch, per frame, from keypoints. No Qt.

A small stand-in for the HandX contact features (``engine.motion.features`` may replace it):
a frame is in contact when any fingertip of one hand is within ``tip_radius`` of any keypoint of
the other hand, or the two palm centres are within ``palm_radius``.
"""
from __future__ import annotations

import numpy as np

TIP_INDICES = (16, 17, 18, 19, 20)  # thumb, index, middle, ring, pinky tips
PALM_INDICES = (0, 1, 4, 7, 10)  # wrist + the four finger roots (index1, middle1, pinky1, ring1)
TIP_RADIUS = 0.02  # metres
PALM_RADIUS = 0.025


def contact_frames(joints: np.ndarray, tip_radius: float = TIP_RADIUS,
                   palm_radius: float = PALM_RADIUS) -> np.ndarray:
    """joints (T, 2, 21, 3) metres -> (T,) bool: the hands touch at that frame."""
    j = np.asarray(joints, dtype=np.float32)
    if j.ndim != 4 or j.shape[1:] != (2, 21, 3):
        raise ValueError(f"joints must have shape (T, 2, 21, 3); got {j.shape}")
    tips = j[:, :, TIP_INDICES]  # (T, 2, 5, 3)
    # tips of hand h against every keypoint of the other hand: (T, 5, 21) per direction
    d_lr = np.linalg.norm(tips[:, 0, :, None] - j[:, 1, None], axis=-1)
    d_rl = np.linalg.norm(tips[:, 1, :, None] - j[:, 0, None], axis=-1)
    tip_touch = (d_lr.min(axis=(1, 2)) < tip_radius) | (d_rl.min(axis=(1, 2)) < tip_radius)
    palms = j[:, :, PALM_INDICES].mean(axis=2)  # (T, 2, 3)
    palm_touch = np.linalg.norm(palms[:, 0] - palms[:, 1], axis=-1) < palm_radius
    return tip_touch | palm_touch
