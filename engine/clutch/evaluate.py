"""Tokenizer reconstruction metrics in the layout of CLUTCH Table 4: MPJPE, PA-MPJPE, ACCEL (mm)
and Diversity, from the 21 keypoints of the default hand (forward kinematics of the decoded
parameters vs the ground truth). Diversity here is in joint space (mean distance between random
pairs of clips' keypoint trajectories, per frame, metres) until the shared evaluator's motion
features exist; the ground truth's value is returned beside it for reference.
"""
from __future__ import annotations

from typing import Generator

import torch

from engine.clutch.refine import keypoints_from_rep


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """pred, gt (M, J, 3) -> pred aligned to gt by the best similarity transform per set."""
    mp, mg = pred.mean(1, keepdim=True), gt.mean(1, keepdim=True)
    p, g = pred - mp, gt - mg
    u, s, vt = torch.linalg.svd(p.transpose(1, 2) @ g)  # (M, 3, 3)
    d = torch.sign(torch.det(u @ vt))
    fix = torch.ones_like(s)
    fix[:, -1] = d
    R = u @ torch.diag_embed(fix) @ vt
    scale = (s * fix).sum(1) / p.pow(2).sum((1, 2)).clamp_min(1e-12)
    return scale[:, None, None] * p @ R + mg


def diversity(j: torch.Tensor, pairs: int = 300, seed: int = 0) -> float:
    """j (N, T, 2, 21, 3) -> mean over random clip pairs of the per-frame RMS keypoint distance (m)."""
    N = j.shape[0]
    if N < 2:
        return 0.0
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(0, N, (pairs,), generator=g), torch.randint(0, N, (pairs,), generator=g)
    keep = a != b
    d = (j[a[keep]] - j[b[keep]]).pow(2).sum(-1).mean((2, 3)).sqrt().mean(1)
    return float(d.mean())


def tokenizer_metrics(model, x: torch.Tensor, betas: torch.Tensor, hands, chunk: int = 128) -> dict[str, float]:
    """model: a SHIFT / baseline tokenizer; x (N, T, 2, 99) raw; betas (N, 2, 10)."""
    from engine.clutch.eval_run import run_to_end
    return run_to_end(tokenizer_metrics_iter(model, x, betas, hands, chunk))


@torch.no_grad()
def tokenizer_metrics_iter(model, x: torch.Tensor, betas: torch.Tensor, hands,
                           chunk: int = 128) -> Generator[dict, None, dict[str, float]]:
    """``tokenizer_metrics`` with progress: yields ``{"stage": "reconstruct", "done", "of"}`` (clips)
    after each chunk, ``{"stage": "score", ...}`` before the metrics; returns the metrics dict."""
    model.eval()
    N = x.shape[0]
    jp, jg = [], []
    for i in range(0, N, chunk):
        xb, bb = x[i:i + chunk], betas[i:i + chunk]
        jp.append(keypoints_from_rep(hands, model(xb)["recon"], bb))
        jg.append(keypoints_from_rep(hands, xb, bb))
        yield {"stage": "reconstruct", "done": min(i + chunk, N), "of": N}
    yield {"stage": "score", "done": 0, "of": 1}
    jp, jg = torch.cat(jp), torch.cat(jg)  # (N, T, 2, 21, 3)
    mpjpe = (jp - jg).norm(dim=-1).mean()
    flat_p, flat_g = jp.reshape(-1, 21, 3).double(), jg.reshape(-1, 21, 3).double()
    pa = (procrustes_align(flat_p, flat_g) - flat_g).norm(dim=-1).mean()
    acc = lambda j: j[:, 2:] - 2 * j[:, 1:-1] + j[:, :-2]  # noqa: E731
    accel = (acc(jp) - acc(jg)).norm(dim=-1).mean() if x.shape[1] > 2 else torch.tensor(0.0)
    return {"mpjpe_mm": float(mpjpe) * 1e3, "pa_mpjpe_mm": float(pa) * 1e3, "accel_mm": float(accel) * 1e3,
            "diversity": diversity(jp), "diversity_gt": diversity(jg)}


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """{method: metrics} -> a CLUTCH Table 4 style text table."""
    lines = [f"{'Method':<18}{'MPJPE':>9}{'PA-MPJPE':>10}{'ACCEL':>8}{'Div':>8}"]
    for name, m in rows.items():
        lines.append(f"{name:<18}{m['mpjpe_mm']:>9.2f}{m['pa_mpjpe_mm']:>10.2f}{m['accel_mm']:>8.3f}{m['diversity']:>8.3f}")
    if rows:
        lines.append(f"{'(ground truth)':<18}{'':>9}{'':>10}{'':>8}{next(iter(rows.values()))['diversity_gt']:>8.3f}")
    return "\n".join(lines)


__all__ = ["tokenizer_metrics", "tokenizer_metrics_iter", "procrustes_align", "diversity", "format_table"]
