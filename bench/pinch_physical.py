"""Joint limits, interpenetration and smoothness of the test clips whose prompt names a pinch: the
sampler's output against the same clips with the named pinches closed (``engine/diffusion/contacts.py``),
with the eval's prompts and seeds, and what the closing step costs.

    python bench/pinch_physical.py --data CORPUS [--n 512] [--checkpoint FOLDER]
"""
import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from engine.api import Studio  # noqa: E402
from engine.diffusion.contacts import named_pinches  # noqa: E402
from engine.diffusion.representation import clip_to_tensor, tensor_to_clip  # noqa: E402
from engine.evaluation.physical import physical_metrics  # noqa: E402
from engine.evaluation.run import load_eval_set  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--data", required=True)
ap.add_argument("--n", type=int, default=512)
ap.add_argument("--checkpoint", help="diffusion model folder (default: the shipped one)")
args = ap.parse_args()
prompts, gt, _ = load_eval_set(args.data, args.n)
pipe = Studio.load(device="cpu", diffusion=args.checkpoint).pipeline("diffusion")
raw, closed, times, reps = [], [], [], []
for i, p in enumerate(prompts):
    if not named_pinches(p):
        continue
    c = pipe.generate(p, frames=gt.shape[1], seed=i, close_pinches=False)
    t = time.perf_counter()
    x, rep = pipe.finish_pinches(clip_to_tensor(c), c.betas, p)
    times.append(time.perf_counter() - t); reps += rep
    raw.append(c); closed.append(tensor_to_clip(x, c.betas))
print(len(raw), "clips naming a pinch;", {a: sum(r["action"] == a for r in reps) for a in {r["action"] for r in reps}})
for name, cs in (("raw", raw), ("closed", closed)):
    m = physical_metrics(cs)
    j = np.stack([c.joints for c in cs])
    acc = np.linalg.norm(j[:, 2:] - 2 * j[:, 1:-1] + j[:, :-2], axis=-1)  # (N, T-2, 2, 21)
    print(name, {k: round(v, 4) for k, v in m.items()}, "median joint accel %.2f mm/f^2, p99 %.2f" % (
        np.median(acc) * 1e3, np.percentile(acc, 99) * 1e3))
t = np.array(times) * 1e3
print("finish_pinches ms: median %.1f, p90 %.1f, max %.1f" % (np.median(t), np.percentile(t, 90), t.max()))
cl = [r for r in reps if r["action"] != "already closed"]
print("gap after (mm): median %.1f, max %.1f" % (np.median([r["gap_after_mm"] for r in cl]), max(r["gap_after_mm"] for r in cl)))
