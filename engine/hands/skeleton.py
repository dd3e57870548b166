"""The hand skeleton contract: MANO's 16 joints + 5 fingertips = 21 keypoints.

Index 0 = left hand, 1 = right hand everywhere. Rest joints are MANO's right hand
(betas = 0, metres, MANO frame: fingers along -x, thumb toward +z, palm faces -y).
"""
from __future__ import annotations

import numpy as np

HANDS = ("left", "right")
JOINT_NAMES = (
    "wrist",
    "index1", "index2", "index3",
    "middle1", "middle2", "middle3",
    "pinky1", "pinky2", "pinky3",
    "ring1", "ring2", "ring3",
    "thumb1", "thumb2", "thumb3",
)
PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14)
TIP_NAMES = ("thumb_tip", "index_tip", "middle_tip", "ring_tip", "pinky_tip")
# Parent joint (the distal joint "3") of each tip, in TIP_NAMES order.
TIP_PARENTS = (15, 3, 6, 12, 9)
KEYPOINT_NAMES = JOINT_NAMES + TIP_NAMES
KEYPOINT_PARENTS = PARENTS + TIP_PARENTS
NUM_JOINTS = 16
NUM_KEYPOINTS = 21
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
# Joint indices (MCP/CMC, PIP/MCP, DIP/IP) of each finger, and its tip keypoint.
FINGER_JOINTS = {
    "thumb": (13, 14, 15, 16),
    "index": (1, 2, 3, 17),
    "middle": (4, 5, 6, 18),
    "ring": (10, 11, 12, 19),
    "pinky": (7, 8, 9, 20),
}
# Our 21 keypoints -> OpenPose / MediaPipe order (wrist, thumb CMC..tip, index MCP..tip, ...).
OPENPOSE_FROM_OURS = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)

MANO_RIGHT_REST_JOINTS = np.array([
    [0.09566994, 0.00638343, 0.0061863],
    [0.00757268, 0.00118307, 0.0268723],
    [-0.02510622, 0.00519243, 0.02908936],
    [-0.04726213, 0.003894, 0.02897524],
    [0.00100949, 0.00490447, 0.00282876],
    [-0.03017318, 0.00676579, -0.00276574],
    [-0.05307782, 0.00551369, -0.00671026],
    [0.02688296, -0.0035569, -0.03702303],
    [0.00986855, -0.00349507, -0.04952181],
    [-0.00599835, -0.00418623, -0.05985371],
    [0.01393437, 0.00242601, -0.02048689],
    [-0.0143799, 0.00449301, -0.02558542],
    [-0.03790042, 0.0028049, -0.03321924],
    [0.07158022, -0.00913891, 0.03199915],
    [0.05194698, -0.00824762, 0.0556987],
    [0.02972924, -0.01368059, 0.07022282],
], dtype=np.float32)
MANO_RIGHT_REST_JOINTS.setflags(write=False)

# Distal phalanx length (joint 3 -> tip), metres, TIP_NAMES order.
DISTAL_LENGTHS = np.array([0.0305, 0.0228, 0.0259, 0.0224, 0.0180], dtype=np.float32)


def mirror_points(xyz: np.ndarray) -> np.ndarray:
    """Right <-> left: negate x. (..., 3) -> (..., 3)."""
    return xyz * np.array([-1.0, 1.0, 1.0], dtype=xyz.dtype)


def hand_index(hand: str | int) -> int:
    """'left'/'right'/0/1 -> 0/1; anything else is an error naming what was expected."""
    if hand in (0, 1):
        return int(hand)
    if isinstance(hand, str) and hand.lower() in HANDS:
        return HANDS.index(hand.lower())
    raise ValueError(f"hand must be 'left', 'right', 0 or 1; got {hand!r}")
