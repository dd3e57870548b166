"""Export timings: a 30 s (900-frame) and a 2 s two-hand clip with finger motion to every format.

    python bench/export.py [--repeats 3]       (target: FBX of 900 frames <= 200 ms)
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from readers.clips import motion_clip  # noqa: E402

from engine.export import export_clip  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    out = {"machine": f"{platform.node()} {platform.machine()}", "load_average_1min": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as d:
        for frames in (900, 60):
            clip = motion_clip(frames)
            export_clip(clip, Path(d) / "warm.fbx")
            for ext in ("fbx", "bvh", "glb", "npz"):
                best = float("inf")
                for _ in range(args.repeats):
                    t = time.perf_counter()
                    export_clip(clip, Path(d) / f"t.{ext}")
                    best = min(best, time.perf_counter() - t)
                out[f"{ext}_{frames}_frames_ms"] = round(best * 1000, 1)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
