"""SHIFT (CLUTCH §4.1): hand motion -> four streams of discrete tokens and back.

Four VQ-VAEs, one per part x modality: left/right trajectory (9-D per frame: 6-D global
rotation + translation) and left/right pose (90-D: 15 joints x 6-D). Each has its own 1-D conv
encoder (temporal downsampling 8), codebook and decoder. The same class also builds the two
ablation baselines of CLUTCH Table 4 through ``layout`` (see ``engine/clutch/baselines.py``):
``"single"`` (one VQ-VAE over all 198 channels) and ``"hands"`` (one per hand, 99 channels).

Length handling: a clip of T frames is padded to ``ceil(T / 8) * 8`` frames by repeating its
last frame, encoded to ``ceil(T / 8)`` tokens per stream (60 frames -> 8), and decoded to
``8 * tokens`` frames, which callers crop back to T (``decode(codes, frames=T)``).

Loss (paper eq. 1, on every stream): MSE reconstruction of the normalised parameters + codebook
term ||sg(z) - e||² + β·||z - sg(e)||² (commitment), plus a velocity loss on the reconstruction.
With ``ema=True`` (default) the codebook is not a trained parameter: it follows an exponential
moving average of the encoder outputs assigned to each code (the standard replacement for the
codebook term, which is then only logged), and codes whose usage decays below
``dead_threshold`` are reset to random encoder outputs of the current batch.

Residual trajectory levels (``traj_levels`` > 1, our addition): one 9-bit token per 8 frames
cannot hold an absolute wrist path to the issue's 10 mm (bench/shift_rate.py; docs/clutch.md), so
each trajectory stream may quantise its latent with L codebooks in turn, each coding what the
previous ones left (residual VQ). Every level is its own token stream for the LM
(``streams``: tl, tl2, .. tlL, pl, tr, tr2, .., pr): coarse before fine at each step, each with its
own id range, so the vocabulary, constrained decoding and refinement need no special case.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.diffusion.representation import HAND_CHANNELS, NUM_ROT_CHANNELS, compute_stats

DOWNSAMPLE = 8  # frames per token (three stride-2 stages)
HANDS = ("l", "r")
STREAMS = ("tl", "pl", "tr", "pr")  # the SHIFT streams, in interleaving order (see vocab.py)
LAYOUTS = ("shift", "hands", "single")


def _trajectory_channels(hand: int) -> list[int]:
    """Indices into the flattened (2*99) frame: global_orient 6-D + transl 3."""
    base = hand * HAND_CHANNELS
    return [base + i for i in range(6)] + [base + NUM_ROT_CHANNELS + i for i in range(3)]


def _pose_channels(hand: int) -> list[int]:
    base = hand * HAND_CHANNELS
    return [base + i for i in range(6, NUM_ROT_CHANNELS)]


def layout_parts(layout: str) -> dict[str, list[int]]:
    """Stream name -> channel indices of the flattened (198,) frame, for a tokenizer layout."""
    if layout == "shift":
        return {"tl": _trajectory_channels(0), "pl": _pose_channels(0),
                "tr": _trajectory_channels(1), "pr": _pose_channels(1)}
    if layout == "hands":
        return {"l": list(range(HAND_CHANNELS)), "r": list(range(HAND_CHANNELS, 2 * HAND_CHANNELS))}
    if layout == "single":
        return {"all": list(range(2 * HAND_CHANNELS))}
    raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}")


@dataclass(frozen=True)
class ShiftConfig:
    """Defaults sized to our corpus (~20,000 two-second clips, 8 tokens per stream per clip, so
    ~160 k code assignments per stream per epoch). The paper's 4096 x 64 codebooks serve 32 k
    in-the-wild clips of varying length; with our mostly procedural, lower-entropy motion a 4096
    codebook would see ~40 assignments per code per epoch and leave most codes dead, and every
    code is also an LM output class (4 x K rows of the T5 softmax, which costs CPU time per
    step). 512 codes x 64 dims keeps ~300 assignments per code per epoch, a 2,048-token motion
    vocabulary for the LM, and 9 bits per token; dead-code reset keeps usage high.
    ``width`` 64 with 2 residual blocks per stage: ~0.33 M parameters per stream (1.3 M in all),
    ~280 training samples/s with 1 thread on the 2-core CPU (width 128: 3.3 M, ~100 samples/s;
    2 threads were 5-25x slower while other processes held a core)."""

    layout: str = "shift"
    codebook_size: int = 512
    code_dim: int = 64
    width: int = 64
    res_blocks: int = 2
    beta: float = 0.25  # commitment weight (eq. 1)
    ema: bool = True
    ema_decay: float = 0.99
    dead_threshold: float = 0.03  # EMA assignments per step below which a code is reset
    w_vel: float = 0.5  # velocity loss weight (normalised units)
    w_transl: float = 1.0  # weight of the wrist-translation channels in the reconstruction loss
    traj_levels: int = 1  # residual codebooks per trajectory stream (1 = the paper's one token per step)
    frames: int = 60  # training window

    def __post_init__(self):
        layout_parts(self.layout)
        for name in ("codebook_size", "code_dim", "width", "frames", "traj_levels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1); got {self.ema_decay}")
        if self.traj_levels > 1 and self.layout != "shift":
            raise ValueError(f"traj_levels > 1 needs the 'shift' layout (trajectory streams); got {self.layout!r}")
        if self.w_transl <= 0:
            raise ValueError(f"w_transl must be > 0; got {self.w_transl}")

    @property
    def levels(self) -> dict[str, tuple[str, ...]]:
        """Encoder part -> its token streams: the part itself, then its residual levels 2..L."""
        return {p: (p,) + tuple(f"{p}{k}" for k in range(2, (self.traj_levels if p in ("tl", "tr") else 1) + 1))
                for p in layout_parts(self.layout)}

    @property
    def streams(self) -> tuple[str, ...]:
        """Token streams in interleaving order (one token each per step)."""
        return tuple(s for lv in self.levels.values() for s in lv)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ShiftConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"shift config has unknown fields {unknown}")
        return cls(**d)


def tokens_for(frames: int) -> int:
    """Tokens per stream for a clip of ``frames`` frames (after edge padding)."""
    return math.ceil(frames / DOWNSAMPLE)


def pad_frames(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> (B, 8*ceil(T/8), C) by repeating the last frame."""
    T = x.shape[1]
    extra = tokens_for(T) * DOWNSAMPLE - T
    if extra == 0:
        return x
    return torch.cat([x, x[:, -1:].expand(-1, extra, -1)], 1)


