"""Hand pose presets as pure functions returning MANO ``hand_pose`` arrays (2, 45) = (left, right).

Conventions (MANO rest frame of the RIGHT hand: fingers along -x, palm faces -y, thumb toward +z):
each of the 15 joints (index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3) gets an axis-angle.
Finger flexion toward the palm is a positive rotation about +z; spreading is a rotation about
the palm normal (y) of the MCP joints. The LEFT hand is the mirror: negate y and z of each
joint's axis-angle (:func:`mirror_pose`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from engine.hands.skeleton import JOINT_NAMES, MANO_RIGHT_REST_JOINTS, mirror_points

# Rows of the (15, 3) per-joint view of a hand_pose, by finger, proximal to distal.
FINGER_ROWS = {"index": (0, 1, 2), "middle": (3, 4, 5), "pinky": (6, 7, 8),
               "ring": (9, 10, 11), "thumb": (12, 13, 14)}
assert all(JOINT_NAMES[r + 1].startswith(f) for f, rows in FINGER_ROWS.items() for r in rows)

_X = np.array([1.0, 0.0, 0.0])
_Y = np.array([0.0, 1.0, 0.0])


def flexion_axes(rest_joints: np.ndarray = MANO_RIGHT_REST_JOINTS) -> np.ndarray:
    """Per-joint flexion axis of a right hand. rest_joints (16, 3) -> (15, 3) unit axes.

    Each axis is perpendicular to the bone (projected onto the palm plane) and to the palm
    normal, so a positive angle curls the bone toward the palm. For a finger along -x this is
    +z; the pinky and thumb, which fan out from -x, get their own tilted axes.
    """
    J = np.asarray(rest_joints, np.float64)
    axes = np.zeros((15, 3))
    for rows in FINGER_ROWS.values():
        joints = [r + 1 for r in rows]  # joint indices, proximal to distal
        for k, j in enumerate(joints):
            a, b = (j, j + 1) if k < 2 else (j - 1, j)  # the distal joint reuses the bone before it
            d = J[b] - J[a]
            d[1] = 0.0  # in the palm plane
            axis = np.cross(d, -_Y)
            axes[j - 1] = axis / np.linalg.norm(axis)
    return axes


_FLEX = flexion_axes()  # (15, 3)


def mirror_pose(pose: np.ndarray) -> np.ndarray:
    """Right <-> left: negate y and z of every joint's axis-angle. (..., 45) -> (..., 45)."""
    p = np.asarray(pose, dtype=np.float32)
    if p.shape[-1] != 45:
        raise ValueError(f"pose must have shape (..., 45); got {p.shape}")
    return (p.reshape(*p.shape[:-1], 15, 3) * np.array([1, -1, -1], np.float32)).reshape(p.shape)


def both_hands(right: np.ndarray) -> np.ndarray:
    """One right-hand pose (45,) -> (2, 45) with the left hand its mirror."""
    right = np.asarray(right, np.float32).reshape(45)
    return np.stack([mirror_pose(right), right])


def _curl(rows: np.ndarray, finger: str, angles: tuple[float, float, float], spread: float = 0.0) -> None:
    """Flex one finger's three joints (radians, toward the palm) and spread its base (about +y)."""
    a, b, c = FINGER_ROWS[finger]
    rows[a] = angles[0] * _FLEX[a] + spread * _Y
    rows[b] = angles[1] * _FLEX[b]
    rows[c] = angles[2] * _FLEX[c]


_THUMB_AXIS = MANO_RIGHT_REST_JOINTS[15] - MANO_RIGHT_REST_JOINTS[13]  # thumb1 -> thumb3, rest


def _thumb(rows: np.ndarray, oppose: float, twist: float, flex: tuple[float, float, float]) -> None:
    """Thumb: base turned about its own axis (``twist``, so its bending faces the fingers), swung
    across the palm (``oppose``, about -y), and flexed at its three joints."""
    a, b, c = FINGER_ROWS["thumb"]
    R = _rotation(-_Y, oppose) @ _rotation(_THUMB_AXIS, -twist) @ _rotation(_FLEX[a], flex[0])
    rows[a] = rotation_to_axis_angle(R)
    rows[b] = flex[1] * _FLEX[b]
    rows[c] = flex[2] * _FLEX[c]


