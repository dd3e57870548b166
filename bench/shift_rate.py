"""Rate-distortion probe for SHIFT's trajectory streams (issue 8: why MPJPE stays above 10 mm).

Trains one trajectory VQ-VAE (SHIFT's Encoder / Quantizer / Decoder, downsampling 8) on both
hands' 9-D trajectory streams (6-D global rotation + translation, normalised like SHIFT) for each
quantizer variant, then prints the wrist-translation error (mm, mean over frames of the test
split's first ``--test`` clips x 2 hands) and the 6-D rotation MSE (normalised units).

Variants (``NAME[,key=value...]``): ``K`` codes per level (default 512), ``levels`` residual
levels (each level quantises what the previous ones left; ``K2`` sets the size of levels 2+),
``wt`` the weight of the translation channels in the loss, ``width`` the conv width, ``anchor``
the size of a per-clip anchor codebook (0: none): each clip's mean wrist translation is quantised
once per clip (k-means codebook, ``alevels`` residual levels) and the 8-frame tokens only encode
the translation relative to it, so a token no longer has to repeat the clip's offset.

    python bench/shift_rate.py --data CORPUS --steps 3000 base flat4096,K=4096 rvq2,levels=2

Numbers from this script are in docs/clutch.md ("How many bits a trajectory token needs").
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from engine.clutch.shift import Decoder, Encoder, Quantizer, ShiftConfig, _trajectory_channels, pad_frames
from engine.diffusion.representation import NUM_ROT_CHANNELS, compute_stats
from engine.training.train_clutch import load_split


def trajectories(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Raw clips (N, T, 2, 99) -> normalised trajectory streams of both hands (2N, T, 9)."""
    xn = ((x - mean) / std).flatten(2)
    return torch.cat([xn[..., _trajectory_channels(0)], xn[..., _trajectory_channels(1)]], 0)


