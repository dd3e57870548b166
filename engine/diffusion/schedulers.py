"""DDPM training / DDIM sampling with cosine betas and x0-prediction (diffusers style).

The scheduler never sees the network: the pipeline calls the model and hands ``step`` the
predicted clean sample. Tensors are any shape; timesteps are ints in [0, num_train_timesteps).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def cosine_alphas_cumprod(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule: (num_timesteps,) float64 alpha-bar."""
    f = lambda t: math.cos((t / num_timesteps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    betas = torch.tensor([min(1 - f(i + 1) / f(i), max_beta) for i in range(num_timesteps)], dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


@dataclass(frozen=True)
class SchedulerConfig:
    num_train_timesteps: int = 1000
    eta: float = 0.0  # 0 = deterministic DDIM; 1 = DDPM-like ancestral noise


class DDIMScheduler:
    """``add_noise`` for training; ``set_timesteps`` + ``step`` for sampling."""

    def __init__(self, config: SchedulerConfig = SchedulerConfig()):
        self.config = config
        self.alphas_cumprod = cosine_alphas_cumprod(config.num_train_timesteps)  # (N,) float64
        self.timesteps = torch.arange(config.num_train_timesteps - 1, -1, -1)

    # --- training ------------------------------------------------------------------------
    def sample_timesteps(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return torch.randint(0, self.config.num_train_timesteps, (n,), generator=generator).to(device)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """q(x_t | x0) = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise; t per batch element (B,) or one int."""
        ab = self._ab(t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    # --- sampling ------------------------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int) -> torch.Tensor:
        """Evenly spaced descending timesteps ending at 0 (so the last step returns x0)."""
        n = self.config.num_train_timesteps
        if not 1 <= num_inference_steps <= n:
            raise ValueError(f"steps must be 1..{n}; got {num_inference_steps}")
        ts = torch.linspace(n - 1, 0, num_inference_steps).round().long()
        self.timesteps = ts
        return ts

    def previous_timestep(self, t: int) -> int:
        idx = (self.timesteps == int(t)).nonzero()
        if len(idx) == 0:
            raise ValueError(f"timestep {t} is not in the schedule set by set_timesteps")
        i = int(idx[0, 0])
        return int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else -1

    def step(self, x0_pred: torch.Tensor, t: int, x_t: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """One DDIM update x_t -> x_{t_prev} given the predicted clean sample; t_prev = -1 returns x0."""
        t_prev = self.previous_timestep(t)
        if t_prev < 0:
            return x0_pred
        ab_t, ab_prev = self._ab(int(t), x_t), self._ab(t_prev, x_t)
        eps = (x_t - ab_t.sqrt() * x0_pred) / (1 - ab_t).sqrt()
        sigma = self.config.eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).sqrt()
        x_prev = ab_prev.sqrt() * x0_pred + (1 - ab_prev - sigma ** 2).clamp_min(0).sqrt() * eps
        if self.config.eta > 0:
            z = torch.randn(x_t.shape, generator=generator, dtype=x_t.dtype).to(x_t.device)
            x_prev = x_prev + sigma * z
        return x_prev

    def _ab(self, t, like: torch.Tensor) -> torch.Tensor:
        """alpha-bar at t, shaped to broadcast against ``like`` (batch first)."""
        if isinstance(t, torch.Tensor) and t.dim() > 0:
            ab = self.alphas_cumprod[t.cpu()].to(like.dtype).to(like.device)
            return ab.reshape(-1, *([1] * (like.dim() - 1)))
        return torch.tensor(float(self.alphas_cumprod[int(t)]), dtype=like.dtype, device=like.device)
