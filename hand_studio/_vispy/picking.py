"""Joint picking and wrist-path editing by CPU projection: pure numpy, no Qt, no GL
(unit-tested without a window).

The viewport turns its VisPy transform into one 4x4 matrix with :func:`transform_matrix`,
projects the current frame's 42 keypoints with :func:`project_points` and takes the nearest
within a few pixels with :func:`pick_nearest`. Matrices use VisPy's row-vector convention:
``[x, y, z, 1] @ M`` gives homogeneous canvas coordinates (logical pixels, origin top-left).

Path editing goes the other way: :func:`unproject_points` takes canvas pixels at a fixed depth
back to the world (a fixed depth is a plane parallel to the screen, the camera's view plane),
:func:`drag_path` moves a path point and its neighbours with :func:`falloff_weights`, and
:func:`resample_polyline` turns a drawn stroke into one point per frame.
"""
from __future__ import annotations

import numpy as np

PICK_RADIUS_PX = 8.0


def transform_matrix(transform) -> np.ndarray:
    """Any transform that is linear in homogeneous coordinates (``transform.map`` of (N, 4)
    rows, as VisPy's matrix/scale-translate/perspective chains are) -> its (4, 4) row-vector
    matrix: row i is the image of the i-th homogeneous basis vector."""
    m = np.asarray(transform.map(np.eye(4)), np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"transform must map (4, 4) homogeneous rows to (4, 4); got {m.shape}")
    return m


def _rows(a, width: int, name: str) -> np.ndarray:
    """``a`` as float64 (N, width), else ValueError naming it."""
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(f"{name} must have shape (N, {width}); got {a.shape}")
    return a


def _matrix(matrix) -> np.ndarray:
    m = np.asarray(matrix, np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"matrix must have shape (4, 4); got {m.shape}")
    return m


def project_points(points, matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project world points to the screen.

    points (N, 3) world metres, matrix (4, 4) row-vector world -> canvas.
    -> xy (N, 2) canvas pixels, depth (N,) (z/w: smaller is nearer the eye),
       in_front (N,) bool (w > 0: in front of the eye; the others' xy mean nothing).
    """
    p, m = _rows(points, 3, "points"), _matrix(matrix)
    h = np.concatenate([p, np.ones((len(p), 1))], axis=1) @ m  # (N, 4)
    w = h[:, 3]
    in_front = w > 1e-12
    safe_w = np.where(in_front, w, 1.0)[:, None]
    xy = h[:, :2] / safe_w
    depth = h[:, 2] / safe_w[:, 0]
    return xy, depth, in_front


def pick_nearest(xy, pos, radius: float = PICK_RADIUS_PX, depth=None, valid=None) -> int | None:
    """Index of the screen point nearest ``pos`` within ``radius`` pixels, else None.

    xy (N, 2) pixels, pos (2,) pixels; ``depth`` (N,) breaks ties (within half a pixel) in
    favour of the point nearer the eye; ``valid`` (N,) bool excludes points (behind the eye).
    """
    xy = _rows(xy, 2, "xy")
    if radius <= 0:
        raise ValueError(f"radius must be > 0 pixels; got {radius}")
    d = np.linalg.norm(xy - np.asarray(pos, np.float64).reshape(1, 2), axis=1)  # (N,)
    ok = d <= radius
    if valid is not None:
        ok &= np.asarray(valid, bool)
    if not ok.any():
        return None
    idx = np.flatnonzero(ok)
    best = d[idx].min()
    near = idx[d[idx] <= best + 0.5]
    if depth is not None and len(near) > 1:
        return int(near[np.argmin(np.asarray(depth, np.float64)[near])])
    return int(idx[np.argmin(d[idx])])


def unproject_points(xy, depth, matrix) -> np.ndarray:
    """The inverse of :func:`project_points`: canvas pixels at a depth back to world points.

    xy (N, 2) canvas pixels, depth (N,) or a scalar (z/w as project_points gives it), matrix (4, 4)
    row-vector world -> canvas. -> (N, 3) world points. Points at one depth lie on one plane
    parallel to the screen, so a mouse move at the depth of a point moves it in the view plane.
    """
    xy, m = _rows(xy, 2, "xy"), _matrix(matrix)
    d = np.broadcast_to(np.asarray(depth, np.float64), (len(xy),))  # (N,)
    try:
        inv = np.linalg.inv(m)
    except np.linalg.LinAlgError:
        raise ValueError("matrix is singular: the world -> canvas transform cannot be inverted") from None
    h = np.concatenate([xy, d[:, None], np.ones((len(xy), 1))], axis=1) @ inv  # (N, 4)
    w = h[:, 3]
    if (np.abs(w) < 1e-12).any():
        raise ValueError("a canvas point unprojects to infinity (depth outside the camera's range)")
    return h[:, :3] / w[:, None]


def falloff_weights(offsets, radius: int) -> np.ndarray:
    """Raised-cosine weights (N,) for frame ``offsets`` (N,) from a dragged frame: 1 at 0, falling
    smoothly to 0 at +-(radius + 1), so the ``radius`` frames each side follow; 0 beyond."""
    if isinstance(radius, bool) or int(radius) != radius or radius < 0:
        raise ValueError(f"falloff radius must be a whole number of frames >= 0; got {radius!r}")
    x = np.abs(np.asarray(offsets, np.float64)) / (int(radius) + 1)  # (N,)
    return np.where(x < 1.0, 0.5 * (1.0 + np.cos(np.pi * np.minimum(x, 1.0))), 0.0)


def drag_path(points, frames, frame: int, delta, radius: int) -> np.ndarray:
    """A path dragged at ``frame`` by ``delta``: that frame's point moves by ``delta``, its
    neighbours by ``falloff_weights`` of their frame distance times ``delta``.

    points (N, 3) world metres, frames (N,) their frames, delta (3,) -> moved copy (N, 3).
    """
    p = np.asarray(points, np.float64)
    f = np.asarray(frames)
    if p.ndim != 2 or p.shape[1] != 3 or f.shape != (len(p),):
        raise ValueError(f"points must have shape (N, 3) and frames (N,); got {p.shape} and {f.shape}")
    d = np.asarray(delta, np.float64).reshape(3)
    return p + falloff_weights(f - int(frame), radius)[:, None] * d[None]


def resample_polyline(points, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along a polyline, from its first point to its
    last. points (M, D) -> (n, D); n = 1 gives the first point. ValueError if it has no length."""
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or len(p) < 1:
        raise ValueError(f"points must have shape (M, D) with M >= 1; got {p.shape}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be a whole number >= 1; got {n!r}")
    if n == 1:
        return p[:1].copy()
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)  # (M-1,)
    keep = np.concatenate([[True], seg > 0])  # drop repeated samples: arc length must increase
    p = p[keep]
    s = np.concatenate([[0.0], np.cumsum(seg[seg > 0])])  # (M',) arc length
    if s[-1] <= 0:
        raise ValueError("the polyline has no length: all its points are the same")
    t = np.linspace(0.0, s[-1], int(n))  # (n,)
    return np.stack([np.interp(t, s, p[:, c]) for c in range(p.shape[1])], axis=1)
