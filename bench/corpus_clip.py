"""Per 60-frame clip: procedural generation, features, events, captions (what the corpus build
runs on every clip; its target is 20,000 clips in 10 minutes on 2 cores = 60 ms per clip per core).

    python bench/features.py [--clips 200]
"""
import argparse
import json
import os
import platform
import time

import numpy as np

from engine.data.captions import caption_levels
from engine.data.synth import generate_clip
from engine.motion.events import events_to_json
from engine.motion.features import features_from_joints


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=200)
    args = ap.parse_args()
    t = {"generate": [], "features": [], "events": [], "captions": []}
    clips = []
    for s in range(args.clips):
        t0 = time.perf_counter()
        clips.append(generate_clip(s))
        t["generate"].append(time.perf_counter() - t0)
    for clip, labels in clips:
        J = clip.joints
        t0 = time.perf_counter()
        f = features_from_joints(J, clip.fps)
        t1 = time.perf_counter()
        doc = events_to_json(f)
        t2 = time.perf_counter()
        caption_levels(doc, seed=0, actions=labels)
        t3 = time.perf_counter()
        t["features"].append(t1 - t0), t["events"].append(t2 - t1), t["captions"].append(t3 - t2)
    print(json.dumps({"machine": f"{platform.node()} {platform.machine()}", "load_average_1min": os.getloadavg()[0],
                      "clips": args.clips, **{f"{k}_ms_median": round(1000 * float(np.median(v)), 2) for k, v in t.items()}},
                     indent=2))


if __name__ == "__main__":
    main()
