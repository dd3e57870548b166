"""Render both default hands in three poses (fist, point, spread) into one PNG.

Run under a display, e.g. ``xvfb-run -a python packaging/render_hands.py`` (writes
``docs/default_hands.png``). It drives the app's own QtViewport, so the picture is what the
app shows.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, str(ROOT))

import vispy.app  # noqa: E402

vispy.app.use_app("pyside6")  # before any QApplication exists

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from vispy import scene  # noqa: E402
from vispy.io import write_png  # noqa: E402

from engine.api import Studio  # noqa: E402
from engine.motion.clip import Clip  # noqa: E402
from hand_studio._qt.viewport import CAMERA_PRESETS, QtViewport  # noqa: E402
from hand_studio.model.document import Document  # noqa: E402
from hand_studio.model.poses import pose, presentation_placement  # noqa: E402

POSE_NAMES = ("fist", "point", "spread")


def pose_clip(names=POSE_NAMES) -> Clip:
    """One frame per named pose, hands placed side by side, fingers forward."""
    orient, transl = presentation_placement()
    T = len(names)
    return Clip(transl=np.repeat(transl[None], T, 0), global_orient=np.repeat(orient[None], T, 0),
                hand_pose=np.stack([pose(n) for n in names]))


def render(out: Path, size=(640, 560), preset: str = "orbit", device: str = "cpu",
           skeleton: bool = False) -> np.ndarray:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    studio = Studio.load(device=device)
    doc = Document(pose_clip())
    viewport = QtViewport(doc, studio.hands, size=size)
    viewport.resize(*size)
    viewport.show()
    app.processEvents()
    viewport.hands_visual.skeleton_visible = skeleton
    label = scene.visuals.Text("", parent=viewport.canvas.scene, color="white", font_size=14,
                               anchor_x="left", anchor_y="bottom", pos=(14, 14))
    tiles = []
    for i, name in enumerate(POSE_NAMES):
        doc.frame = i
        viewport.set_camera_preset(preset)
        label.text = name
        app.processEvents()
        tiles.append(viewport.render()[..., :3])
    image = np.concatenate(tiles, axis=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(str(out), image)
    viewport.close()
    return image


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "default_hands.png")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=560)
    p.add_argument("--preset", choices=sorted(CAMERA_PRESETS), default="orbit")
    p.add_argument("--skeleton", action="store_true", help="draw bones and joints over the skin")
    args = p.parse_args(argv)
    image = render(args.out, (args.width, args.height), args.preset, skeleton=args.skeleton)
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
