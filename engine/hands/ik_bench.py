"""The IK benchmark: fit a 60-frame two-hand clip made by FK from plausible parameters.

Shared by ``hand-studio bench ik``, ``bench/ik.py`` and the tests (which use fewer repeats).
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch

from engine.hands.anatomy import frames_for, sample_plausible_hand_pose
from engine.hands.fit import FitConfig, fit_keypoints_iter
from engine.hands.hand_model import TwoHands


def plausible_motion(hands: TwoHands, frames: int = 60, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Keypoints (T, 2, 21, 3) of a smooth motion between plausible key poses, and its parameters."""
    g = torch.Generator().manual_seed(seed)
    keys = 4
    t = torch.linspace(0, keys - 1, frames)
    k0 = t.floor().long().clamp(max=keys - 2)
    w = (t - k0)[:, None]
    w = w * w * (3 - 2 * w)  # smoothstep between keys
    hp, go, tr = [], [], []
    for h, model in enumerate((hands.left, hands.right)):
        poses = sample_plausible_hand_pose(keys, frames_for(model).cpu(), g)  # (keys, 45)
        hp.append(poses[k0] * (1 - w) + poses[k0 + 1] * w)
        orients = 0.6 * torch.randn(keys, 3, generator=g)
        go.append(orients[k0] * (1 - w) + orients[k0 + 1] * w)
        side = -1.0 if h == 0 else 1.0
        pos = torch.tensor([side * 0.15, 0.0, -0.3]) + 0.08 * torch.randn(keys, 3, generator=g)
        tr.append(pos[k0] * (1 - w) + pos[k0 + 1] * w)
    params = {"hand_pose": torch.stack(hp, 1), "global_orient": torch.stack(go, 1), "transl": torch.stack(tr, 1)}
    dev = hands.device
    with torch.no_grad():
        kp = hands.joints(torch.zeros(2, 10, device=dev), *(params[k].to(dev) for k in ("global_orient", "hand_pose", "transl")))
    return kp.cpu().numpy(), {k: v.numpy() for k, v in params.items()}


MAX_FRAMES = 1800  # one minute at 30 fps, as ``bench generate``
MAX_REPEATS = 100
MAX_NOISE_MM = 100.0  # already far larger than a finger bone


def check_ik_bench_args(frames, repeats, noise_mm) -> None:
    """ValueError naming the first argument of ``run_ik_bench`` out of its range."""
    for name, value, hi in (("frames", frames, MAX_FRAMES), ("repeats", repeats, MAX_REPEATS)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= hi:
            raise ValueError(f"{name} must be an integer in 1..{hi}; got {value!r}")
    if isinstance(noise_mm, bool) or not isinstance(noise_mm, (int, float, np.number)) \
            or not 0.0 <= noise_mm <= MAX_NOISE_MM:  # NaN fails the comparison too
        raise ValueError(f"noise_mm must be a number in 0..{MAX_NOISE_MM:g}; got {noise_mm!r}")


def run_ik_bench(hands: TwoHands, frames: int = 60, repeats: int = 5, noise_mm: float = 0.0,
                 config: FitConfig = FitConfig()) -> dict:
    """Times ``repeats`` fits (plus one cold fit) and measures joint error against the clean keypoints."""
    check_ik_bench_args(frames, repeats, noise_mm)
    rows = []
    for r in range(repeats + 1):
        kp, _ = plausible_motion(hands, frames, seed=r)
        noisy = kp + np.random.default_rng(r).normal(0, noise_mm / 1000, kp.shape).astype(np.float32)
        t0, c0 = time.perf_counter(), time.process_time()
        for item in fit_keypoints_iter(noisy, hands, config=config):
            pass
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        clean_err = float(np.linalg.norm(item["clip"].joints - kp, axis=-1).mean() * 1000)
        rows.append((seconds, clean_err, float(np.linalg.norm(item["clip"].joints - kp, axis=-1).max() * 1000), cpu))
    cold, warm = rows[0], rows[1:]
    return {
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "frames": frames, "hands": 2, "noise_mm": noise_mm, "iterations": config.iterations,
        "cold_seconds": cold[0],
        "seconds_mean": float(np.mean([r[0] for r in warm])), "seconds_max": float(np.max([r[0] for r in warm])),
        # CPU time of the process during the fit: equals wall time on an idle machine with the
        # fit's single thread; the wall numbers above include whatever else the machine runs
        "cpu_seconds_mean": float(np.mean([r[3] for r in warm])),
        "load_average_1min": os.getloadavg()[0],
        "mean_joint_error_mm": float(np.mean([r[1] for r in warm])),
        "max_joint_error_mm": float(np.max([r[2] for r in warm])),
    }
