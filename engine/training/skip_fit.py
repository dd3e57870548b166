"""Closed-form fit of the denoiser's skip path (``DenoiserConfig.skip``) onto a trained model.

Why: a trained x0-predicting denoiser without the path returns even a clean window with much of its
detail lost (diffusion v4: 82 % of the keypoint speed, normalised x0 MSE 0.14 at t = 0), and a
linear map from the same noisy 2-frame patch recovers most of it (MSE 0.018). Adam moves each of
the path's ~157 k weights by about one learning rate per step, so SGD alone takes thousands of
steps to get there (v4 + a zero-initialised path, 550 CPU steps: MSE 0.114, takes no livelier);
least squares gets there at once. The fine-tune that follows (``train diffusion --add-skip``)
then trains everything together.

Three least-squares problems on the base model's residuals r = x0 - F(x_t) over ``windows``
training windows (first caption each, fixed noise):
1. the map: patch(x_t) -> patch(r) (ridge), from low noise (``LOW_T``), where x_t still holds the
   detail F drops;
2. a gain per channel and timestep (``GAIN_T``) for that map: at higher noise x_t is mostly noise,
   so the gain falls. It is fitted to the residual's values and, ``velocity`` x more heavily, to
   their frame-to-frame differences: a gain fitted to values alone lets noise through that shows as
   jitter (v4, val 128 prompts, speed / peak acceleration over the data's: velocity 1 -> 1.14x /
   2.9x; 10 -> 0.88x / 1.6x; 30 -> 0.83x / 1.4x; v4 itself 0.70x / 0.63x);
3. the gate: ``skip_gate`` (a linear map of the denoiser's timestep features) fitted to those
   gains - 1, interpolated over every timestep.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from engine.diffusion.denoiser import Denoiser, timestep_embedding
from engine.diffusion.representation import normalize

LOW_T = (0, 40, 80)
GAIN_T = (0, 50, 100, 150, 200, 300, 400, 500, 600, 700, 800, 900, 999)
MAX_GAIN = 1.5


@torch.no_grad()
def fit_skip(base: Denoiser, dataset, scheduler, windows: int = 384, velocity: float = 30.0,
             ridge: float = 1e-5, seed: int = 0, chunk: int = 128) -> Denoiser:
    """A copy of ``base`` (a model without the skip path) with the path added and fitted; ``base``
    is not changed. ``dataset``: a ``DiffusionDataset`` (its first ``windows`` windows are used).
    Cost: (len(LOW_T) + len(GAIN_T)) forward passes over the windows (~80 s for 384 on 2 CPU cores)."""
    if base.config.skip:
        raise ValueError("the model already has a skip path")
    if windows < 1 or velocity < 0 or ridge <= 0:
        raise ValueError(f"windows must be >= 1, velocity >= 0 and ridge > 0; got {windows}, {velocity}, {ridge}")
    c = base.config
    was_training = base.training
    base.eval()
    device = base.x_mean.device
    n = min(windows, len(dataset))
    b = dataset.batch(torch.arange(n, device=dataset.x.device))
    x0 = normalize(b["x"].to(device), base.x_mean, base.x_std)  # (n, T, 2, H)
    T = x0.shape[1]
    per_frame = 2 * c.hand_channels
    width = c.patch * per_frame
    gen = torch.Generator().manual_seed(seed)

    def residuals(t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(n * patches, width) noisy patches and x0 residual patches at timestep t, float64 on the CPU."""
        noise = torch.randn(x0.shape, generator=gen).to(device)
        x_t = scheduler.add_noise(x0, noise, torch.full((n,), t, device=device))
        preds = []
        for i in range(0, n, chunk):
            sl = slice(i, i + chunk)
            memory = base.encode_condition(b["tokens"][sl].to(device), b["token_mask"][sl].to(device))
            preds.append(base(x_t[sl], torch.full((len(x_t[sl]),), t, device=device), *memory))
        r = x0 - torch.cat(preds)
        return x_t.reshape(-1, width).double().cpu(), r.reshape(-1, width).double().cpu()

    # 1. the map, from low noise: [patch, 1] @ A = residual patch
    gram = torch.zeros(width + 1, width + 1, dtype=torch.float64)
    cross = torch.zeros(width + 1, width, dtype=torch.float64)
    for t in LOW_T:
        p, r = residuals(t)
        p1 = torch.cat([p, torch.ones(len(p), 1, dtype=torch.float64)], 1)
        gram += p1.T @ p1
        cross += p1.T @ r
    scale = gram.diagonal().mean()
    a = torch.linalg.solve(gram + ridge * scale * torch.eye(width + 1, dtype=torch.float64), cross)
    weight, bias = a[:width].T.contiguous(), a[width]

    # 2. a gain per frame channel and timestep, on values and (velocity x) frame differences
    gains = []
    for t in GAIN_T:
        p, r = residuals(t)
        y = (p @ weight.T + bias).reshape(n, T, per_frame)
        r = r.reshape(n, T, per_frame)
        dy, dr = y.diff(dim=1), r.diff(dim=1)
        num = (r * y).sum((0, 1)) + velocity * (dr * dy).sum((0, 1))
        den = (y * y).sum((0, 1)) + velocity * (dy * dy).sum((0, 1))
        gains.append((num / den.clamp_min(1e-12)).clamp(0.0, MAX_GAIN))
    gains = torch.stack(gains)  # (len(GAIN_T), per_frame)

    # 3. the gate: linear in the timestep features, fitted to gain - 1 over every timestep
    ts = torch.arange(scheduler.config.num_train_timesteps)
    dense = np.stack([np.interp(ts.numpy(), GAIN_T, gains[:, k].numpy()) for k in range(per_frame)], 1)
    target = torch.from_numpy(np.tile(dense, (1, c.patch))) - 1.0  # (N_t, width): each frame of a patch
    feats = base.time_mlp(timestep_embedding(ts.to(device), c.d_model)).double().cpu()
    f1 = torch.cat([feats, torch.ones(len(ts), 1, dtype=torch.float64)], 1)
    fg = f1.T @ f1
    g = torch.linalg.solve(fg + 1e-6 * fg.diagonal().mean() * torch.eye(len(fg), dtype=torch.float64), f1.T @ target)

    model = Denoiser(replace(c, skip=True)).to(device)
    model.load_state_dict(base.state_dict(), strict=False)
    model.skip_out.weight.copy_(weight.float())
    model.skip_out.bias.copy_(bias.float())
    model.skip_gate.weight.copy_(g[:-1].T.float())
    model.skip_gate.bias.copy_(g[-1].float())
    base.train(was_training)
    return model
