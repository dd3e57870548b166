"""Build a procedural corpus of N clips and print the time, the machine and its load (the corpus
target: 20,000 two-second clips in 10 minutes on 2 cores).

    python bench/corpus_build.py [--n 20000] [--workers 2] [--out /tmp/corpus_bench] [--keep]
"""
import argparse
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

from engine.data.corpus_build import build_corpus_iter


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default="/tmp/corpus_bench")
    ap.add_argument("--keep", action="store_true", help="keep the corpus (default: delete it after timing)")
    args = ap.parse_args()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    last = {}
    for last in build_corpus_iter(args.n, args.seed, args.out, workers=args.workers, force=True):
        pass
    wall = time.perf_counter() - t0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    me = resource.getrusage(resource.RUSAGE_SELF)
    cpu = kids.ru_utime + kids.ru_stime + me.ru_utime + me.ru_stime
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    print(json.dumps({
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, {_cpu_model()}",
        "clips": args.n, "workers": args.workers, "seconds": round(wall, 1),
        "clips_per_s": round(args.n / wall, 1),
        "cpu_seconds_per_clip_ms": round(1000 * cpu / args.n, 1),
        "seconds_if_both_cores_were_free": round(cpu / max(1, min(args.workers, os.cpu_count() or 1)), 1),
        "load_average_1min_before_after": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
        "corpus_mb": round(size / 2**20, 1), "target_seconds": 600 * args.n / 20000,
    }, indent=2))
    if not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
