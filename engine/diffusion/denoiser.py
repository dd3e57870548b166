"""The bimanual denoiser: noisy motion + timestep + three texts -> predicted clean motion (x0).

HandX §5.1: the three prompts (whole motion, left hand, right hand) are encoded separately, each
with its own learnable CLS token, cross-attended by the motion tokens and fused residually:
``z = z + sum_k CrossAttn(z, T_k)``. Here the three cross-attentions run as ONE batched attention
(branches folded into the batch, separate softmax per branch, outputs summed), with a learned
branch-type embedding on each branch's tokens and a learned null token per branch for an empty or
dropped prompt (the classifier-free-guidance null path). Motion enters as 2-frame temporal patches
(30 tokens for a 2 s window) plus a timestep token.

Why this shape (2-core CPU, torch 2.13, 60 frames x 198 ch, d=256, 4 layers): a decoder run once
per text branch (3 passes) cost 47-55 ms per guided step; one pass with the branches batched 19 ms;
with 2-frame patches this model's guided step (cond + uncond as one batch of 2) is 9.2 ms with 1
thread (5.9 ms with 2 on an idle machine), so 10 DDIM steps + text encoding make a 2 s clip in
~0.11 s. Cross-attention to ~3 x 12 text tokens costs < 5 % of the FFN FLOPs (N*M*d vs N*8d^2), so
token-level conditioning (HandX) is kept rather than one pooled vector per prompt. 4.66 M parameters,
4.92 M with the skip path (a 396 x 396 linear map per patch and its timestep gate: about 4 % of the FLOPs).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

BRANCHES = ("text", "left", "right")


@dataclass(frozen=True)
class DenoiserConfig:
    hand_channels: int = 99  # per hand: 16 x 6D rotation + transl
    frames: int = 60  # training window; sequences may be shorter, never longer
    patch: int = 2  # frames per motion token
    d_model: int = 256
    layers: int = 4
    heads: int = 4
    ffn: int = 1024
    dropout: float = 0.1
    text_dim: int = 384  # MiniLM token states
    max_text_tokens: int = 32
    # a linear path from each x_t patch to its x0 patch, gated per channel by the timestep (zero at
    # init): the 396 -> 256 patch embedding loses detail that x_t still holds at low noise (v4 without
    # it: x0 from a clean input keeps 82 % of the keypoint speed; see MODEL_CARD "Where the calm came from").
    # Off by default: added to a trained model by a fine-tune (train diffusion --add-skip); from scratch
    # at a high LR it slowed a tiny model's first steps (total loss 13.4 against 4.0 after 12 steps at 3e-3)
    skip: bool = False

    def __post_init__(self):
        if self.frames % self.patch:
            raise ValueError(f"frames ({self.frames}) must be a multiple of patch ({self.patch})")
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DenoiserConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"denoiser config has unknown fields {unknown}")
        return cls(**known)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """t (B,) -> (B, dim) sinusoidal."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