def rest_pose() -> np.ndarray:
    """Flat hands (MANO's zero pose). (2, 45)."""
    return np.zeros((2, 45), np.float32)


def fist_pose() -> np.ndarray:
    """Closed fist, thumb wrapped over the index and middle fingers. (2, 45)."""
    rows = np.zeros((15, 3))
    for finger in ("index", "middle", "ring", "pinky"):
        _curl(rows, finger, (1.3, 1.6, 0.9))
    _thumb(rows, oppose=0.7, twist=1.1, flex=(0.2, 0.6, 0.6))
    return both_hands(rows.reshape(45))


def point_pose() -> np.ndarray:
    """Index finger straight, the others curled, thumb resting on the middle finger. (2, 45)."""
    rows = np.zeros((15, 3))
    _curl(rows, "index", (0.0, 0.05, 0.05))
    for finger in ("middle", "ring", "pinky"):
        _curl(rows, finger, (1.3, 1.6, 0.9))
    _thumb(rows, oppose=0.7, twist=1.1, flex=(0.2, 0.5, 0.5))
    return both_hands(rows.reshape(45))


def spread_pose() -> np.ndarray:
    """All fingers straight and fanned out about the palm normal. (2, 45)."""
    rows = np.zeros((15, 3))
    for finger, spread in (("index", 0.30), ("middle", 0.05), ("ring", -0.20), ("pinky", -0.42)):
        _curl(rows, finger, (-0.05, 0.0, 0.0), spread=spread)
    _thumb(rows, oppose=-0.35, twist=0.0, flex=(-0.15, -0.1, 0.0))
    return both_hands(rows.reshape(45))


POSES: dict[str, Callable[[], np.ndarray]] = {
    "rest": rest_pose, "fist": fist_pose, "point": point_pose, "spread": spread_pose,
}


def pose(name: str) -> np.ndarray:
    """A preset by name -> (2, 45)."""
    if name not in POSES:
        raise ValueError(f"pose must be one of {sorted(POSES)}; got {name!r}")
    return POSES[name]()


def rotation_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """A rotation matrix (3, 3) -> axis-angle (3,) (angle in 0..pi)."""
    R = np.asarray(R, np.float64)
    cos = np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-8:
        return np.zeros(3)
    if np.pi - angle < 1e-4:  # near pi: axis from the symmetric part
        axis = np.sqrt(np.clip((np.diag(R) + 1) / 2, 0, None))
        k = int(np.argmax(axis))
        axis = (R[:, k] + R[k, :]) / 2
        axis[k] = np.sqrt((R[k, k] + 1) / 2)
        return angle * axis / np.linalg.norm(axis)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return angle * w / (2 * np.sin(angle))


def presentation_placement(separation: float = 0.24, height: float = 0.0,
                           palm_tilt: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """Both hands in front of the performer, fingers forward (-Z), palms down and tilted
    ``palm_tilt`` radians toward each other, wrists ``separation`` metres apart at ``height``.

    Returns global_orient (2, 3) and transl (2, 3) for the world frame (+Y up, +X right).
    """
    # right hand: yaw -90 deg about +y puts its fingers (-x) along -z; then roll about the
    # forward axis so the palm (-y) turns toward the performer's left (-x)
    yaw = _rotation(_Y, -np.pi / 2)
    roll = _rotation(np.array([0.0, 0.0, -1.0]), palm_tilt)
    R_right = roll @ yaw
    R_left = np.diag([-1.0, 1.0, 1.0]) @ R_right @ np.diag([-1.0, 1.0, 1.0])  # mirror in x
    orient = np.stack([rotation_to_axis_angle(R_left), rotation_to_axis_angle(R_right)])
    wrists = np.array([[-separation / 2, height, 0.0], [separation / 2, height, 0.0]])
    rest_wrists = np.stack([mirror_points(MANO_RIGHT_REST_JOINTS[0]), MANO_RIGHT_REST_JOINTS[0]])
    return orient.astype(np.float32), (wrists - rest_wrists).astype(np.float32)


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues: unit axis (3,), angle (radians) -> (3, 3)."""
    x, y, z = axis / np.linalg.norm(axis)
    K = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K
