"""IK benchmark: fit a 60-frame two-hand clip made by FK from plausible parameters.

Target (issue 3): <= 1 s on 2 CPU cores with mean joint error <= 3 mm. Prints JSON.
    python bench/ik.py [--frames 60] [--repeats 10] [--noise-mm 0] [--threads 2]
"""
import argparse
import json

import torch

from engine.hands import load_hands
from engine.hands.ik_bench import run_ik_bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--noise-mm", type=float, default=0.0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = run_ik_bench(load_hands("default"), args.frames, args.repeats, args.noise_mm)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
