"""Joint picking by CPU projection: pure numpy, no Qt, no GL (unit-tested without a window).

The viewport turns its VisPy transform into one 4x4 matrix with :func:`transform_matrix`,
projects the current frame's 42 keypoints with :func:`project_points` and takes the nearest
within a few pixels with :func:`pick_nearest`. Matrices use VisPy's row-vector convention:
``[x, y, z, 1] @ M`` gives homogeneous canvas coordinates (logical pixels, origin top-left).
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


def project_points(points, matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project world points to the screen.

    points (N, 3) world metres, matrix (4, 4) row-vector world -> canvas.
    -> xy (N, 2) canvas pixels, depth (N,) (z/w: smaller is nearer the eye),
       in_front (N,) bool (w > 0: in front of the eye; the others' xy mean nothing).
    """
    p = np.asarray(points, np.float64)
    m = np.asarray(matrix, np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3); got {p.shape}")
    if m.shape != (4, 4):
        raise ValueError(f"matrix must have shape (4, 4); got {m.shape}")
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
    xy = np.asarray(xy, np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"xy must have shape (N, 2); got {xy.shape}")
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
