"""Long takes: are the joins between the sampler's windows visible? A take longer than the model's
window (60 frames) is made window by window, each continuing the previous one's last ``overlap``
frames (pipeline.py). For the first N test prompts of a corpus (the eval's prompts, level-1 texts)
and N/2 two-action prompts ("A, then B" from consecutive test prompts), generate FRAMES-frame takes
and print, per kind:

- the seam w-ratio at each join (``metrics.seam_spike_ratio(baseline="window")``: the peak keypoint
  acceleration within 2 frames of the first newly generated frame over the take's median 5-frame
  peak; 1 = like any other stretch, target <= 2), mean / median / share of joins above 2;
- the same ratio at control frames half a window away from every join (what the metric reads
  where there is no join: the bar a join is measured against);
- the mean keypoint speed of each window over the first window's (does the motion die out?).

    python bench/long_take_seams.py --data CORPUS [--n 48] [--frames 300] [--model FOLDER]

Numbers from this script are in resources/models/diffusion/MODEL_CARD.md ("Long takes").
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from engine.api import Studio  # noqa: E402
from engine.diffusion.pipeline import segment_prompts, window_starts  # noqa: E402
from engine.evaluation import metrics as M  # noqa: E402
from engine.evaluation.run import load_eval_set  # noqa: E402
from engine.motion.clip import Prompt  # noqa: E402


def joins(frames: int, window: int, overlap: int) -> list[int]:
    """First newly generated frame of every window after the first."""
    starts = window_starts(frames, window, overlap)
    out, done = [], 0
    for s in starts:
        if s > 0:
            out.append(done)
        done = min(s + window, frames)
    return out


def window_speeds(joints: np.ndarray, frames: int, window: int, overlap: int) -> np.ndarray:
    """Mean keypoint speed (mm/frame) of each window's new frames."""
    v = np.linalg.norm(np.diff(joints, axis=0), axis=-1).mean(axis=(1, 2)) * 1000  # (T-1,)
    edges = [0] + joins(frames, window, overlap) + [frames]
    return np.array([v[max(a - 1, 0):b - 1].mean() for a, b in zip(edges[:-1], edges[1:])])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="corpus folder")
    ap.add_argument("--n", type=int, default=48, help="test prompts (default 48); N/2 'then' prompts more")
    ap.add_argument("--frames", type=int, default=300, help="take length in frames (default 300: 10 s)")
    ap.add_argument("--model", default=None, help="diffusion model folder (default: the shipped one)")
    ap.add_argument("--overlap", type=int, default=None, help="context frames per window (default: the model's)")
    args = ap.parse_args()
    prompts, _, _ = load_eval_set(args.data, max(args.n, 32))
    prompts = prompts[:args.n]
    pipe = Studio.load(device="cpu", diffusion=args.model).pipeline("diffusion")
    if args.overlap is not None:
        pipe.overlap = args.overlap
    W, ov = pipe.model.config.frames, pipe.overlap
    seams = joins(args.frames, W, ov)
    controls = [j - W // 2 for j in seams] + [seams[-1] + (args.frames - seams[-1]) // 2]
    print(f"{args.frames}-frame takes, window {W}, overlap {ov}: joins at {seams}; controls at {controls}")
    kinds = {"one action": [Prompt(p.text) for p in prompts],
             "A, then B": [Prompt(f"{a.text.rstrip('. ')}, then {b.text[:1].lower()}{b.text[1:]}")
                           for a, b in zip(prompts[0::2], prompts[1::2])]}
    for kind, ps in kinds.items():
        at_join, at_ctrl, speed, change = [], [], [], []
        n_windows = len(window_starts(args.frames, W, ov))
        for i, p in enumerate(ps):
            j = pipe.generate(p, frames=args.frames, seed=i).joints
            at_join += [M.seam_spike_ratio(j, [s], baseline="window") for s in seams]
            segs = segment_prompts(p, n_windows)  # the text each window reads: a join where it changes is a transition
            change += [segs[k + 1] != segs[k] for k in range(len(seams))]
            at_ctrl += [M.seam_spike_ratio(j, [c], baseline="window") for c in controls]
            ws = window_speeds(j, args.frames, W, ov)
            speed.append(ws / max(ws[0], 1e-9))
        a, c, sp, ch = np.array(at_join), np.array(at_ctrl), np.stack(speed), np.array(change)
        print(f"\n{kind} ({len(ps)} takes, {len(a)} joins)")
        print(f"  w-ratio at joins:    mean {a.mean():.2f}  median {np.median(a):.2f}  > 2: {100 * (a > 2).mean():.0f} %  "
              f"max {a.max():.2f}")
        for name, sel in (("same text on both sides", ~ch), ("text changes (a 'then')", ch)):
            if sel.any():
                print(f"    {name} ({sel.sum()}): mean {a[sel].mean():.2f}  median {np.median(a[sel]):.2f}  "
                      f"> 2: {100 * (a[sel] > 2).mean():.0f} %")
        per = a.reshape(len(ps), len(seams))
        print("  share > 2 per join: " + " ".join(f"{s}: {100 * (per[:, k] > 2).mean():.0f} %"
                                              for k, s in enumerate(seams)))
        print(f"  w-ratio at controls: mean {c.mean():.2f}  median {np.median(c):.2f}  > 2: {100 * (c > 2).mean():.0f} %  "
              f"max {c.max():.2f}")
        print("  window speed / first window's (median over takes): "
              + " ".join(f"{x:.2f}" for x in np.median(sp, axis=0)))


if __name__ == "__main__":
    main()
