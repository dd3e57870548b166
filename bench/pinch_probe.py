"""Where the intra-hand contact F1 is lost: the shipped diffusion model's pinches against the test
clips', per finger, split by whether the prompt names the finger.

    python bench/pinch_probe.py --data CORPUS [--n 512] [--checkpoint FOLDER]

The same prompts, seeds and labels as ``hand-studio eval diffusion`` (HandX's intra-hand contact:
the thumb tip within 2 cm of a fingertip of the same hand at any frame). Prints, per finger: how
many reference clips pinch it, how many generations do, precision / recall, the recall where the
prompt names the finger and where it does not, and the median closest thumb-fingertip gap the
generation reaches where the reference pinches. Last, the ceiling the data itself sets: the same
labels for training clips of the same action program, drawn at random.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

FINGERS = ("index", "middle", "ring", "little")
NAMES = {"index": r"\bindex\b|\bforefinger", "middle": r"\bmiddle\b", "ring": r"\bring\b",
         "little": r"\blittle\b|\bpinky|\bpinkie"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--checkpoint", help="diffusion model folder (default: the shipped one)")
    p.add_argument("--thr", type=float, default=0.02)
    args = p.parse_args(argv)
    from engine.api import Studio
    from engine.evaluation.metrics import thumb_gaps
    from engine.evaluation.run import load_eval_set
    prompts, gt, _ = load_eval_set(args.data, args.n)
    studio = Studio.load(device="cpu", diffusion=args.checkpoint)
    gen = np.stack([studio.generate(pr, frames=gt.shape[1], seed=i).joints for i, pr in enumerate(prompts)])
    g_gap, r_gap = thumb_gaps(gen).min(axis=1), thumb_gaps(gt).min(axis=1)  # (N, 2, 4) closest over the clip
    g_lab, r_lab = g_gap < args.thr, r_gap < args.thr
    texts = [" ".join([pr.text, pr.left, pr.right]).lower() for pr in prompts]
    print(f"{len(prompts)} test prompts; intra-hand contact = thumb tip within {args.thr * 100:.0f} cm at any frame")
    print(f"{'finger':<7} {'ref':>4} {'gen':>4} {'TP':>4} {'prec':>5} {'recall':>6} {'rec named':>12} "
          f"{'rec unnamed':>12} {'gen gap mm at ref pinch (median)':>33}")
    for f, name in enumerate(FINGERS):
        named = np.array([bool(re.search(NAMES[name], t)) for t in texts])[:, None].repeat(2, 1)
        r, g = r_lab[:, :, f], g_lab[:, :, f]
        tp = int((r & g).sum())
        rec = lambda m: f"{(r & g & m).sum()}/{(r & m).sum()}"  # noqa: E731
        gap = np.median(g_gap[:, :, f][r]) * 1000 if r.any() else float("nan")
        print(f"{name:<7} {int(r.sum()):>4} {int(g.sum()):>4} {tp:>4} {tp / max(g.sum(), 1):>5.2f} "
              f"{tp / max(r.sum(), 1):>6.2f} {rec(named):>12} {rec(~named):>12} {gap:>33.1f}")
    tp, npos, ngen = int((r_lab & g_lab).sum()), int(r_lab.sum()), int(g_lab.sum())
    prec, rec = tp / max(ngen, 1), tp / max(npos, 1)
    print(f"all     {npos:>4} {ngen:>4} {tp:>4} {prec:>5.2f} {rec:>6.2f}   F1 {2 * prec * rec / max(prec + rec, 1e-9):.3f}")
    hand_ok = (r_lab.any(-1) & g_lab.any(-1)).sum() / max(r_lab.any(-1).sum(), 1)
    print(f"hands that pinch in the reference and pinch some finger in the generation: {hand_ok:.2f}")
    same_program_ceiling(args.data, gt, gen)
    return 0


def same_program_ceiling(data, gt: np.ndarray, gen: np.ndarray, draws: int = 50) -> None:
    """How much of the pinch label the action decides: for each evaluated clip, a training clip with
    the same action program (the synthetic generator's actions and hands; every other parameter -
    timing, tightness, finger spread - drawn anew) is scored against the reference like a generation
    (``run.same_key_resample``, at HandX's 2 cm whatever --thr says)."""
    from engine.data.corpus import Corpus
    from engine.evaluation.run import same_key_resample, test_prompts, token_counter

    def programs(entries):
        return [tuple((a.get("action"), a.get("hands")) for a in e.get("actions", [])) or None for e in entries]
    test = [e for e in Corpus(data).index if e["split"] == "test"]
    usable = [e for e, p in zip(test, test_prompts(test, 32, token_counter())) if p is not None][:len(gt)]
    r = same_key_resample(data, programs(usable), programs, gt, gen, draws)  # the eval's clips, in its order
    if r is None:
        print("no evaluated clip shares its action program with a training clip (not a synthetic corpus?)")
        return
    print(f"same action program resampled from train ({r['n']} of {len(gt)} clips, {draws} draws): intra-hand "
          f"contact F1 {r['data']['C-F1 intra']:.3f} (sd {r['data_sd']['C-F1 intra']:.3f}); the model on the same "
          f"clips {r['model']['C-F1 intra']:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