class ResBlock(nn.Module):
    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv1d(width, width, 1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


def _res_stack(width: int, n: int) -> list[nn.Module]:
    return [ResBlock(width, 3 ** (i % 3)) for i in range(n)]


class Encoder(nn.Module):
    """(B, C, T) -> (B, D, T/8): conv in, 3 x (stride-2 conv + dilated residual blocks), conv out."""

    def __init__(self, channels: int, c: ShiftConfig):
        super().__init__()
        layers = [nn.Conv1d(channels, c.width, 3, padding=1), nn.ReLU()]
        for _ in range(3):
            layers += [nn.Conv1d(c.width, c.width, 4, stride=2, padding=1), *_res_stack(c.width, c.res_blocks)]
        layers += [nn.Conv1d(c.width, c.code_dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    """(B, D, N) -> (B, C, 8N): mirror of the encoder with nearest upsampling."""

    def __init__(self, channels: int, c: ShiftConfig):
        super().__init__()
        layers = [nn.Conv1d(c.code_dim, c.width, 3, padding=1), nn.ReLU()]
        for _ in range(3):
            layers += [*_res_stack(c.width, c.res_blocks), nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv1d(c.width, c.width, 3, padding=1)]
        layers += [nn.ReLU(), nn.Conv1d(c.width, channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


def code_stats(codes: torch.Tensor, size: int) -> tuple[float, float]:
    """codes (...,) -> (usage: fraction of the codebook used, perplexity of the code histogram)."""
    counts = torch.bincount(codes.reshape(-1), minlength=size).float()
    p = counts / counts.sum().clamp_min(1)
    perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum())
    return float((counts > 0).float().mean()), float(perplexity)


class Quantizer(nn.Module):
    """Nearest-neighbour vector quantizer with EMA updates and dead-code reset."""

    def __init__(self, c: ShiftConfig):
        super().__init__()
        self.size, self.dim, self.ema = c.codebook_size, c.code_dim, c.ema
        self.decay, self.dead_threshold = c.ema_decay, c.dead_threshold
        self.codebook = nn.Parameter(torch.randn(c.codebook_size, c.code_dim) * 0.1, requires_grad=not c.ema)
        self.register_buffer("cluster_size", torch.ones(c.codebook_size))  # EMA assignments per step
        self.register_buffer("embed_sum", self.codebook.detach().clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.last_reset = 0  # codes reset at the last training step (for tests and logs)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """z (M, D) -> codes (M,)."""
        e = self.codebook.detach()
        d = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(1)[None]
        return d.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (B, N) -> latents (B, D, N)."""
        return F.embedding(codes, self.codebook).transpose(1, 2)

    def soft_lookup(self, weights: torch.Tensor) -> torch.Tensor:
        """weights (B, N, K) (one-hot or soft) -> latents (B, D, N); differentiable in weights."""
        return (weights @ self.codebook).transpose(1, 2)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        if not bool(self.initialised):  # start the codebook on data (k-means++-free, but no dead start)
            idx = torch.randint(0, flat.shape[0], (self.size,), device=flat.device)
            self.codebook.data.copy_(flat[idx] + 1e-3 * torch.randn_like(flat[idx]))
            self.embed_sum.copy_(self.codebook.data)
            self.cluster_size.fill_(1.0)
            self.initialised.fill_(True)
            return
        onehot = F.one_hot(codes, self.size).type_as(flat)  # (M, K)
        if self.ema:
            self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
            self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
            n = self.cluster_size.sum()
            smoothed = (self.cluster_size + 1e-5) / (n + self.size * 1e-5) * n
            self.codebook.data.copy_(self.embed_sum / smoothed[:, None])
        else:
            self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        dead = self.cluster_size < self.dead_threshold
        self.last_reset = int(dead.sum())
        if self.last_reset:
            idx = torch.randint(0, flat.shape[0], (self.last_reset,), device=flat.device)
            fresh = flat[idx] + 1e-3 * torch.randn_like(flat[idx])
            self.codebook.data[dead] = fresh
            self.embed_sum[dead] = fresh
            self.cluster_size[dead] = 1.0

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """z (B, D, N) -> straight-through latents (B, D, N), codes (B, N), losses {codebook, commit}."""
        B, D, N = z.shape
        flat = z.transpose(1, 2).reshape(-1, D)  # (B*N, D)
        codes = self.nearest(flat.detach())
        if self.training:
            self._update(flat.detach(), codes)
            codes = self.nearest(flat.detach())
        q = F.embedding(codes, self.codebook)  # (B*N, D)
        losses = {"codebook": F.mse_loss(q, flat.detach()), "commit": F.mse_loss(flat, q.detach())}
        st = flat + (q - flat).detach()
        return st.reshape(B, N, D).transpose(1, 2), codes.reshape(B, N), losses


class ShiftTokenizer(nn.Module):
    """Motion (B, T, 2, 99) raw representation <-> codes {stream: (B, ceil(T/8))}.

    Normalisation stats (x_mean, x_std (2, 99)) are buffers, so they travel in the checkpoint."""

    def __init__(self, config: ShiftConfig = ShiftConfig()):
        super().__init__()
        self.config = config
        self.parts = layout_parts(config.layout)
        self.encoders = nn.ModuleDict({s: Encoder(len(ch), config) for s, ch in self.parts.items()})
        self.decoders = nn.ModuleDict({s: Decoder(len(ch), config) for s, ch in self.parts.items()})
        self.levels = config.levels
        self.quantizers = nn.ModuleDict({s: Quantizer(config) for s in config.streams})
        for s, ch in self.parts.items():
            self.register_buffer(f"channels_{s}", torch.tensor(ch, dtype=torch.long), persistent=False)
        self.register_buffer("x_mean", torch.zeros(2, HAND_CHANNELS))
        self.register_buffer("x_std", torch.ones(2, HAND_CHANNELS))
        w = torch.ones(2, HAND_CHANNELS)
        w[:, NUM_ROT_CHANNELS:] = config.w_transl
        self.register_buffer("recon_weight", w / w.mean(), persistent=False)  # mean 1: w_transl 1 = plain MSE

    @property
    def streams(self) -> tuple[str, ...]:
        """Token streams (``ShiftConfig.streams``): the encoder parts and their residual levels."""
        return self.config.streams

    def quantize(self, part: str, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict]:
        """One part's latent (B, D, N) -> (straight-through quantised latent, codes {stream: (B, N)},
        losses {codebook, commit}). With residual levels each codebook quantises what the previous
        ones left (EMA updates on the detached residual); the commitment pulls the encoder output
        towards the sum of all levels."""
        names = self.levels[part]
        if len(names) == 1:
            st, codes, losses = self.quantizers[part](z)
            return st, {part: codes}, losses
        residual, total, codes, codebook = z.detach(), torch.zeros_like(z), {}, z.new_zeros(())
        for s in names:
            _, codes[s], lv = self.quantizers[s](residual)
            q = self.quantizers[s].lookup(codes[s])
            total, residual, codebook = total + q, residual - q, codebook + lv["codebook"]
        losses = {"codebook": codebook, "commit": F.mse_loss(z, total.detach())}
        return z + (total - z).detach(), codes, losses

    def nearest_codes(self, part: str, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inference: one part's latent (B, D, N) -> codes {stream: (B, N)} (residual over the levels)."""
        B, D, N = z.shape
        residual, out = z.transpose(1, 2).reshape(-1, D), {}
        for s in self.levels[part]:
            c = self.quantizers[s].nearest(residual)
            out[s] = c.reshape(B, N)
            residual = residual - self.quantizers[s].codebook[c]
        return out

    def set_stats(self, x: torch.Tensor) -> None:
        """x (N, T, 2, 99) raw training clips -> store normalisation stats."""
        mean, std = compute_stats(x)
        self.x_mean.copy_(mean)
        self.x_std.copy_(std)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.x_std + self.x_mean

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[2:] != (2, HAND_CHANNELS):
            raise ValueError(f"motion must have shape (B, T, 2, {HAND_CHANNELS}); got {tuple(x.shape)}")
        if x.shape[1] < 1:
            raise ValueError("motion must have at least 1 frame")

    def latents(self, x_n: torch.Tensor) -> dict[str, torch.Tensor]:
        """Normalised motion (B, T, 2, 99) -> encoder outputs {stream: (B, D, ceil(T/8))}."""
        flat = pad_frames(x_n.flatten(2))  # (B, T', 198)
        return {s: self.encoders[s](flat[..., getattr(self, f"channels_{s}")].transpose(1, 2)) for s in self.parts}

    def decode_latents(self, z: dict[str, torch.Tensor], frames: int | None = None) -> torch.Tensor:
        """Quantised latents {stream: (B, D, N)} -> normalised motion (B, frames or 8N, 2, 99)."""
        parts = {s: self.decoders[s](z[s]).transpose(1, 2) for s in self.parts}  # (B, 8N, C_s)
        B, T = next(iter(parts.values())).shape[:2]
        out = next(iter(parts.values())).new_zeros(B, T, 2 * HAND_CHANNELS)
        for s, y in parts.items():
            out[..., getattr(self, f"channels_{s}")] = y
        out = out.reshape(B, T, 2, HAND_CHANNELS)
        if frames is not None:
            if not 1 <= frames <= T:
                raise ValueError(f"frames must be 1..{T} for {T // DOWNSAMPLE} tokens; got {frames}")
            out = out[:, :frames]
        return out

    def forward(self, x: torch.Tensor) -> dict:
        """Raw motion (B, T, 2, 99) -> {"recon": raw (B, T, 2, 99), "codes", "losses", "stats"}.

        Losses follow eq. 1 per stream + velocity; ``losses["total"]`` is what training minimises."""
        self._check(x)
        T = x.shape[1]
        x_n = self.normalize(x)
        z = self.latents(x_n)
        zq, codes, vq = {}, {}, {}
        for p in self.parts:
            zq[p], c, vq[p] = self.quantize(p, z[p])
            codes.update(c)
        y_n = self.decode_latents(zq, T)
        losses = {"recon": ((y_n - x_n) ** 2 * self.recon_weight).mean(),
                  "vel": F.mse_loss(y_n.diff(dim=1), x_n.diff(dim=1)) if T > 1 else y_n.sum() * 0}
        losses["codebook"] = sum(vq[s]["codebook"] for s in self.parts)
        losses["commit"] = sum(vq[s]["commit"] for s in self.parts)
        c = self.config
        losses["total"] = (losses["recon"] + c.w_vel * losses["vel"] + c.beta * losses["commit"]
                           + (0.0 if c.ema else losses["codebook"]))
        stats = {}
        for s in self.streams:
            stats[f"usage_{s}"], stats[f"perplexity_{s}"] = code_stats(codes[s], c.codebook_size)
            stats[f"reset_{s}"] = self.quantizers[s].last_reset
        return {"recon": self.denormalize(y_n), "codes": codes, "losses": losses, "stats": stats}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw motion (B, T, 2, 99) -> codes {stream: (B, ceil(T/8)) long}."""
        self._check(x)
        z = self.latents(self.normalize(x))
        out = {}
        for p in self.parts:
            out.update(self.nearest_codes(p, z[p]))
        return out

    def decode(self, codes: dict[str, torch.Tensor], frames: int | None = None) -> torch.Tensor:
        """Codes {stream: (B, N)} -> raw motion (B, frames or 8N, 2, 99)."""
        missing = [s for s in self.streams if s not in codes]
        if missing:
            raise ValueError(f"codes are missing streams {missing}; need {list(self.streams)}")
        K = self.config.codebook_size
        for s in self.streams:
            c = codes[s]
            if c.dim() != 2 or c.shape != codes[self.streams[0]].shape or c.shape[1] < 1:
                raise ValueError(f"codes[{s!r}] must be (B, N>=1) like the other streams; got {tuple(c.shape)}")
            if c.min() < 0 or c.max() >= K:
                raise ValueError(f"codes[{s!r}] must lie in 0..{K - 1}; got {int(c.min())}..{int(c.max())}")
        z = {p: sum(self.quantizers[s].lookup(codes[s]) for s in lv) for p, lv in self.levels.items()}
        return self.denormalize(self.decode_latents(z, frames))

    def decode_soft(self, weights: dict[str, torch.Tensor], frames: int | None = None) -> torch.Tensor:
        """(Gumbel) one-hot weights {stream: (B, N, K)} -> raw motion; differentiable in the weights."""
        z = {p: sum(self.quantizers[s].soft_lookup(weights[s]) for s in lv) for p, lv in self.levels.items()}
        return self.denormalize(self.decode_latents(z, frames))


__all__ = ["ShiftConfig", "ShiftTokenizer", "Quantizer", "save_shift", "load_shift", "STREAMS", "DOWNSAMPLE", "LAYOUTS", "layout_parts",
           "tokens_for", "pad_frames", "code_stats"]


# --- checkpoints -----------------------------------------------------------------------------
SHIFT_FORMAT = "hand-studio-clutch-shift"


def save_shift(folder, model: ShiftTokenizer, meta: dict | None = None):
    """Folder: model.safetensors (weights, codebooks, EMA state, normalisation stats) + config.json."""
    import json
    from pathlib import Path

    from engine.diffusion.checkpoint import save_tensors, write_folder_atomically
    config = {"format": SHIFT_FORMAT, "version": 1, "shift": model.config.to_dict(), "meta": meta or {}}

    def write(tmp):
        save_tensors(tmp / "model.safetensors", model.state_dict())
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
    return write_folder_atomically(Path(folder), write)


def load_shift(folder, device="cpu") -> tuple[ShiftTokenizer, dict]:
    """-> (tokenizer in eval mode, config dict with ``meta``)."""
    from pathlib import Path

    from engine.clutch.language_model import read_config
    from engine.diffusion.checkpoint import CheckpointError, load_tensors
    folder = Path(folder)
    config = read_config(folder, SHIFT_FORMAT)
    try:
        model = ShiftTokenizer(ShiftConfig.from_dict(config["shift"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / 'config.json'}: bad SHIFT config ({e})") from None
    try:
        model.load_state_dict(load_tensors(folder / "model.safetensors"), strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{folder / 'model.safetensors'}: weights do not match the config ({str(e)[:300]})") from None
    return model.to(device).eval(), config
