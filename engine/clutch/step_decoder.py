"""One-token-at-a-time T5 decoding with plain tensor ops over a ``T5ForConditionalGeneration``'s
own weights.

Why: the LM is small (d_model 192, 3 decoder layers), so a decoding step through transformers'
module stack was mostly Python and cache bookkeeping (5.8 ms per token on the loaded 2-core VM;
a 2 s clip is 66 tokens); stepped here, a token costs about what reading the weights costs. This decoder precomputes what
does not change during decoding (the cross-attention keys/values of the encoder output and the
decoder's relative-position bias, taken from the model's own ``compute_bias``), keeps the
self-attention cache in preallocated tensors, and runs each step as a short list of matmuls. The
logits equal transformers' (tests compare them step by step); ``MotionLM.decode`` uses it.

T5 facts it relies on (checked against the model by the tests): RMS layer norm without bias,
attention without 1/sqrt(d) scaling, the relative bias only in the first self-attention layer and
shared by all, no position bias in cross-attention, gated or plain feed-forward with the model's
activation, and the decoder output scaled by d_model^-0.5 before a tied output layer.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def output_scale(config) -> float | None:
    """The factor T5 applies to the decoder output before the output layer: d_model^-0.5 when that
    layer is tied to the embeddings (``scale_decoder_outputs`` in newer transformers), else None."""
    tied = getattr(config, "scale_decoder_outputs", config.tie_word_embeddings)
    return config.d_model ** -0.5 if tied else None


def _rms(x: torch.Tensor, norm) -> torch.Tensor:
    variance = x.float().pow(2).mean(-1, keepdim=True)
    return norm.weight * (x * torch.rsqrt(variance + norm.variance_epsilon))


class T5StepDecoder:
    """Incremental decoder for one batch: ``start`` once with the encoder output, then ``step``
    with each position's input token; returns the next-token logits (B, V) float32."""

    def __init__(self, t5):
        cfg = t5.config
        self.t5 = t5
        self.blocks = list(t5.get_decoder().block)
        self.final_norm = t5.get_decoder().final_layer_norm
        self.embed = t5.get_decoder().embed_tokens
        self.H, self.dk = cfg.num_heads, cfg.d_kv
        self.scale_out = output_scale(cfg)
        attn0 = self.blocks[0].layer[0].SelfAttention
        if not attn0.has_relative_attention_bias:
            raise ValueError("expected the first decoder self-attention layer to hold the relative position bias")
        self.scaling = float(getattr(attn0, "scaling", 1.0))
        self._row_cache: dict = {}
        # fused weights (one product instead of three / two): self-attention q|k|v, gated FF wi_0|wi_1
        self.qkv = [torch.cat([b.layer[0].SelfAttention.q.weight, b.layer[0].SelfAttention.k.weight,
                               b.layer[0].SelfAttention.v.weight]) for b in self.blocks]
        self.gated = all(hasattr(b.layer[-1].DenseReluDense, "wi_0") for b in self.blocks)
        self.wi = [torch.cat([b.layer[-1].DenseReluDense.wi_0.weight, b.layer[-1].DenseReluDense.wi_1.weight])
                   if self.gated else b.layer[-1].DenseReluDense.wi.weight for b in self.blocks]

    @torch.no_grad()
    def start(self, encoder_hidden: torch.Tensor, encoder_mask: torch.Tensor, max_len: int) -> None:
        """encoder_hidden (B, L, D), encoder_mask (B, L) bool/int (1 = attend); ``max_len`` decoder
        positions (the start token included) will be stepped at most."""
        B, L, _ = encoder_hidden.shape
        H, dk = self.H, self.dk
        self.B, self.max_len, self.pos = B, max_len, 0
        dt = encoder_hidden.dtype
        keep = encoder_mask.to(torch.bool)[:, None, None, :]  # (B, 1, 1, L)
        self.cross_mask = torch.zeros(keep.shape, dtype=dt, device=encoder_hidden.device).masked_fill(
            ~keep, torch.finfo(dt).min)
        self.cross_kv = []
        # rows that are one encoding repeated (candidates of one prompt, an expand()): project it once
        one = B > 1 and encoder_hidden.stride(0) == 0
        src = encoder_hidden[:1] if one else encoder_hidden
        n = src.shape[0]
        for blk in self.blocks:
            ca = blk.layer[1].EncDecAttention
            k = ca.k(src).view(n, L, H, dk).transpose(1, 2)  # (n, H, L, dk)
            v = ca.v(src).view(n, L, H, dk).transpose(1, 2)
            kT, v = k.transpose(-1, -2).contiguous(), v.contiguous()
            self.cross_kv.append((kT.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) if one else (kT, v))
        attn0 = self.blocks[0].layer[0].SelfAttention
        self.bias = attn0.compute_bias(max_len, max_len, device=encoder_hidden.device)[0].to(dt)  # (H, Q, K)
        self.k_cache = [torch.zeros(B, H, max_len, dk, dtype=dt, device=encoder_hidden.device) for _ in self.blocks]
        self.v_cache = [torch.zeros_like(c) for c in self.k_cache]

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B,) long at the next position -> logits (B, V) float32. ``allowed`` (V,) bool:
        only those ids get logits (the rest -inf), computed from their rows of the output layer
        alone - a constrained position (one motion stream's 512 ids, or the words) costs a
        fraction of the full 5 k-row product."""
        p = self.pos
        if p >= self.max_len:
            raise RuntimeError(f"decoded past the {self.max_len} positions given to start()")
        B, H, dk = self.B, self.H, self.dk
        x = self.embed(tokens)[:, None]  # (B, 1, D)
        bias = self.bias[None, :, p:p + 1, :p + 1]  # (1, H, 1, p + 1)
        for i, blk in enumerate(self.blocks):
            sa = blk.layer[0]
            h = _rms(x, sa.layer_norm)
            att = sa.SelfAttention
            qkv = F.linear(h[:, 0], self.qkv[i]).view(B, 3, H, dk)
            q = qkv[:, 0, :, None]  # (B, H, 1, dk)
            self.k_cache[i][:, :, p] = qkv[:, 1]
            self.v_cache[i][:, :, p] = qkv[:, 2]
            k, v = self.k_cache[i][:, :, :p + 1], self.v_cache[i][:, :, :p + 1]
            w = torch.softmax((q @ k.transpose(-1, -2)) * self.scaling + bias, -1, dtype=torch.float32).to(q.dtype)
            x = x + att.o((w @ v).transpose(1, 2).reshape(B, 1, H * dk))
            ca = blk.layer[1]
            h = _rms(x, ca.layer_norm)
            att = ca.EncDecAttention
            q = att.q(h).view(B, 1, H, dk).transpose(1, 2)
            kT, v = self.cross_kv[i]
            w = torch.softmax((q @ kT) * self.scaling + self.cross_mask, -1, dtype=torch.float32).to(q.dtype)
            x = x + att.o((w @ v).transpose(1, 2).reshape(B, 1, H * dk))
            ff = blk.layer[-1]
            h = _rms(x, ff.layer_norm)
            d = ff.DenseReluDense
            if self.gated:
                g, lin = F.linear(h, self.wi[i]).chunk(2, -1)
                h = d.act(g) * lin
            else:
                h = d.act(F.linear(h, self.wi[i]))
            x = x + F.linear(h, d.wo.weight)
        x = _rms(x, self.final_norm)
        if self.scale_out is not None:
            x = x * self.scale_out
        self.pos = p + 1
        if allowed is None:
            return self.t5.lm_head(x)[:, 0].float()
        rows, weight = self._rows(allowed)
        out = torch.full((B, allowed.shape[0]), float("-inf"), dtype=torch.float32, device=x.device)
        out[:, rows] = (x[:, 0] @ weight.T).float()
        return out

    def _rows(self, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, their output-layer rows) of an ``allowed`` mask, cached per mask tensor (the
        processors hand out the same few masks at every step)."""
        hit = self._row_cache.get(id(allowed))
        if hit is None or hit[0] is not allowed:  # (the entry keeps the mask alive, so its id is not reused)
            rows = allowed.to(self.t5.lm_head.weight.device).nonzero()[:, 0]
            hit = self._row_cache[id(allowed)] = (allowed, rows, self.t5.lm_head.weight[rows])
        return hit[1], hit[2]


__all__ = ["T5StepDecoder", "output_scale"]
