"""Geometric refinement (CLUTCH §4.2, appendix A): a reconstruction loss in motion space for the LM.

The LM's logits at the motion positions of a text->motion answer are sliced to the id range of
the SHIFT stream due at each position (the same ranges constrained decoding allows), turned into
straight-through Gumbel-Softmax one-hots (``hard=True``: the forward pass uses discrete tokens,
the backward pass the soft relaxation), multiplied into the frozen SHIFT codebooks and decoded
by the frozen SHIFT decoders. The loss compares the decoded MANO parameters (normalised 6-D
representation) and forward-kinematics keypoints with the ground truth:
    L = alpha * L_LM + lambda * L_rec,   alpha = lambda = 0.5 by default;
masked-prediction samples (motion tokens partly replaced by ``<motion_mask>`` in the input)
carry alpha = 0, so only the reconstruction supervises them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.diffusion.representation import keypoints_from_rep

JOINT_UNIT = 0.02  # keypoint errors in units of 2 cm, as in the diffusion model's losses


@dataclass(frozen=True)
class RefineConfig:
    alpha: float = 0.5  # weight of the LM cross-entropy
    lam: float = 0.5  # weight of the reconstruction loss
    tau: float = 1.0  # Gumbel-Softmax temperature
    w_joints: float = 1.0  # keypoints vs parameters inside L_rec
    p_masked: float = 0.25  # share of a batch given as masked-prediction samples (alpha = 0)
    mask_ratio: float = 0.4  # share of the input motion tokens masked in those samples


def freeze(module: torch.nn.Module) -> torch.nn.Module:
    """Eval mode and no gradients for any parameter (the SHIFT tokenizer during refinement)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def motion_logits(logits: torch.Tensor, vocab, steps: int) -> dict[str, torch.Tensor]:
    """Decoder logits (B, M, V) of a ``<som> m_1 .. m_4N <eom>`` answer -> {stream: (B, N, K)}."""
    S = len(vocab.streams)
    if logits.shape[1] < S * steps + 1:
        raise ValueError(f"logits cover {logits.shape[1]} positions; a {steps}-step motion needs {S * steps + 2}")
    body = logits[:, 1:1 + S * steps]  # (B, S*N, V)
    out = {}
    for k, s in enumerate(vocab.streams):
        r = vocab.stream_range(k)
        out[s] = body[:, k::S, r.start:r.stop]
    return out


def gumbel_decode(logits: torch.Tensor, vocab, shift, steps: int, frames: int | None = None,
                  tau: float = 1.0, hard: bool = True) -> torch.Tensor:
    """LM logits -> straight-through Gumbel one-hots -> frozen SHIFT -> raw motion (B, frames, 2, 99)."""
    weights = {s: F.gumbel_softmax(lg.float(), tau=tau, hard=hard, dim=-1)
               for s, lg in motion_logits(logits, vocab, steps).items()}
    return shift.decode_soft(weights, frames)


def per_sample_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, M, V), (B, M) with -100 ignored -> (B,) mean cross-entropy per sample."""
    ce = F.cross_entropy(logits.transpose(1, 2).float(), labels, ignore_index=-100, reduction="none")  # (B, M)
    n = (labels != -100).sum(1).clamp_min(1)
    return ce.sum(1) / n


def refine_losses(lm, shift, hands, input_ids, attention_mask, labels, x_gt, betas, j_gt, alpha_per_sample,
                  cfg: RefineConfig = RefineConfig()) -> dict[str, torch.Tensor]:
    """One refinement batch. labels (B, 4N+2): the ``<som> .. <eom>`` answer (+ -100 padding);
    x_gt (B, T, 2, 99) raw; betas (B, 2, 10); j_gt (B, T, 2, 21, 3); alpha_per_sample (B,)."""
    S = len(lm.vocab.streams)
    steps = (labels.shape[1] - 2) // S
    out = lm(input_ids, attention_mask, labels=labels)
    ce = per_sample_ce(out.logits, labels)  # (B,)
    x_hat = gumbel_decode(out.logits, lm.vocab, shift, steps, x_gt.shape[1], cfg.tau, hard=True)
    rec_param = (shift.normalize(x_hat) - shift.normalize(x_gt)).pow(2).mean()
    j_hat = keypoints_from_rep(hands, x_hat, betas)
    rec_joints = ((j_hat - j_gt) / JOINT_UNIT).pow(2).sum(-1).mean()
    rec = rec_param + cfg.w_joints * rec_joints
    lm_term = (alpha_per_sample * ce).mean()
    return {"lm": ce.mean(), "rec_param": rec_param, "rec_joints": rec_joints, "rec": rec,
            "total": lm_term + cfg.lam * rec}


__all__ = ["RefineConfig", "freeze", "gumbel_decode", "motion_logits", "refine_losses", "keypoints_from_rep",
           "per_sample_ce"]
