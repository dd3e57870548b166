"""Generation and training benchmarks for the diffusion model (``bench/generate.py`` and
``hand-studio bench generate`` print these). With no checkpoint it times an untrained model of the
default config: the numbers are the architecture's cost, independent of the weights."""
from __future__ import annotations

import resource
import time

import numpy as np
import torch

from engine.diffusion.constraints import Constraints
from engine.diffusion.denoiser import Denoiser, DenoiserConfig
from engine.diffusion.pipeline import DiffusionPipeline
from engine.motion.clip import Clip

PROMPTS = ("the right hand waves while the left hand rests", "clap both hands twice",
           "the left hand closes into a fist", "both hands spread their fingers")
# each hand its own action at once: sampled hand by hand (pipeline split_hands: a batch of 3, not 2)
SEPARATE = ("the right hand waves while the left hand makes a fist",
            "the left hand points while the right hand drums its fingers")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kB


def _constraints(frames: int) -> Constraints:
    """Right-hand keyframes at both ends, a right-wrist path between them, the left hand locked."""
    ref = Clip.rest(frames)
    inner = frames - 2
    path = np.stack([np.linspace(0.1, 0.25, inner), 0.05 * np.sin(np.linspace(0, 6, inner)),
                     np.full(inner, -0.3)], 1)
    return (Constraints.keyframes(ref, [0, frames - 1], hands=("right",)) & Constraints.lock_hand(ref, "left")
            & Constraints.wrist_path("right", path, frames=list(range(1, frames - 1))))


def generation_latency(pipe: DiffusionPipeline, frames: int, steps: int, constrained: bool,
                       repeats: int = 5, threads: int | None = None, prompts=PROMPTS) -> dict:
    """Median wall time of ``generate`` from prompt to Clip, text encoding included (cache cleared)."""
    if threads is not None:
        pipe.threads = threads
    c = _constraints(frames) if constrained else None
    enc = pipe.text_encoder
    pipe.generate(prompts[0], frames=frames, steps=steps, constraints=c)  # warm-up
    times = []
    for r in range(repeats):
        enc._cache.clear()
        t0 = time.perf_counter()
        pipe.generate(prompts[r % len(prompts)], frames=frames, seed=r, steps=steps, constraints=c)
        times.append(time.perf_counter() - t0)
    return {"frames": frames, "seconds": frames / 30, "steps": steps, "constraints": constrained,
            "threads": pipe.threads, "median_s": float(np.median(times)), "min_s": float(np.min(times)),
            "peak_rss_mb": _rss_mb()}


def guided_step_ms(model: Denoiser, threads: int, repeats: int = 30) -> float:
    """One cond+uncond forward (batch 2) of a training-length window, median ms."""
    from engine.threads import torch_threads
    c, dev = model.config, model.x_mean.device
    x = torch.randn(2, c.frames, 2, c.hand_channels, device=dev)
    t = torch.full((2,), 500, device=dev)
    times = []
    with torch.no_grad(), torch_threads(threads):
        mem, mask = model.encode_condition(torch.randn(2, 3, 12, c.text_dim, device=dev),
                                           torch.ones(2, 3, 12, dtype=torch.bool, device=dev))
        for i in range(repeats + 5):
            t0 = time.perf_counter()
            model(x, t, mem, mask)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= 5:
                times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def training_throughput(config: DenoiserConfig, threads: int, batch: int = 64, steps: int = 6) -> float:
    """samples/s of the real training step (denoiser + FK keypoint losses, AdamW, EMA) on random data."""
    from engine.diffusion.ema import EMA
    from engine.hands import default_hands_cpu
    from engine.threads import torch_threads
    from engine.training.train_diffusion import TrainConfig, keypoints_from_rep, losses
    torch.manual_seed(0)
    hands = default_hands_cpu()
    model = Denoiser(config).train()
    ema = EMA(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cfg = TrainConfig()
    x0 = torch.randn(batch, config.frames, 2, config.hand_channels) * 0.3
    betas = torch.zeros(batch, 2, 10)
    with torch.no_grad():
        j_gt = keypoints_from_rep(hands, x0, betas)
    tokens, mask = torch.randn(batch, 3, 12, config.text_dim), torch.ones(batch, 3, 12, dtype=torch.bool)
    t = torch.randint(0, 1000, (batch,))
    with torch_threads(threads):
        for i in range(steps + 2):
            if i == 2:
                t0 = time.perf_counter()
            memory, mmask = model.encode_condition(tokens, mask)
            pred = model(x0 + torch.randn_like(x0), t, memory, mmask)
            loss = losses(model, hands, x0, pred, betas, j_gt, cfg)["total"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            ema.update(model)
    return batch * steps / (time.perf_counter() - t0)


def run(checkpoint=None, steps_list=(5, 10, 20), frames_list=(60, 300), threads_list=(1, 2),
        repeats: int = 5, train: bool = True, device: str = "cpu", out=print) -> list[dict]:
    """Print (via ``out``) and return every measurement."""
    if checkpoint:
        from engine.diffusion.pipeline import load_pipeline
        pipe = load_pipeline(checkpoint, device=device)
        what = f"checkpoint {checkpoint}"
    else:
        model = Denoiser(DenoiserConfig()).to(device)
        torch.nn.init.normal_(model.motion_out.weight, std=0.02)
        pipe = DiffusionPipeline(model)
        what = "untrained model, default config"
    rows = []
    out(f"# diffusion generation on {device}, {what} ({pipe.model.num_parameters() / 1e6:.2f} M parameters); "
        f"rss before sampling {_rss_mb():.0f} MB")
    for n in threads_list:
        ms = guided_step_ms(pipe.model, n)
        rows.append({"what": "guided_step_ms", "threads": n, "ms": ms})
        out(f"guided step (cond+uncond, batch 2, {pipe.model.config.frames} frames), {n} thread(s): {ms:.1f} ms")
    out(f"{'clip':>6} {'steps':>5} {'constraints':>11} {'threads':>7} {'median s':>9} {'min s':>7} {'peak rss MB':>11}")
    for n in threads_list:
        for frames in frames_list:
            for steps in steps_list:
                for constrained in (False, True):
                    r = generation_latency(pipe, frames, steps, constrained, repeats, threads=n)
                    rows.append({"what": "generate", **r})
                    out(f"{frames / 30:>5.0f}s {steps:>5} {str(constrained):>11} {n:>7} {r['median_s']:>9.3f} "
                        f"{r['min_s']:>7.3f} {r['peak_rss_mb']:>11.0f}")
    for n in threads_list:
        r = generation_latency(pipe, 60, pipe.steps, False, repeats, threads=n, prompts=SEPARATE)
        rows.append({"what": "generate_separate_hands", **r})
        out(f"2 s clip, {pipe.steps} steps, each hand its own action (sampled hand by hand), {n} thread(s): "
            f"median {r['median_s']:.3f} s, min {r['min_s']:.3f} s")
    if train:
        for n in threads_list:
            sps = training_throughput(pipe.model.config, n)
            rows.append({"what": "train_samples_per_s", "threads": n, "samples_per_s": sps})
            out(f"training on the CPU (batch 64, FK losses, AdamW + EMA), {n} thread(s): {sps:.1f} samples/s")
    return rows
