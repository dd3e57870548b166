"""Offscreen VisPy renders of a hand mesh for eyeballing (used by check_default_hand.py).

Needs a GL context: run under ``xvfb-run -a`` on a headless machine.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# (elevation, azimuth) of a TurntableCamera with +y up... labelled for the MANO frame
VIEWS = {"dorsal": (89.0, 0.0), "palmar": (-89.0, 0.0), "thumb side": (0.0, 90.0), "oblique": (35.0, 140.0)}


def _render_one(v: np.ndarray, f: np.ndarray, view: tuple[float, float], size: tuple[int, int],
                colors: np.ndarray | None) -> np.ndarray:
    from vispy import scene

    canvas = scene.SceneCanvas(size=size, bgcolor="white", show=False)
    vb = canvas.central_widget.add_view()
    kw = {} if colors is None else {"vertex_colors": colors}
    mesh = scene.visuals.Mesh(vertices=(v * 100).astype(np.float32), faces=f.astype(np.uint32),
                              color=(0.87, 0.70, 0.60, 1.0), shading="smooth", **kw)
    vb.add(mesh)
    centre = (v.max(0) + v.min(0)) / 2 * 100
    vb.camera = scene.cameras.TurntableCamera(elevation=view[0], azimuth=view[1], fov=30, up="+y",
                                              center=tuple(centre), distance=float(np.ptp(v, 0).max() * 100 * 1.9))
    mesh.shading_filter.ambient_light = (1, 1, 1, 0.35)
    mesh.shading_filter.light_dir = tuple(vb.camera.transform.map([0, 0, -1, 0])[:3])
    img = canvas.render()
    canvas.close()
    return img


def render_views(v: np.ndarray, f: np.ndarray, path: Path, colors: np.ndarray | None = None,
                 size: tuple[int, int] = (560, 470)) -> None:
    """Write a 2x2 grid PNG of the mesh from the VIEWS."""
    import vispy
    from vispy.io import write_png

    try:
        vispy.use("pyside6")
    except RuntimeError:
        pass
    ims = [_render_one(v, f, vw, size, colors) for vw in VIEWS.values()]
    grid = np.concatenate([np.concatenate(ims[:2], 1), np.concatenate(ims[2:], 1)], 0)
    write_png(str(path), grid)
