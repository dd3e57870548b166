"""Timeline tracks and what a key on each one holds. No Qt.

Four tracks: each hand's finger pose and each wrist's placement. A key stores the track's values
at one frame: ``hand_pose[f, h]`` (45,) for a hand track, ``transl[f, h] ++ global_orient[f, h]``
(6,) for a wrist track.
"""
from __future__ import annotations

import numpy as np

from engine.motion.clip import Clip

TRACKS = ("left_hand", "right_hand", "left_wrist", "right_wrist")
TRACK_LABELS = {"left_hand": "Left hand", "right_hand": "Right hand",
                "left_wrist": "Left wrist", "right_wrist": "Right wrist"}
TRACK_HAND = {"left_hand": 0, "right_hand": 1, "left_wrist": 0, "right_wrist": 1}
TRACK_SIZE = {"left_hand": 45, "right_hand": 45, "left_wrist": 6, "right_wrist": 6}
HANDS = ("left", "right")


def check_track(track: str) -> str:
    if track not in TRACKS:
        raise ValueError(f"track must be one of {list(TRACKS)}; got {track!r}")
    return track


def check_hand(hand: str) -> str:
    if hand not in HANDS:
        raise ValueError(f"hand must be 'left' or 'right'; got {hand!r}")
    return hand


def hand_tracks(hand: str) -> tuple[str, str]:
    """The two tracks of one hand: (``<hand>_hand``, ``<hand>_wrist``)."""
    check_hand(hand)
    return f"{hand}_hand", f"{hand}_wrist"


def track_values(clip: Clip, track: str, frame: int) -> np.ndarray:
    """The values a key on ``track`` at ``frame`` holds: (45,) or (6,) float32, a copy."""
    h = TRACK_HAND[check_track(track)]
    if not 0 <= frame < clip.num_frames:
        raise ValueError(f"frame must be in 0..{clip.num_frames - 1}; got {frame}")
    if track.endswith("_hand"):
        return clip.hand_pose[frame, h].copy()
    return np.concatenate([clip.transl[frame, h], clip.global_orient[frame, h]]).astype(np.float32)


def check_values(track: str, values) -> np.ndarray:
    """Key values as a float32 array of the track's size, finite; else ValueError."""
    v = np.asarray(values, dtype=np.float32)
    n = TRACK_SIZE[check_track(track)]
    if v.shape != (n,):
        raise ValueError(f"{track} key values must have shape ({n},); got {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{track} key values must be finite")
    return v