class Block(nn.Module):
    """Pre-LN: self-attention over motion tokens, per-branch text cross-attention summed, MLP."""

    def __init__(self, c: DenoiserConfig):
        super().__init__()
        self.heads, self.dropout = c.heads, c.dropout
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.qkv = nn.Linear(c.d_model, 3 * c.d_model)
        self.attn_out = nn.Linear(c.d_model, c.d_model)
        self.q_x = nn.Linear(c.d_model, c.d_model)
        self.kv_x = nn.Linear(c.d_model, 2 * c.d_model)
        self.cross_out = nn.Linear(c.d_model, c.d_model)
        self.mlp = nn.Sequential(nn.Linear(c.d_model, c.ffn), nn.GELU(), nn.Linear(c.ffn, c.d_model))
        self.drop = nn.Dropout(c.dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        return x.reshape(B, N, self.heads, D // self.heads).transpose(1, 2)  # (B, H, N, dh)

    def forward(self, z: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """z (B, N, D); memory (B, K, M, D); memory_mask (B, K, M) True = attend."""
        B, N, D = z.shape
        K, M = memory.shape[1:3]
        p = self.dropout if self.training else 0.0
        q, k, v = (self._split(t) for t in self.qkv(self.ln1(z)).chunk(3, dim=-1))
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p)  # (B, H, N, dh)
        z = z + self.drop(self.attn_out(a.transpose(1, 2).reshape(B, N, D)))
        # HandX's per-branch cross-attention, the K branches folded into the batch
        q = self._split(self.q_x(self.ln2(z)))  # (B, H, N, dh)
        q = q[:, None].expand(B, K, *q.shape[1:]).reshape(B * K, *q.shape[1:])  # (B*K, H, N, dh)
        kv = self.kv_x(memory).reshape(B * K, M, 2 * D)
        k, v = (self._split(t) for t in kv.chunk(2, dim=-1))  # (B*K, H, M, dh)
        mask = memory_mask.reshape(B * K, 1, 1, M)
        c = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B*K, H, N, dh)
        c = c.transpose(1, 2).reshape(B, K, N, D).sum(1)  # residual fusion of the branches
        z = z + self.drop(self.cross_out(c))
        return z + self.drop(self.mlp(self.ln3(z)))


class Denoiser(nn.Module):
    """x_t (B, T, 2, 99) normalised, t (B,), condition -> x0 (B, T, 2, 99) normalised.

    ``x_mean``/``x_std`` (2, 99) are the representation's normalisation stats, kept as buffers so
    the checkpoint carries them; the pipeline and training script (de)normalise with them.
    """

    def __init__(self, config: DenoiserConfig = DenoiserConfig()):
        super().__init__()
        self.config = c = config
        D, P = c.d_model, c.patch
        self.register_buffer("x_mean", torch.zeros(2, c.hand_channels))
        self.register_buffer("x_std", torch.ones(2, c.hand_channels))
        self.motion_in = nn.Linear(P * 2 * c.hand_channels, D)
        self.pos = nn.Parameter(torch.zeros(1, 1 + c.frames // P, D))
        self.time_mlp = nn.Sequential(nn.Linear(D, D), nn.SiLU(), nn.Linear(D, D))
        self.text_in = nn.Linear(c.text_dim, D)
        self.cls = nn.Parameter(torch.zeros(len(BRANCHES), D))  # per-branch learnable CLS (HandX)
        self.null = nn.Parameter(torch.zeros(len(BRANCHES), D))  # per-branch "no text" token
        self.branch = nn.Parameter(torch.zeros(len(BRANCHES), D))  # branch-type embedding
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.ln_out = nn.LayerNorm(D)
        self.motion_out = nn.Linear(D, P * 2 * c.hand_channels)
        if c.skip:
            self.skip_out = nn.Linear(P * 2 * c.hand_channels, P * 2 * c.hand_channels)  # x_t patch -> x0 patch
            self.skip_gate = nn.Linear(D, P * 2 * c.hand_channels)  # timestep -> per-channel gain (1 + gate)
        self.apply(self._init)
        for p in (self.pos, self.cls, self.null, self.branch):
            nn.init.normal_(p, std=0.02)
        zero = [self.motion_out] + ([self.skip_out, self.skip_gate] if c.skip else [])
        for m in zero:  # a fresh model predicts 0; an added skip path leaves a fine-tuned base's output as it was
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def encode_condition(self, tokens: torch.Tensor, token_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Text token states (B, 3, L, 384) + mask (B, 3, L) -> memory (B, 3, L+2, D), mask (B, 3, L+2).

        Each branch is [CLS_k, NULL_k, tokens...] + branch embedding; NULL_k is attended only when
        the branch has no tokens (empty prompt, or dropped for classifier-free guidance). Run once
        per generation; the sampler reuses the memory at every step.
        """
        B, K, L, _ = tokens.shape
        if K != len(BRANCHES):
            raise ValueError(f"text tokens must have {len(BRANCHES)} branches {BRANCHES}; got {K}")
        if L > self.config.max_text_tokens:
            raise ValueError(f"text has {L} tokens; the model takes at most {self.config.max_text_tokens}")
        tok = self.text_in(tokens)  # (B, 3, L, D)
        cls = self.cls[None, :, None].expand(B, K, 1, -1)
        null = self.null[None, :, None].expand(B, K, 1, -1)
        memory = torch.cat([cls, null, tok], 2) + self.branch[None, :, None]  # (B, 3, L+2, D)
        empty = ~token_mask.any(-1, keepdim=True)  # (B, 3, 1)
        mask = torch.cat([torch.ones_like(empty), empty, token_mask], -1)  # (B, 3, L+2)
        return memory, mask

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, memory: torch.Tensor,
                memory_mask: torch.Tensor) -> torch.Tensor:
        B, T = x_t.shape[:2]
        c = self.config
        if T % c.patch or T > c.frames:
            raise ValueError(f"motion length must be a multiple of {c.patch} up to {c.frames}; got {T}")
        n = T // c.patch
        patches = x_t.reshape(B, n, -1)  # (B, n, P*198)
        z = self.motion_in(patches)  # (B, n, D)
        tt = self.time_mlp(timestep_embedding(t, c.d_model))[:, None]  # (B, 1, D)
        z = torch.cat([tt, z], 1) + self.pos[:, : n + 1]  # (B, n+1, D)
        for block in self.blocks:
            z = block(z, memory, memory_mask)
        out = self.motion_out(self.ln_out(z[:, 1:]))  # (B, n, P*198)
        if c.skip:
            out = out + (1 + self.skip_gate(tt)) * self.skip_out(patches)
        return out.reshape(B, T, 2, c.hand_channels)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
