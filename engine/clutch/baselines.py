"""The tokenizer baselines of CLUTCH Table 4, built with the same code as SHIFT and the same budget.

- standard VQ-VAE: one encoder / codebook / decoder over all 198 channels of both hands;
- part-decomposed (PD) VQ-VAE: one per hand (99 channels: trajectory and pose together).

Same budget means the same total number of codebook entries (4 x K: one codebook of 4K, or two of
2K) and about the same number of network parameters (conv parameters grow with width², so one
network gets 2x the SHIFT width and two networks get sqrt(2)x), at the same downsampling (8).
"""
from __future__ import annotations

from dataclasses import replace

from engine.clutch.shift import ShiftConfig, ShiftTokenizer


def _round8(x: float) -> int:
    return max(8, int(round(x / 8)) * 8)


def standard_config(shift: ShiftConfig = ShiftConfig()) -> ShiftConfig:
    """One VQ-VAE for both hands, all channels."""
    return replace(shift, layout="single", codebook_size=4 * shift.codebook_size, width=_round8(2 * shift.width))


def part_decomposed_config(shift: ShiftConfig = ShiftConfig()) -> ShiftConfig:
    """One VQ-VAE per hand."""
    return replace(shift, layout="hands", codebook_size=2 * shift.codebook_size,
                   width=_round8(2 ** 0.5 * shift.width))


def standard_vqvae(shift: ShiftConfig = ShiftConfig()) -> ShiftTokenizer:
    return ShiftTokenizer(standard_config(shift))


def part_decomposed_vqvae(shift: ShiftConfig = ShiftConfig()) -> ShiftTokenizer:
    return ShiftTokenizer(part_decomposed_config(shift))


TOKENIZERS = {"shift": lambda c: c, "pd": part_decomposed_config, "standard": standard_config}


def tokenizer_config(kind: str, shift: ShiftConfig = ShiftConfig()) -> ShiftConfig:
    """'shift' | 'pd' | 'standard' -> the config of that tokenizer at the budget of ``shift``."""
    if kind not in TOKENIZERS:
        raise ValueError(f"tokenizer must be one of {sorted(TOKENIZERS)}; got {kind!r}")
    return TOKENIZERS[kind](shift)