class TrajectoryVQ(nn.Module):
    def __init__(self, K: int, levels: int, K2: int, width: int):
        super().__init__()
        c, c2 = ShiftConfig(codebook_size=K, width=width), ShiftConfig(codebook_size=K2, width=width)
        self.enc, self.dec = Encoder(9, c), Decoder(9, c)
        self.quantizers = nn.ModuleList([Quantizer(c)] + [Quantizer(c2) for _ in range(levels - 1)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, 9) -> (reconstruction (B, T, 9), commitment loss)."""
        z = self.enc(pad_frames(x).transpose(1, 2))  # (B, D, N)
        residual, total = z, torch.zeros_like(z)
        for q in self.quantizers:  # residual VQ: each level quantises what is left
            _, codes, _ = q(residual.detach())
            qv = q.lookup(codes)
            total, residual = total + qv, residual - qv
        commit = F.mse_loss(z, total.detach())
        st = z + (total - z).detach()  # straight-through
        return self.dec(st).transpose(1, 2)[:, :x.shape[1]], commit


def kmeans(x: torch.Tensor, k: int, iters: int = 30, seed: int = 0) -> torch.Tensor:
    """Lloyd's k-means on rows of x (N, D) -> centroids (k, D); empty clusters re-seeded."""
    g = torch.Generator().manual_seed(seed)
    c = x[torch.randperm(x.shape[0], generator=g)[:k]].clone()
    for _ in range(iters):
        a = torch.cdist(x, c).argmin(1)
        for j in range(k):
            m = a == j
            c[j] = x[m].mean(0) if m.any() else x[torch.randint(0, x.shape[0], (1,), generator=g)][0]
    return c


def quantise_anchor(anchors: torch.Tensor, books: list[torch.Tensor]) -> torch.Tensor:
    """Anchors (N, 3) -> their residual quantisation through ``books`` (each codes what the previous left)."""
    total, residual = torch.zeros_like(anchors), anchors
    for c in books:
        q = c[torch.cdist(residual, c).argmin(1)]
        total, residual = total + q, residual - q
    return total


def anchor_codebooks(anchors: torch.Tensor, k: int, levels: int) -> list[torch.Tensor]:
    """Residual k-means codebooks for per-clip anchors (N, 3): level L fits what levels < L leave."""
    books: list[torch.Tensor] = []
    for level in range(levels):
        books.append(kmeans(anchors - quantise_anchor(anchors, books), k, seed=level))
    return books


def relative(x: torch.Tensor, books: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Trajectory streams (B, T, 9) -> (streams with the quantised clip anchor taken off, anchors (B, 1, 9))."""
    a = torch.zeros(x.shape[0], 1, 9)
    a[:, 0, 6:] = quantise_anchor(x[..., 6:].mean(1), books)
    return x - a, a


def run_variant(name: str, opts: dict, train: torch.Tensor, test: torch.Tensor, tstd: torch.Tensor,
                steps: int, seed: int) -> dict:
    torch.manual_seed(seed)
    K = int(opts.get("K", 512))
    model = TrajectoryVQ(K, int(opts.get("levels", 1)), int(opts.get("K2", K)), int(opts.get("width", 64)))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    w = torch.ones(9)
    w[6:] = float(opts.get("wt", 1.0))
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    ka = int(opts.get("anchor", 0))
    anchor_err = 0.0
    if ka:  # per-clip anchors: the tokens see translation relative to the quantised clip mean
        books = anchor_codebooks(train[..., 6:].mean(1), ka, int(opts.get("alevels", 1)))
        train, _ = relative(train, books)
        test, test_anchor = relative(test, books)
        # what is left of the clip mean after the anchor (the anchor's own quantisation error)
        anchor_err = float((test[..., 6:].mean(1) * tstd[:, 0]).norm(dim=-1).mean() * 1e3)
    model.train()
    for step in range(steps):
        lr = 2e-4 * min(1.0, (step + 1) / 100) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
        for group in opt.param_groups:
            group["lr"] = lr
        x = train[torch.randint(0, train.shape[0], (64,), generator=g)]
        y, commit = model(x)
        loss = (((y - x) ** 2 * w).mean() + 0.5 * ((y.diff(dim=1) - x.diff(dim=1)) ** 2 * w).mean()
                + 0.25 * commit)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    with torch.no_grad():
        y, _ = model(test)
    bits = math.log2(K) + (int(opts.get("levels", 1)) - 1) * math.log2(int(opts.get("K2", K)))
    return {"variant": name, "options": opts, "bits": bits, "tokens_per_step": int(opts.get("levels", 1)),
            "anchor_tokens_per_clip": int(opts.get("alevels", 1)) if ka else 0, "anchor_err_mm": anchor_err,
            "transl_err_mm": float(((y[..., 6:] - test[..., 6:]) * tstd).norm(dim=-1).mean() * 1e3),
            "rot6d_mse": float((y[..., :6] - test[..., :6]).pow(2).mean()), "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="corpus folder (train and test splits)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--test", type=int, default=512, help="test clips")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("variants", nargs="+", help="NAME[,key=value...] (see the module docstring)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    tr, te = load_split(args.data, "train"), load_split(args.data, "test")
    mean, std = compute_stats(tr.x)
    train, test = trajectories(tr.x, mean, std), trajectories(te.x[:args.test], mean, std)
    # the translation std of the hand each row came from (rows 0..N-1 left, N..2N-1 right)
    n = te.x[:args.test].shape[0]
    tstd = torch.cat([std[0, NUM_ROT_CHANNELS:NUM_ROT_CHANNELS + 3].expand(n, 1, 3),
                      std[1, NUM_ROT_CHANNELS:NUM_ROT_CHANNELS + 3].expand(n, 1, 3)], 0)
    for spec in args.variants:
        name, *kv = spec.split(",")
        opts = dict(item.split("=", 1) for item in kv)
        print(json.dumps(run_variant(name, opts, train, test, tstd, args.steps, args.seed)), flush=True)


if __name__ == "__main__":
    main()
