"""Latency of the shipped models through the engine API, as the app calls them, on one device:
diffusion text -> 2 s and 10 s clips (the model's default steps and guidance, text encoding
included), CLUTCH text -> 2 s clip and a caption of a 2 s clip, with the pipeline's candidate counts and
with one candidate. On a CUDA device also the 2 s
clip at 5 steps, without the CUDA graph and/or with the text encoder on the CPU, and one guided
step replayed as a graph and eager.

    python bench/shipped_latency.py [--device cuda] [--repeats 20] [--json OUT]

Each figure is the median over ``repeats`` calls after two warm-ups, each call with another prompt
or seed, the text-encoder cache cleared, and the device synchronised before the clock stops.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

PROMPTS = ["clap both hands twice", "the right hand waves while the left holds still",
           "both hands make fists then open", "the left hand pinches thumb and index finger together"]


def timed(fn, device: torch.device, repeats: int) -> dict:
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    for r in range(2):
        fn(r)
    sync()
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        fn(r)
        sync()
        times.append(time.perf_counter() - t0)
    return {"median_ms": 1000 * statistics.median(times), "min_ms": 1000 * min(times), "repeats": repeats}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    from engine.api import Studio, resolve_device
    device = resolve_device(args.device)
    studio = Studio.load(device=device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# shipped models on {device} ({name}), torch {torch.__version__}")
    diff = studio.pipeline("diffusion")
    enc = diff.text_encoder

    def gen(frames, model="diffusion", steps=None):
        def f(r):
            if model == "diffusion":
                enc._cache.clear()
            studio.generate(PROMPTS[r % len(PROMPTS)], frames=frames, seed=r, model=model, steps=steps)
        return f

    rows = {}
    rows["diffusion 2 s"] = timed(gen(60), device, args.repeats)
    rows["diffusion 10 s"] = timed(gen(300), device, max(3, args.repeats // 4))
    if device.type == "cuda":  # what the CUDA graph and the encoder on the GPU each buy
        rows["diffusion 2 s, 5 steps"] = timed(gen(60, steps=5), device, args.repeats)
        enc.to("cpu")
        rows["diffusion 2 s, encoder on CPU"] = timed(gen(60), device, args.repeats)
        diff.cuda_graphs = False
        rows["diffusion 2 s, eager, encoder on CPU"] = timed(gen(60), device, args.repeats)
        enc.to(device)
        rows["diffusion 2 s, eager"] = timed(gen(60), device, args.repeats)
        diff.cuda_graphs = True
        from engine.motion.clip import Prompt
        with torch.no_grad():
            x_t = torch.randn(1, diff.model.config.frames, 2, diff.model.config.hand_channels, device=device)
            cond, unc = diff.encode_prompts([Prompt(PROMPTS[0])]), diff.null_memory(1)
            graphed = diff._guided_step(x_t, cond, unc, diff.guidance)
            rows["guided step, CUDA graph"] = timed(lambda r: graphed(x_t, 500), device, 50)
            rows["guided step, eager"] = timed(lambda r: diff.guided_x0(x_t, 500, cond, unc, diff.guidance), device, 50)
    if "clutch" in studio.models:
        clutch = studio.pipeline("clutch")
        k_t2m, k_cap = clutch.t2m_candidates, clutch.caption_candidates
        rows[f"clutch T2M 2 s ({k_t2m} candidates)"] = timed(gen(60, "clutch"), device, args.repeats)
        clips = [studio.generate(t, frames=60, seed=0) for t in PROMPTS]
        rows[f"clutch caption ({k_cap} candidates)"] = timed(lambda r: studio.caption(clips[r % len(clips)]),
                                                             device, args.repeats)
        clutch.t2m_candidates = clutch.caption_candidates = 1  # one sampled stream / the greedy caption
        rows["clutch T2M 2 s (1 candidate)"] = timed(gen(60, "clutch"), device, args.repeats)
        rows["clutch caption (greedy only)"] = timed(lambda r: studio.caption(clips[r % len(clips)]),
                                                     device, args.repeats)
        clutch.t2m_candidates, clutch.caption_candidates = k_t2m, k_cap
    for k, v in rows.items():
        print(f"{k:<34} median {v['median_ms']:8.1f} ms   min {v['min_ms']:8.1f} ms   ({v['repeats']} runs)")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "name": name, "torch": torch.__version__,
                                               "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
