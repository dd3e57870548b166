"""Render a preview sheet of procedural clips: one row per clip, key frames across, hand meshes.

Run under a display: ``xvfb-run -a python packaging/preview_synth.py [--seeds 0 1 2] [--actions clap fist]``
(writes ``/tmp/synth_preview.png``). Each tile is a pinhole view (default: the performer's, from above and
behind the hands); the first tile of a row lists the clip's action labels.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a source checkout without installing
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

VIEWS = {  # camera eye position (world, metres); all look at TARGET with +y up
    "front": (0.12, 0.38, 0.2),  # the performer's view: behind and above the hands, a little right
    "facing": (0.0, 0.25, -0.85),  # from in front, facing the performer
    "side": (0.6, 0.2, -0.25),
    "top": (0.0, 0.7, -0.25),
}
TARGET = np.array([0.0, 0.04, -0.32], np.float32)
FOCAL = 2.7  # screen half-height per unit of depth-normalised height


def project(v: np.ndarray, eye) -> np.ndarray:
    """World (..., 3) -> (x, y) on a screen of height 2 and a depth z for ordering (pinhole camera)."""
    eye = np.asarray(eye, np.float32)
    back = eye - TARGET
    back = back / np.linalg.norm(back)
    right = np.cross([0.0, 1.0, 0.0], back)
    if np.linalg.norm(right) < 1e-6:  # looking straight down
        right = np.array([1.0, 0.0, 0.0])
    right = right / np.linalg.norm(right)
    up = np.cross(back, right)
    c = (v - eye) @ np.stack([right, up, back], 1)  # camera frame: x right, y up, z toward the eye
    depth = np.maximum(-c[..., 2:], 1e-3)
    return np.concatenate([FOCAL * c[..., :2] / depth, depth - 1.0], -1).astype(np.float32)


def lit_colors(v: np.ndarray, faces: np.ndarray, base, eye) -> np.ndarray:
    """Per-vertex Lambert shading in world space (light from the eye, a little from above). (V, 4)."""
    tri = v[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, faces[:, k], fn)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    light = np.asarray(eye, np.float32) - v + np.array([0.0, 0.3, 0.0], np.float32)
    light /= np.linalg.norm(light, axis=1, keepdims=True)
    lam = np.abs((n * light).sum(1, keepdims=True))  # two-sided: the wrist cap and thin parts too
    rgb = np.asarray(base[:3], np.float32) * (0.3 + 0.7 * lam)
    return np.concatenate([rgb, np.ones((len(v), 1), np.float32)], 1)


def clip_rows(seeds, actions, hand, frames):
    from engine.data.synth import generate_clip, make_action
    rows = [generate_clip(s, frames=frames) for s in seeds]
    rows += [make_action(a, hand=hand, seed=k, frames=frames) for k, a in enumerate(actions)]
    return rows


def title(labels) -> str:
    return " + ".join(f"{l['action']}({l['hands']} {l['start_frame']}-{l['end_frame']})" for l in labels)


def render_sheet(rows, out: Path, cols: int = 5, tile=(320, 260), view: str = "front") -> np.ndarray:
    from vispy import app, scene
    from engine.hands import default_hands_cpu
    app.use_app("pyside6")
    hands = default_hands_cpu()
    canvas = scene.SceneCanvas(size=tile, show=False, bgcolor=(0.13, 0.14, 0.16, 1))
    viewbox = canvas.central_widget.add_view()
    eye = VIEWS[view]
    aspect = tile[0] / tile[1]
    viewbox.camera = scene.PanZoomCamera(rect=(-aspect, -1, 2 * aspect, 2))
    colors = [(0.55, 0.75, 0.95, 1), (0.95, 0.72, 0.55, 1)]  # left bluish, right warm
    mesh = scene.visuals.Mesh(shading=None, parent=viewbox.scene)
    mesh.set_gl_state("opaque", depth_test=False, cull_face=False)  # painter's order below
    text = scene.visuals.Text("", parent=canvas.scene, color="white", font_size=8, anchor_x="left", anchor_y="top", pos=(6, 6))
    sub = scene.visuals.Text("", parent=canvas.scene, color=(1, 1, 0.6, 1), font_size=7, anchor_x="left",
                             anchor_y="bottom", pos=(6, tile[1] - 6))
    sheet_rows = []
    for clip, labels in rows:
        T = clip.num_frames
        idx = np.linspace(0, T - 1, cols).round().astype(int)
        with torch.no_grad():
            verts, _ = hands(torch.from_numpy(clip.betas), torch.from_numpy(clip.global_orient[idx]),
                             torch.from_numpy(clip.hand_pose[idx]), torch.from_numpy(clip.transl[idx]))
        tiles = []
        for k, t in enumerate(idx):
            vs, fs, cs = [], [], []
            for h in range(2):
                v, f = verts[h][k].numpy(), (hands.left, hands.right)[h].faces
                fs.append(f + sum(len(x) for x in vs))
                vs.append(project(v, eye))
                cs.append(lit_colors(v, f, colors[h], eye))
            v, f = np.concatenate(vs), np.concatenate(fs)
            f = f[np.argsort(-v[f, 2].mean(1))]  # far to near: nearer triangles are drawn last
            mesh.set_data(vertices=v, faces=f, vertex_colors=np.concatenate(cs))
            active = [l["action"] for l in labels if l["start_frame"] <= t < l["end_frame"]]
            text.text = f"f{t} " + ",".join(active)
            sub.text = title(labels) if k == 0 else ""
            tiles.append(canvas.render()[..., :3])
        sheet_rows.append(np.concatenate(tiles, 1))
    image = np.concatenate(sheet_rows, 0)
    from vispy.io import write_png
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(str(out), image)
    canvas.close()
    return image


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
