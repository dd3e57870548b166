"""``hand-studio train`` and ``hand-studio bench generate``: (add_arguments, run) pairs ready for
``engine.cli.COMMANDS``::

    from engine.diffusion import cli_commands as dc
    COMMANDS["train"] = ("train a model on a corpus (diffusion)", dc.add_train_arguments, dc.run_train)
    COMMANDS["bench"] = ("benchmarks (generate)", dc.add_bench_arguments, dc.run_bench)
"""
from __future__ import annotations

import argparse
import json


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from engine.training import train_diffusion
    sub = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    train_diffusion.add_arguments(sub.add_parser("diffusion", help="the bimanual text-to-motion diffusion model"))


def run_train(args: argparse.Namespace) -> int:
    if args.model == "diffusion":
        from engine.training import train_diffusion
        return train_diffusion.run(args)
    raise ValueError(f"train: unknown model {args.model!r}; choose diffusion")


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    g = sub.add_parser("generate", help="diffusion latency (2 s / 10 s clips, step counts, constraints), memory, threads")
    g.add_argument("--checkpoint", help="model folder (default: an untrained model of the default config)")
    g.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20])
    g.add_argument("--frames", type=int, nargs="+", default=[60, 300])
    g.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    g.add_argument("--repeats", type=int, default=5)
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda[:N]")
    g.add_argument("--no-train", action="store_true", help="skip the training-throughput measurement")
    g.add_argument("--json", action="store_true")


def run_bench(args: argparse.Namespace) -> int:
    if args.what != "generate":
        raise ValueError(f"bench: unknown benchmark {args.what!r}; choose generate")
    from engine.api import resolve_device
    from engine.diffusion import bench
    device = str(resolve_device(args.device))
    rows = bench.run(args.checkpoint, args.steps, args.frames, args.threads, args.repeats,
                     train=not args.no_train, device=device)
    if args.json:
        print(json.dumps(rows, indent=1))
    return 0
