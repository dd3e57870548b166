"""Two hands, two actions at once: does "the right hand waves while the left hand makes a fist" give
a waving right hand and a left fist? User-style prompts that give each hand its own action at the
same time (four phrasings and a sequential control x both hand assignments x both orders) x 4 seeds,
90 frames; each generation is checked by the motion alone (no evaluator):

- fist: the index-to-little fingertips come within 8.5 cm of the wrist on average at some frame;
- wave: the middle fingertip sweeps more than 6 cm about the wrist.
Both are calibrated on the corpus: each fires on every hand whose one action it is and on no idle
hand. A fist is checked on the hand asked to wave too (a waving hand that also makes a fist took the
other hand's action).

Prints, per phrasing, how many generations do both named actions on the named hands.

    python bench/concurrent_probe.py [--model diffusion|clutch] [MODEL_FOLDER]   (default: the shipped one)

Numbers from this script are in the models' cards ("Two actions at once").
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

TIPS = [8, 12, 16, 20]  # index, middle, ring, little fingertips (MANO 21-keypoint order)
VERB = {"wave": ("waves", "waving", "wave"), "fist": ("makes a fist", "making a fist", "make a fist")}
PAIRS = [("wave", "fist"), ("fist", "wave")]
PHRASINGS = {
    "the A hand Xs while the B hand Ys":
        lambda a, x, b, y: f"the {a} hand {VERB[x][0]} while the {b} hand {VERB[y][0]}",
    "X with the A hand and Y with the B hand at the same time":
        lambda a, x, b, y: f"{VERB[x][2]} with the {a} hand and {VERB[y][2]} with the {b} hand at the same time",
    "someone Xs with their A hand while Ying with their B hand":
        lambda a, x, b, y: f"someone {VERB[x][0]} with their {a} hand while {VERB[y][1]} with their {b} hand",
    "the A hand Xs as the B hand Ys":
        lambda a, x, b, y: f"the {a} hand {VERB[x][0]} as the {b} hand {VERB[y][0]}",
    "(control, in sequence) first X with the A hand and then Y with the B hand":
        lambda a, x, b, y: f"first {VERB[x][2]} with the {a} hand and then {VERB[y][2]} with the {b} hand",
}


def is_fist(j: np.ndarray) -> bool:
    """At some frame the index-to-little fingertips average < 8.5 cm from the wrist. On 4,000 corpus
    clips: every hand whose one action is a fist, no idle hand (open ~12 cm, fists ~6.4 cm)."""
    return bool((np.linalg.norm(j[:, TIPS] - j[:, :1], axis=-1).mean(-1) * 100).min() < 8.5)


def is_wave(j: np.ndarray) -> bool:
    """The middle fingertip sweeps > 6 cm about the wrist along some axis. On the same clips: every
    hand whose one action is a wave, no idle hand (idle: ~1.7 cm)."""
    tip = (j[:, 12] - j[:, 0]) * 100
    return bool((tip.max(0) - tip.min(0)).max() > 6.0)


CHECK = {"fist": is_fist, "wave": is_wave}


def main() -> None:
    from engine.api import Studio
    from engine.threads import torch_threads

    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="diffusion", choices=("diffusion", "clutch"))
    ap.add_argument("folder", nargs="?", help="model folder (default: the shipped one)")
    args = ap.parse_args()
    studio = Studio.load(device="cpu", use_registry=False, **{args.model: args.folder})
    pipe = studio.pipeline(args.model)
    total, n = 0, 0
    with torch_threads(1):
        for name, phrase in PHRASINGS.items():
            ok = each = 0
            for x, y in PAIRS:
                for a, b in (("right", "left"), ("left", "right")):
                    text = phrase(a, x, b, y)
                    for seed in range(4):
                        joints = pipe.generate(text, frames=90, seed=seed).joints  # (T, 2, 21, 3)
                        hands = {"left": joints[:, 0], "right": joints[:, 1]}
                        done = (CHECK[x](hands[a]) and not (x == "wave" and is_fist(hands[a])),
                                CHECK[y](hands[b]) and not (y == "wave" and is_fist(hands[b])))
                        ok += all(done)
                        each += sum(done)
            if not name.startswith("(control"):
                total, n = total + ok, n + 4 * 2 * len(PAIRS)
            runs = 4 * 2 * len(PAIRS)
            print(f"{name:75s} both actions {ok:2d}/{runs}  each action {each:2d}/{2 * runs}", flush=True)
    print(f"{'all four at-once phrasings':75s} both actions {total}/{n}")


if __name__ == "__main__":
    main()
