"""CLUTCH speed with the default (untrained) configs on this machine:
T2M latency of a 2 s clip, caption latency, and training samples/s per stage.

    python bench/clutch.py [--threads 1 2] [--repeats 5] [--train-steps 12] [--clips 96]

Untrained weights decode as fast as trained ones for T2M (the constrained stream has a fixed
length: 8 steps x 4 tokens + 2); a caption's cost grows with its length, so it is reported per
decoded token and for a 20-token caption (the corpus captions' typical length) and for the 64-token cap.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine.clutch.language_model import LMConfig, MotionLM, TextProcessor  # noqa: E402
from engine.clutch.pipeline import ClutchPipeline  # noqa: E402
from engine.clutch.shift import ShiftConfig, ShiftTokenizer  # noqa: E402
from engine.threads import torch_threads  # noqa: E402


def make_data(n: int):
    """n synthetic clips with procedural level-1..3 captions (ClipData)."""
    from engine.data.captions import caption_clip
    from engine.data.synth import generate_clip
    from engine.diffusion.representation import clip_to_tensor
    from engine.training.train_clutch import ClipData
    xs, betas, caps = [], [], []
    for s in range(n):
        clip, acts = generate_clip(s)
        xs.append(clip_to_tensor(clip))
        betas.append(torch.from_numpy(clip.betas))
        caps.append([caption_clip(clip, level=lv, seed=s, actions=acts)["text"] for lv in (1, 2)])
    return ClipData(torch.stack(xs), torch.stack(betas), caps)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench_inference(pipe: ClutchPipeline, clip, threads: int, repeats: int) -> dict:
    lm, vocab = pipe.lm, pipe.vocab
    with torch_threads(threads):
        t2m = timed(lambda: pipe.generate("the right hand waves twice", frames=60, seed=0), repeats)
        codes = pipe.caption_tokens(clip)
        inp = torch.tensor([vocab.motion_ids(codes)])
        am = torch.ones_like(inp, dtype=torch.bool)

        def caption(n):
            return lambda: lm.decode(inp, am, TextProcessor(vocab, n), max_len=n, stop_id=vocab.eos_id)
        cap20 = timed(caption(20), repeats)
        cap64 = timed(caption(64), repeats)
    return {"threads": threads, "t2m_2s_s": t2m, "caption_20tok_s": cap20, "caption_64tok_s": cap64}


def bench_training(data, threads: int, steps: int) -> dict:
    from engine.training.train_clutch import DEFAULTS, train_iter
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage in ("shift", "pretrain", "refine", "instruct"):
            cfg = replace(DEFAULTS[stage], steps=steps, threads=threads, device="cpu", ckpt_every=10 ** 9,
                          vocab_margin=1000)
            times = []
            for item in train_iter(stage, data, tmp, cfg):
                times.append(time.perf_counter())
            # steps after the first two (warm-up, and the stage's setup before step 1)
            out[stage] = cfg.batch * (len(times) - 3) / (times[-1] - times[2])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--train-steps", type=int, default=12)
    p.add_argument("--clips", type=int, default=96)
    p.add_argument("--skip-train", action="store_true")
    args = p.parse_args(argv)

    t = time.perf_counter()
    data = make_data(args.clips)
    print(f"{args.clips} synthetic clips in {time.perf_counter() - t:.1f}s", flush=True)
    from engine.training.train_clutch import build_clutch_vocab
    shift = ShiftTokenizer(ShiftConfig())
    shift.set_stats(data.x)
    vocab = build_clutch_vocab(data, shift.config.codebook_size, margin=1000)
    lm = MotionLM(LMConfig(), vocab)
    n_lm = sum(p.numel() for p in lm.parameters())
    n_shift = sum(p.numel() for p in shift.parameters() if p.requires_grad)
    print(f"SHIFT {n_shift / 1e6:.2f} M params; LM {n_lm / 1e6:.2f} M params; vocabulary {vocab.size} "
          f"({vocab.text_size} text + 3 + {4 * vocab.codebook_size} motion)", flush=True)
    pipe = ClutchPipeline(shift, lm, {"prompt_style": "instruct"})
    from engine.data.synth import generate_clip
    clip = generate_clip(0)[0]
    for th in args.threads:
        r = bench_inference(pipe, clip, th, args.repeats)
        print(f"threads {th}: T2M 2 s clip {r['t2m_2s_s'] * 1e3:.0f} ms; caption 20 tokens "
              f"{r['caption_20tok_s'] * 1e3:.0f} ms, 64 tokens {r['caption_64tok_s'] * 1e3:.0f} ms", flush=True)
    if not args.skip_train:
        for th in args.threads:
            r = bench_training(data, th, args.train_steps)
            print(f"threads {th}: training samples/s " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
