"""Masked partial denoising (HandX appendix D.1) as pure blend functions.

One ``keep_mask`` (T, 2, 99) bool (True = keep the target value) drives every constraint.
During denoising the predicted clean sample is pulled toward the target with a weight that is
``p_hard`` on kept frames and decays linearly to ``p_soft`` at ``k_trans`` frames away (zero
beyond; overlapping ramps take the strongest); ramp frames are pulled toward the nearest kept
frame's value. HandX stops there (85 %); ``impose`` then puts the exact values on the kept
channels of the result.
"""
from __future__ import annotations

import torch

P_HARD, P_SOFT, K_TRANS = 0.85, 0.10, 5


def soft_weights(keep_mask: torch.Tensor, p_hard: float = P_HARD, p_soft: float = P_SOFT,
                 k_trans: int = K_TRANS) -> tuple[torch.Tensor, torch.Tensor]:
    """keep_mask (T, ...) bool -> weight (T, ...) float and source frame index (T, ...) long.

    weight = p_hard - (p_hard - p_soft) * d / k_trans for distance d <= k_trans to the nearest
    kept frame of that channel, else 0; source = that nearest kept frame (for ramp targets).
    """
    T = keep_mask.shape[0]
    frames = torch.arange(T, device=keep_mask.device).reshape(T, *([1] * (keep_mask.dim() - 1)))
    big = T + k_trans + 1
    kept_at = torch.where(keep_mask, frames, torch.full_like(frames, -big))
    # nearest kept frame before (running max) and after (reverse running max of -frame)
    before = torch.cummax(kept_at, 0).values  # (T, ...)
    kept_after = torch.where(keep_mask, -frames, torch.full_like(frames, -big * 2))
    after = -torch.flip(torch.cummax(torch.flip(kept_after, [0]), 0).values, [0])
    d_before, d_after = frames - before, after - frames
    source = torch.where(d_before <= d_after, before, after).clamp(0, T - 1)
    d = torch.minimum(d_before, d_after).float()
    w = p_hard - (p_hard - p_soft) * d / max(k_trans, 1)
    w = torch.where(d <= k_trans, w, torch.zeros_like(w))
    if k_trans == 0:
        w = torch.where(d == 0, torch.full_like(w, p_hard), torch.zeros_like(w))
    return w, source


def ramp_targets(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """target (T, ...) with each frame's value taken from its source frame (same channel)."""
    return torch.gather(target, 0, source)


def blend(x0_pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """HandX's soft interpolation: (1 - w) * prediction + w * target (broadcast over batch)."""
    return x0_pred + weight * (target - x0_pred)


def impose(x: torch.Tensor, target: torch.Tensor, keep_mask: torch.Tensor) -> torch.Tensor:
    """Exact target values on kept channels."""
    return torch.where(keep_mask, target, x)


def settle(x: torch.Tensor, target: torch.Tensor, keep_mask: torch.Tensor, k_trans: int = K_TRANS) -> torch.Tensor:
    """Exact target values on kept channels, without a step beside them: the residual at each kept
    frame (target - x) is also added to the next ``k_trans`` frames on either side, fading out
    linearly, so the correction is as smooth as HandX's ramp. x, target, keep_mask: (T, ...)."""
    _, source = soft_weights(keep_mask, 1.0, 0.0, k_trans)
    T = x.shape[0]
    frames = torch.arange(T, device=x.device).reshape(T, *([1] * (x.dim() - 1)))
    d = (frames - source).abs().float()
    fade = (1 - d / (k_trans + 1)).clamp_min(0)
    fade = torch.where(keep_mask.any(0, keepdim=True), fade, torch.zeros_like(fade))  # channels never kept
    residual = torch.gather(target - x, 0, source)
    return impose(x + fade * residual, target, keep_mask)
