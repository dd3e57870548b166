"""Masked partial denoising (HandX appendix D.1) as pure blend functions.

One ``keep_mask`` (T, 2, 99) bool (True = keep the target value) drives every constraint.
During denoising the predicted clean sample is pulled toward the target with a weight that is
``p_hard`` on kept frames and decays linearly to ``p_soft`` at ``k_trans`` frames away (zero
beyond; overlapping ramps take the strongest); ramp frames are pulled toward the nearest kept
frame's value. HandX stops there (85 %); ``impose`` then puts the exact values on the kept
channels of the result.

Seams. Blending the *final* prediction with the ramp (and then imposing) leaves a kink where the
ramp ends and a step where the network's prediction disagrees with the exact kept values: on the
shipped model the acceleration at the seams was 10-15x the clip's median. ``seam_blend`` replaces
both in the last denoising updates: kept channels take their exact values and the residual
(target - prediction) of each channel's kept frames is carried into its free frames as the
smoothest field that agrees with it there (a Gaussian-process / Matern interpolation: value and
slope continue across each boundary, then fade out over ``reach`` frames without overshoot);
channels never kept are untouched.
"""
from __future__ import annotations

import torch

from engine.diffusion.representation import CHANNELS, HAND_CHANNELS

P_HARD, P_SOFT, K_TRANS = 0.85, 0.10, 5
# Seam fill (seam_fill_matrix) as (order, reach in frames) per channel group, chosen on the shipped
# model (eval --constraints, 16 test clips x 3 seeds; numbers at pipeline.SEAM_STEPS). Smoother
# seams are available only by extrapolating the residual's trend: a minimum-jerk fill with a weak
# fade (third differences, reach 10) took the continue seam to 2.5-4.2, but moved wrists by up to
# 1.3 m and, used on the fingers, pushed up to 25 % of their joints past the anatomical limits.
SEAM_ORIENT, SEAM_POSE, SEAM_TRANSL = (2, 6.0), (3, 2.0), (2, 6.0)


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
    linearly, so the correction is as smooth as HandX's ramp. x, target, keep_mask: (T, ...).
    The simple variant; the pipeline uses ``seam_blend`` (it also carries the residual's slope)."""
    _, source = soft_weights(keep_mask, 1.0, 0.0, k_trans)
    T = x.shape[0]
    frames = torch.arange(T, device=x.device).reshape(T, *([1] * (x.dim() - 1)))
    d = (frames - source).abs().float()
    fade = (1 - d / (k_trans + 1)).clamp_min(0)
    fade = torch.where(keep_mask.any(0, keepdim=True), fade, torch.zeros_like(fade))  # channels never kept
    residual = torch.gather(target - x, 0, source)
    return impose(x + fade * residual, target, keep_mask)


def seam_fill_matrix(kept: torch.Tensor, reach: float, order: int) -> torch.Tensor:
    """kept (T,) bool -> M (T, T) float64 with c = M @ r for a residual r known on the kept frames:
    c = r on kept frames and, on free frames, the most likely values under the Gaussian field with
    precision Q = (I / reach^2 + D'D)^order (D: first differences; a discrete Matern field with
    smoothness order - 1/2), i.e. the minimiser of c'Qc with c fixed on the kept frames. Order 1
    carries the value (an exponential fade), 2 also the slope, 3 also the curvature; the fade is
    monotone, never oscillating, over a few ``reach`` frames. Free columns of M are zero (r there
    is ignored). ``reach`` <= 0, or no kept or no free frame: M is the kept diagonal (``impose``)."""
    kept = torch.as_tensor(kept, dtype=torch.bool).cpu()
    if kept.dim() != 1:
        raise ValueError(f"kept must be a 1-D bool frame mask; got shape {tuple(kept.shape)}")
    T = kept.shape[0]
    K, F = kept.nonzero()[:, 0], (~kept).nonzero()[:, 0]
    M = torch.diag(kept.double())
    if len(K) == 0 or len(F) == 0 or int(order) < 1 or reach <= 0:
        return M
    D = torch.diff(torch.eye(T, dtype=torch.float64), dim=0)  # (T - 1, T)
    Q = torch.linalg.matrix_power(torch.eye(T, dtype=torch.float64) / float(reach) ** 2 + D.T @ D, int(order))
    M[F[:, None], K[None]] = torch.linalg.solve(Q[F][:, F], -Q[F][:, K])
    return M


def default_fill(channels: int) -> list[tuple[int, float]]:
    """(order, reach) per entry of the last axis: for the representation's 99 channels SEAM_ORIENT
    on global_orient, SEAM_POSE on hand_pose, SEAM_TRANSL on transl; else SEAM_POSE everywhere."""
    if channels != HAND_CHANNELS:
        return [SEAM_POSE] * channels
    fill = [SEAM_POSE] * HAND_CHANNELS
    for part, spec in (("global_orient", SEAM_ORIENT), ("transl", SEAM_TRANSL)):
        sl = CHANNELS[part]
        fill[sl] = [spec] * (sl.stop - sl.start)
    return fill


def seam_plan(keep_mask: torch.Tensor, fill=None) -> list:
    """keep_mask (T, ...) -> [(columns, M)]: one fill matrix (float32, on the mask's device) per
    distinct (frame pattern, order, reach) among the channels that are kept on some frames and
    free on others (channels kept everywhere or nowhere need none). ``fill``: one (order, reach)
    for every channel, a list of them per entry of the last axis, or None (``default_fill``).
    Depends only on the mask: build it once per window, pass it to each ``seam_blend`` there."""
    T, C = keep_mask.shape[0], keep_mask.shape[-1] if keep_mask.dim() > 1 else 1
    fill = default_fill(C) if fill is None else fill
    one = len(fill) == 2 and not isinstance(fill[0], (tuple, list))
    fill = [tuple(fill)] * C if one else [tuple(f) for f in fill]
    if len(fill) != C:
        raise ValueError(f"fill must give one (order, reach) or {C} of them; got {len(fill)}")
    cols = keep_mask.reshape(T, -1).T.cpu()  # (columns, T); column j is channel j % C
    mixed = (cols.any(1) & ~cols.all(1)).nonzero()[:, 0].tolist()
    groups: dict = {}
    for j in mixed:
        groups.setdefault((tuple(cols[j].tolist()), fill[j % C]), []).append(j)
    dev = keep_mask.device
    return [(torch.tensor(js, device=dev), seam_fill_matrix(torch.tensor(pat), reach, order).float().to(dev))
            for (pat, (order, reach)), js in groups.items()]


def seam_blend(x: torch.Tensor, target: torch.Tensor, keep_mask: torch.Tensor, fill=None,
               plan: list | None = None) -> torch.Tensor:
    """Exact target values on kept channels and no step beside them. x, target, keep_mask (T, ...).

    The residual target - x of each channel's kept frames is carried into its free frames by
    ``seam_fill_matrix`` (linear per channel, so it commutes with per-channel normalisation: apply
    it in either space); kept channels come out bit-identical to ``target`` (``impose``), channels
    never kept bit-identical to ``x``. 6D rotation channels are filled entry by entry; the
    conversion to axis-angle re-orthonormalises them. ``fill``/``plan``: see ``seam_plan``."""
    if x.shape != target.shape or x.shape != keep_mask.shape:
        raise ValueError(f"x, target and keep_mask must have one shape; got {tuple(x.shape)}, "
                         f"{tuple(target.shape)}, {tuple(keep_mask.shape)}")
    plan = seam_plan(keep_mask, fill) if plan is None else plan
    if not plan:
        return impose(x, target, keep_mask)
    T = x.shape[0]
    r = torch.where(keep_mask, target - x, torch.zeros_like(x)).reshape(T, -1)
    c = torch.zeros_like(r)
    for cols, M in plan:
        c[:, cols] = (M @ r[:, cols].to(M.dtype)).to(c.dtype)
    return impose(x + c.reshape(x.shape), target, keep_mask)
