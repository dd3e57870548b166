"""Does the named hand do the work? 12 user-style one-box prompts (6 naming the left hand, 6 the
right; two of each "X while the other hand holds still") x 4 seeds, generated with and without the
Left/Right split of the prompt (engine/diffusion/hand_texts.py); prints how many generations have
the named hand as the busier one (mean joint speed) and the median busy/other speed ratio.

    python bench/handedness_probe.py [MODEL_FOLDER]      (default: the shipped diffusion model)

Numbers from this script are in resources/models/diffusion/MODEL_CARD.md ("One-box prompts").
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from engine.api import Studio  # noqa: E402
from engine.evaluation.metrics import hand_activity  # noqa: E402

PROMPTS = [("the right hand waves while the left hand holds still", "R"),
           ("the left hand waves while the right hand holds still", "L"),
           ("wave with your right hand", "R"), ("wave with your left hand", "L"),
           ("make a fist with the left hand", "L"), ("make a fist with the right hand", "R"),
           ("the left hand points forward", "L"), ("the right hand points forward", "R"),
           ("tap the fingers of the right hand", "R"), ("tap the fingers of the left hand", "L"),
           ("the right hand makes an OK sign", "R"), ("the left hand makes an OK sign", "L")]


def main() -> None:
    studio = Studio.load(device="cpu", diffusion=sys.argv[1] if len(sys.argv) > 1 else None, use_registry=False)
    pipe = studio.pipeline("diffusion")
    for split in (False, True):
        pipe.hand_texts = split
        ratios = []
        for text, busy in PROMPTS:
            for seed in range(4):
                a = hand_activity(pipe.generate(text, frames=60, seed=seed).joints[None])[0]  # (2,) left, right
                ratios.append(a[1] / a[0] if busy == "R" else a[0] / a[1])
        ratios = np.array(ratios)
        print(f"Left/Right split {'on ' if split else 'off'}: named hand busier in {(ratios > 1).sum()}/{len(ratios)}, "
              f"median busy/other speed {np.median(ratios):.2f}", flush=True)


if __name__ == "__main__":
    main()
