"""Diffusion generation benchmark: latency of 2 s and 10 s clips at several step counts, with and
without constraints, 1 vs 2 torch threads, peak RSS, guided-step cost and training throughput.

Targets (issue 6): default 2 s generation <= 0.5 s on 2 CPU cores; 10 s <= 5x that.
    python bench/generate.py [--checkpoint DIR] [--steps 5 10 20] [--repeats 5] [--no-train]
"""
import argparse
import json

from engine.diffusion import bench


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="model folder (default: an untrained default-config model)")
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20])
    ap.add_argument("--frames", type=int, nargs="+", default=[60, 300])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-train", action="store_true", help="skip the training-throughput measurement")
    ap.add_argument("--json", action="store_true", help="also print all rows as JSON")
    args = ap.parse_args()
    rows = bench.run(args.checkpoint, args.steps, args.frames, args.threads, args.repeats,
                     train=not args.no_train, device=args.device)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
