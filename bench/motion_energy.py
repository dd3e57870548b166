"""How lively are the generated takes against the data? For the first N prompts of a corpus split
(the eval's prompts and seeds), generate with each sampler setting and print the speed ratio
(``metrics.speed_ratio``: mean keypoint speed over the data's), the median per-clip ratio, wrist and
wrist-relative finger speed ratios, the median per-frame peak acceleration ratio, the mean
acceleration ratio, the acceleration per unit of speed and at odd over even frames (jitter), and
the FID of those N generations against their references - then the calmest clips with their prompts.

    python bench/motion_energy.py --data CORPUS [--split val] [--n 128] [--model FOLDER]
                                  [--settings 10:0:2.5,20:0:2.5,...]   (steps:eta:guidance)

Numbers from this script are in resources/models/diffusion/MODEL_CARD.md ("How much the takes move").
"""
from __future__ import annotations

import argparse
import dataclasses
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from engine.api import Studio  # noqa: E402
from engine.diffusion.schedulers import DDIMScheduler  # noqa: E402
from engine.evaluation import metrics as M  # noqa: E402
from engine.evaluation.run import load_eval_set  # noqa: E402
from engine.threads import torch_threads  # noqa: E402


def setting(text: str) -> tuple[int, float, float]:
    try:
        steps, eta, guidance = text.split(":")
        return int(steps), float(eta), float(guidance)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a setting is steps:eta:guidance, e.g. 10:0:2.5; got {text!r}") from None


def speeds(joints: np.ndarray) -> dict[str, np.ndarray]:
    """(N, T, 2, 21, 3) metres -> per-clip mean speeds (mm/frame) and median per-frame peak acceleration."""
    j = np.asarray(joints, np.float64)
    rel = j - j[:, :, :, :1]
    return {"all": np.linalg.norm(np.diff(j, axis=1), axis=-1).mean(axis=(1, 2, 3)) * 1000,
            "wrist": np.linalg.norm(np.diff(j[:, :, :, 0], axis=1), axis=-1).mean(axis=(1, 2)) * 1000,
            "fingers": np.linalg.norm(np.diff(rel, axis=1), axis=-1).mean(axis=(1, 2, 3)) * 1000,
            "peak acc": np.median(np.linalg.norm(np.diff(j, 2, axis=1), axis=-1).max(axis=(2, 3)), axis=1) * 1000,
            "acc": np.linalg.norm(np.diff(j, 2, axis=1), axis=-1).mean(axis=(1, 2, 3)) * 1000}


def jitter(joints: np.ndarray) -> tuple[float, float]:
    """Mean keypoint acceleration per unit of mean speed (higher = shakier for the same motion), and
    the acceleration at odd over even frames (not 1: a step between the denoiser's 2-frame patches)."""
    j = np.asarray(joints, np.float64)
    a = np.linalg.norm(np.diff(j, 2, axis=1), axis=-1)  # a[:, 0] is frame 1
    v = np.linalg.norm(np.diff(j, axis=1), axis=-1)
    return a.mean() / v.mean(), a[:, 0::2].mean() / a[:, 1::2].mean()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="corpus folder")
    ap.add_argument("--split", choices=("val", "test"), default="val")
    ap.add_argument("--n", type=int, default=128, help="prompts (default 128)")
    ap.add_argument("--model", default=None, help="diffusion model folder (default: the shipped one)")
    ap.add_argument("--settings", type=lambda s: [setting(x) for x in s.split(",")], default=[(10, 0.0, 2.5)],
                    help="comma-separated steps:eta:guidance (default 10:0:2.5)")
    ap.add_argument("--calmest", type=int, default=10, help="list this many calmest clips of the first setting")
    args = ap.parse_args()
    prompts, gt, ev = load_eval_set(args.data, args.n, split=args.split, min_prompts=4)
    pipe = Studio.load(device="cpu", diffusion=args.model).pipeline("diffusion")
    base = pipe.scheduler.config
    ref, ref_emb = speeds(gt), ev.embed_motion(gt)
    print(f"{len(prompts)} {args.split} prompts; data: {ref['all'].mean():.2f} mm/frame mean keypoint speed, "
          "acceleration per speed %.3f, odd / even frame acceleration %.3f" % jitter(gt))
    print("| steps | eta | guidance | speed ratio | median per clip | wrist | fingers | peak acc | acc | acc per speed "
          "| odd / even acc | FID |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    first = None
    for steps, eta, guidance in args.settings:
        pipe.scheduler = DDIMScheduler(dataclasses.replace(base, eta=eta))
        with torch_threads(1):
            gen = np.stack([pipe.generate(p, frames=gt.shape[1], seed=i, steps=steps, guidance=guidance).joints
                            for i, p in enumerate(prompts)])
        g = speeds(gen)
        per_clip = g["all"] / ref["all"]
        first = per_clip if first is None else first
        cells = [M.speed_ratio(gen, gt), np.median(per_clip)] + [g[k].mean() / ref[k].mean()
                                                                   for k in ("wrist", "fingers", "peak acc", "acc")]
        cells += [*jitter(gen), M.fid(ref_emb, ev.embed_motion(gen))]
        print(f"| {steps} | {eta:g} | {guidance:g} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)
    print(f"\ncalmest clips of the first setting (ratio: prompt):")
    for i in np.argsort(first)[:args.calmest]:
        print(f"  {first[i]:.2f}: {prompts[i].text}")


if __name__ == "__main__":
    main()
