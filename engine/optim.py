"""A small L-BFGS with backtracking (Armijo) line search over a list of tensors.

Written here because constructing any ``torch.optim`` optimizer imports ``torch._dynamo``
(about 1 s once per process on these machines), which alone would break the interactive
IK budget. Pure torch; the objective is a closure returning a scalar loss with gradients.
"""
from __future__ import annotations

from typing import Callable

import torch


class LBFGS:
    """Minimise ``closure()`` (which must call ``backward``) over ``params``; one ``step`` = one iteration."""

    def __init__(self, params: list[torch.Tensor], history: int = 20, max_backtracks: int = 12):
        self.params = params
        self.history = history
        self.max_backtracks = max_backtracks
        self.s: list[torch.Tensor] = []
        self.y: list[torch.Tensor] = []
        self._loss: float | None = None
        self._grad: torch.Tensor | None = None

    def _flat_grad(self) -> torch.Tensor:
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in self.params])

    def _evaluate(self, closure: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
        for p in self.params:
            p.grad = None
        loss = float(closure().detach())
        return loss, self._flat_grad()

    @torch.no_grad()
    def _add(self, step: torch.Tensor, scale: float) -> None:
        offset = 0
        for p in self.params:
            n = p.numel()
            p.add_(step[offset:offset + n].view_as(p), alpha=scale)
            offset += n

    def step(self, closure: Callable[[], torch.Tensor]) -> float:
        """One quasi-Newton iteration; returns the loss after it."""
        if self._loss is None:
            with torch.enable_grad():
                self._loss, self._grad = self._evaluate(closure)
        g = self._grad
        # two-loop recursion: d = -H g
        q = -g.clone()
        alphas = []
        for s, y in zip(reversed(self.s), reversed(self.y)):
            a = float(s @ q) / float(y @ s)
            alphas.append(a)
            q -= a * y
        if self.s:
            q *= float(self.s[-1] @ self.y[-1]) / float(self.y[-1] @ self.y[-1])
        else:
            q /= max(float(g.abs().sum()), 1.0)  # a cautious first step
        for (s, y), a in zip(zip(self.s, self.y), reversed(alphas)):
            b = float(y @ q) / float(y @ s)
            q += (a - b) * s
        slope = float(g @ q)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            self.s.clear(), self.y.clear()
            q, slope = -g / max(float(g.abs().sum()), 1.0), -float(g @ g) / max(float(g.abs().sum()), 1.0)
        t = 1.0
        for _ in range(self.max_backtracks):
            self._add(q, t)
            with torch.enable_grad():
                loss, grad = self._evaluate(closure)
            if loss <= self._loss + 1e-4 * t * slope:
                break
            self._add(q, -t)
            t *= 0.5
        else:
            return self._loss  # no decrease found: stay where we are
        s, y = t * q, grad - g
        if float(y @ s) > 1e-12:
            self.s.append(s)
            self.y.append(y)
            if len(self.s) > self.history:
                self.s.pop(0), self.y.pop(0)
        self._loss, self._grad = loss, grad
        return loss
