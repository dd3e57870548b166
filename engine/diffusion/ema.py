"""Exponential moving average of a model's weights (the sampler uses the EMA copy)."""
from __future__ import annotations

import torch
from torch import nn


class EMA:
    """shadow = decay * shadow + (1 - decay) * weights, with a warm-up so early steps count."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.num_updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Average the parameters; copy buffers (normalisation stats are not to be averaged)."""
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        params = {k for k, _ in model.named_parameters()}
        for k, v in model.state_dict().items():
            if k in params and v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def copy_to(self, model: nn.Module) -> None:
        model.load_state_dict(self.shadow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor], num_updates: int) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"EMA state does not match the model; differing keys {sorted(missing)[:5]}")
        for k in self.shadow:
            self.shadow[k].copy_(state[k])
        self.num_updates = num_updates
