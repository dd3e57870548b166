"""Render a preview sheet of procedural clips: one row per clip, key frames across, hand meshes.

``python packaging/preview_synth.py [--seeds 0 1 2] [--actions clap fist]`` (writes
``/tmp/synth_preview.png``). Rendering is ``engine.data.preview`` (numpy, no GL, no display):
each tile is a pinhole view (default: the performer's, from above and behind the hands), the first
tile of a row lists the clip's action labels and the level-1 caption runs under the row.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, str(ROOT))

from engine.data.preview import VIEWS, render_sheet  # noqa: E402


def clip_rows(seeds, actions, hand, frames):
    from engine.data.synth import generate_clip, make_action
    rows = [generate_clip(s, frames=frames) for s in seeds]
    rows += [make_action(a, hand=hand, seed=k, frames=frames) for k, a in enumerate(actions)]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3])
    p.add_argument("--actions", nargs="*", default=[], help="also show these actions alone (make_action)")
    p.add_argument("--hand", default="right")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--cols", type=int, default=5)
    p.add_argument("--view", choices=sorted(VIEWS), default="front")
    p.add_argument("--out", type=Path, default=Path("/tmp/synth_preview.png"))
    args = p.parse_args(argv)
    image = render_sheet(clip_rows(args.seeds, args.actions, args.hand, args.frames), args.out, args.cols, view=args.view)
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
