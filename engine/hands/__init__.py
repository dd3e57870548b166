"""Hand models behind one interface: the embedded default hand and MANO (optional extra)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from engine.hands.hand_model import HandModel, TwoHands
from engine.hands.skeleton import JOINT_NAMES, KEYPOINT_NAMES, PARENTS

BACKENDS = ("default", "mano")


def load_hands(backend: str = "default", mano_dir: str | None = None, device: str | torch.device = "cpu") -> TwoHands:
    """Both hands of one backend on a device. ``mano`` needs ``mano_dir`` (the folder with MANO_*.pkl)."""
    if backend == "default":
        from engine.hands.default_hand import DefaultHand, load_default_hand_asset
        asset = load_default_hand_asset()
        hands = TwoHands(DefaultHand("left", asset), DefaultHand("right", asset))
    elif backend == "mano":
        if not mano_dir:
            raise ValueError("the mano backend needs a folder holding MANO_LEFT.pkl and MANO_RIGHT.pkl")
        from engine.hands.mano import load_two_mano
        hands = load_two_mano(mano_dir)
    else:
        raise ValueError(f"hand backend must be one of {BACKENDS}; got {backend!r}")
    return hands.to(device)


@lru_cache(maxsize=1)
def default_hands_cpu() -> TwoHands:
    """The shared CPU default hands used to derive clip keypoints."""
    return load_hands("default")


@torch.no_grad()
def two_hand_keypoints(clip, chunk: int = 4096) -> np.ndarray:
    """Clip -> (T, 2, 21, 3) float32 keypoints from the default hand model."""
    hands = default_hands_cpu()
    betas = torch.from_numpy(clip.betas)
    out = []
    for s in range(0, clip.num_frames, chunk):
        sl = slice(s, s + chunk)
        out.append(hands.joints(betas, torch.from_numpy(clip.global_orient[sl]),
                                torch.from_numpy(clip.hand_pose[sl]), torch.from_numpy(clip.transl[sl])))
    return torch.cat(out).numpy().astype(np.float32)


__all__ = ["HandModel", "TwoHands", "load_hands", "default_hands_cpu", "two_hand_keypoints",
           "JOINT_NAMES", "KEYPOINT_NAMES", "PARENTS", "BACKENDS"]
