"""Keep a generated take's finger joints inside their anatomical limits, smoothly.

The diffusion model bends fingers past their limits in a few percent of joint-frames (the
training data never does: every corpus clip is inside ``engine.hands.anatomy.limits_radians``,
the same limits the IK and the evaluator use). Clamping each frame on its own would flatten the
trajectory where it crosses the limit and put a kink (an acceleration spike) there. Instead, per
hand, joint and anatomical axis (twist, spread, bend), the excess beyond the limit over time is
covered by a smooth envelope - a running maximum over ``REACH`` frames either side, blurred by a
Gaussian, repeated on what is left so the envelope ends at or above the excess - and that envelope
is subtracted. The joint eases into the limit and out again over a few frames instead of stopping
dead; joints and frames that never pass a limit are returned bit for bit.

Kept (constrained) joints are never touched: the correction fades to zero over ``REACH`` frames
towards a kept frame of that joint, and whatever excess that leaves is clamped. Wrists
(global_orient) and translation have no limits here.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from engine.diffusion import inpaint
from engine.diffusion.representation import NUM_ROT_CHANNELS, ROT_DIM
from engine.motion.rotations import axis_angle_to_rot6d, rot6d_to_axis_angle

REACH = 4  # frames either side over which an excess is eased in and out (running-max half width)
PASSES = 3  # envelope passes; each leaves ~5 % of the previous residual (Gaussian mass beyond 2 sigma)
MARGIN = 1e-4  # radians (0.006 deg) inside the limit, so the float32 6-D round trip still reads inside


def smooth_envelope(excess: torch.Tensor, reach: int = REACH, passes: int = PASSES) -> torch.Tensor:
    """excess (N, T) >= 0 -> (N, T) smooth curve that is >= excess up to ~5 % ** passes of it and
    zero farther than ~2 ``reach`` frames from any positive excess."""
    if reach < 1:
        raise ValueError(f"reach must be at least 1 frame; got {reach}")
    sigma = reach / 2
    k = torch.arange(-2 * reach, 2 * reach + 1, dtype=excess.dtype, device=excess.device)
    kernel = torch.exp(-0.5 * (k / sigma) ** 2)
    kernel = (kernel / kernel.sum())[None, None]
    env = torch.zeros_like(excess)
    for _ in range(passes):
        res = (excess - env).clamp_min(0)[:, None]  # (N, 1, T)
        if not bool((res > 0).any()):
            break
        peak = F.max_pool1d(F.pad(res, (reach, reach)), 2 * reach + 1, stride=1)
        env = env + F.conv1d(F.pad(peak, (2 * reach, 2 * reach)), kernel)[:, 0]
    return env


def free_ramp(kept: torch.Tensor, reach: int = REACH) -> torch.Tensor:
    """kept (T, N) bool -> (T, N) weight: 0 on kept frames, rising linearly to 1 at ``reach`` frames
    from the nearest kept frame of that column (1 everywhere in a column with none kept): one minus
    HandX's ramp (``inpaint.soft_weights``) from 1 on kept frames to 0 ``reach`` frames away."""
    return 1 - inpaint.soft_weights(kept, 1.0, 0.0, reach)[0].double()


def respect_limits(x: torch.Tensor, betas: np.ndarray, hands, keep: torch.Tensor | None = None,
                   reach: int = REACH) -> tuple[torch.Tensor, dict]:
    """Raw motion (T, 2, 99) -> the same motion with every free finger joint inside its anatomical
    limits (module doc), and a report: ``joint_frames`` (hand_pose joint-frames past a limit before),
    ``share`` (of all free joint-frames), ``max_excess_deg``. betas (2, 10); hands: a TwoHands
    (its per-hand models give the anatomical frames); keep (T, 2, 99) bool or None. x is not changed."""
    from engine.hands.anatomy import anatomical_angles, frames_for, from_anatomical, limits_radians
    if x.dim() != 3 or x.shape[1] != 2 or x.shape[2] < NUM_ROT_CHANNELS:
        raise ValueError(f"motion must be (T, 2, 99); got {tuple(x.shape)}")
    T = x.shape[0]
    out = x.detach().clone()
    rot = x.detach()[:, :, ROT_DIM:NUM_ROT_CHANNELS].double().cpu().reshape(T, 2, 15, ROT_DIM)
    kept = torch.zeros(T, 2, 15, dtype=torch.bool)
    if keep is not None:
        kept = keep.detach().cpu()[:, :, ROT_DIM:NUM_ROT_CHANNELS].reshape(T, 2, 15, ROT_DIM).any(-1)
    lo, hi = (v.double() for v in limits_radians())
    lo, hi = lo + MARGIN, hi - MARGIN
    report = {"joint_frames": 0, "share": 0.0, "max_excess_deg": 0.0}
    free_total = int((~kept).sum())
    for h in (0, 1):
        frames = frames_for(hands.hand(h), torch.as_tensor(np.asarray(betas[h], np.float32))).double().cpu()
        aa = rot6d_to_axis_angle(rot[:, h])  # (T, 15, 3)
        ang = anatomical_angles(aa.reshape(T, 45), frames)  # (T, 15, 3)
        over, under = (ang - hi).clamp_min(0), (lo - ang).clamp_min(0)
        free = ~kept[:, h]  # (T, 15)
        bad = ((over > 0) | (under > 0)).any(-1) & free
        if not bool(bad.any()):
            continue
        report["joint_frames"] += int(bad.sum())
        excess = torch.maximum(over, under).amax(-1)[bad]
        report["max_excess_deg"] = max(report["max_excess_deg"], float(excess.max()) * 180 / math.pi)
        w = free_ramp(kept[:, h], reach)[:, :, None]  # (T, 15, 1)
        env_over = smooth_envelope(over.permute(1, 2, 0).reshape(45, T), reach).reshape(15, 3, T).permute(2, 0, 1)
        env_under = smooth_envelope(under.permute(1, 2, 0).reshape(45, T), reach).reshape(15, 3, T).permute(2, 0, 1)
        new = torch.minimum(torch.maximum(ang - w * env_over + w * env_under, lo), hi)
        changed = ((new - ang).abs() > 0).any(-1) & free  # (T, 15): only these joints are rewritten
        if not bool(changed.any()):
            continue
        r6 = axis_angle_to_rot6d(from_anatomical(new, frames).reshape(T, 15, 3))  # (T, 15, 6)
        cur = out[:, h, ROT_DIM:NUM_ROT_CHANNELS].reshape(T, 15, ROT_DIM)
        cur[changed.to(out.device)] = r6[changed].to(out.dtype).to(out.device)
        out[:, h, ROT_DIM:NUM_ROT_CHANNELS] = cur.reshape(T, 15 * ROT_DIM)
    report["share"] = report["joint_frames"] / max(free_total, 1)
    report["max_excess_deg"] = round(report["max_excess_deg"], 2)
    return out, report
