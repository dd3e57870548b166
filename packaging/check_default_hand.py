#!/usr/bin/env python
"""Check ``resources/hands/default_hand.npz``: format, closed mesh, rest joints, fingertips and how
the skinning holds up in flexed poses. Prints the numbers; exits non-zero on any failure.

    python packaging/check_default_hand.py [--npz PATH] [--render-dir /tmp]   # renders need a display
    xvfb-run -a python packaging/check_default_hand.py                        # headless

The LBS here is a small self-contained numpy version of MANO's:
  * pose = global_orient (3,) + hand_pose (45,) axis-angle, each joint's rotation expressed in the
    world-aligned rest frame; joint 0's rotation turns the hand about the rest wrist J0;
  * G_0 = [R_0 | J_0], G_k = G_parent(k) @ [R_k | J_k - J_parent(k)];
  * skinning matrix A_k = [Rw_k | t_k - Rw_k @ J_k] (G_k with the rest joint taken out);
  * v' = sum_k w_vk A_k [v; 1] + transl, posed joints = t_k + transl, tips = posed tip vertices.
Finger flexion of the right hand is a positive rotation about +z (fingers along -x, palm -y).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# The skeleton contract lives in the engine (one source of truth).
from engine.hands.skeleton import (DISTAL_LENGTHS, FINGERS, JOINT_NAMES, PARENTS,  # noqa: E402
                                   MANO_RIGHT_REST_JOINTS as MANO_REST_JOINTS)
# MANO joint indices (1, 2, 3) of each finger, FINGERS order.
FINGER_CHAINS = ((13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))
KEYS = {"vertices": (np.float32, 2), "faces": (np.int32, 2), "weights": (np.float32, 2),
        "joints": (np.float32, 2), "tip_ids": (np.int32, 1), "source": (np.str_, 0)}

MAX_JOINT_ERR = 0.002
MAX_TIP_ERR = 0.002
MAX_VOL_CHANGE = 0.05        # one joint flexed
MAX_POSE_VOL_CHANGE = 0.12   # whole-hand poses: about 15 joints' LBS losses add up
# The thumb CMC bends only 0..45 deg (HANDS.md anatomical limits): it must pass at 45 deg; its
# 90-deg numbers are printed for information.
CMC_LIMIT_DEG = 45.0
MIN_THICKNESS = 0.5
MAX_BYTES = 300_000


# ----------------------------------------------------------------------------- LBS (numpy)

def rodrigues(aa: np.ndarray) -> np.ndarray:
    """Axis-angle (..., 3) -> rotation matrices (..., 3, 3)."""
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    k = aa / np.maximum(theta, 1e-12)
    K = np.zeros(aa.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2] = -k[..., 2], k[..., 1]
    K[..., 1, 0], K[..., 1, 2] = k[..., 2], -k[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -k[..., 1], k[..., 0]
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def forward(vertices: np.ndarray, weights: np.ndarray, joints: np.ndarray, global_orient: np.ndarray,
            hand_pose: np.ndarray, transl: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Posed vertices (V, 3) and joints (16, 3). global_orient (3,), hand_pose (45,), transl (3,)."""
    R = rodrigues(np.concatenate([global_orient, hand_pose]).reshape(16, 3))  # (16, 3, 3)
    Rw = np.zeros((16, 3, 3))
    tw = np.zeros((16, 3))
    for k, p in enumerate(PARENTS):
        if p < 0:
            Rw[k], tw[k] = R[k], joints[k]
        else:
            Rw[k] = Rw[p] @ R[k]
            tw[k] = tw[p] + Rw[p] @ (joints[k] - joints[p])
    t = tw - np.einsum("kij,kj->ki", Rw, joints)                       # (16, 3)
    Mv = np.einsum("vk,kij->vij", weights, Rw)                         # (V, 3, 3)
    v = np.einsum("vij,vj->vi", Mv, vertices) + weights @ t
    shift = np.zeros(3) if transl is None else transl
    return v + shift, tw + shift


# ----------------------------------------------------------------------------- geometry

def signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def winding_number(p: np.ndarray, v: np.ndarray, f: np.ndarray) -> float:
    """Generalised winding number of point p (3,) w.r.t. a closed triangle mesh (~1 inside, ~0 outside)."""
    a, b, c = v[f[:, 0]] - p, v[f[:, 1]] - p, v[f[:, 2]] - p
    la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
    num = np.einsum("ij,ij->i", a, np.cross(b, c))
    den = la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", b, c) * la \
        + np.einsum("ij,ij->i", c, a) * lb
    return float(2 * np.arctan2(num, den).sum() / (4 * np.pi))


def surface_samples(v: np.ndarray, f: np.ndarray, face_ids: np.ndarray) -> np.ndarray:
    """Points on the given triangles (corners, edge midpoints, centroid and a 1/6 grid)."""
    bary = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [.5, .5, 0], [0, .5, .5], [.5, 0, .5], [1 / 3] * 3,
                     [2 / 3, 1 / 6, 1 / 6], [1 / 6, 2 / 3, 1 / 6], [1 / 6, 1 / 6, 2 / 3]])
    tri = v[f[face_ids]]                                               # (T, 3, 3)
    return np.einsum("bk,tkd->tbd", bary, tri).reshape(-1, 3)


def thumb_hinge(J: np.ndarray) -> np.ndarray:
    """Flexion axis of the thumb: normal of the plane its rest joints bend in (positive = flex)."""
    d1, d2 = J[14] - J[13], J[15] - J[14]
    h = np.cross(d1, d2)
    return h / np.linalg.norm(h)


def flexion_axis(J: np.ndarray, joint: int) -> np.ndarray:
    """Anatomical hinge of a joint in the rest frame; a positive rotation about it flexes.

    Fingers: the axis in the palm plane perpendicular to the joint's bone, d x (0, -1, 0), which is
    +z for a finger along -x (MANO's flexion convention). Thumb: its bend-plane normal.
    """
    if joint in (13, 14, 15):
        return thumb_hinge(J)
    child = joint + 1 if joint % 3 else joint          # distal joints (3, 6, 9, 12) reuse joint 2 -> 3
    d = J[child] - J[joint] if child != joint else J[joint] - J[joint - 1]
    h = np.cross(d, [0.0, -1.0, 0.0])
    return h / np.linalg.norm(h)


# ----------------------------------------------------------------------------- poses

def pose_vec(angles: dict[int, np.ndarray]) -> np.ndarray:
    hp = np.zeros((16, 3))
    for j, aa in angles.items():
        hp[j] = aa
    return hp[1:].ravel()


def fist_pose(J: np.ndarray) -> np.ndarray:
    a = {}
    for chain in FINGER_CHAINS[1:]:
        for j, deg in zip(chain, (80, 90, 70)):
            a[j] = np.radians(deg) * flexion_axis(J, j)
    h = thumb_hinge(J)
    # thumb tucked over the curled index/middle: CMC opposes (flex + a little roll), MCP and IP flex
    for j, deg in zip((13, 14, 15), (35, 45, 40)):
        a[j] = np.radians(deg) * h
    return pose_vec(a)


def point_pose(J: np.ndarray) -> np.ndarray:
    a = {}
    for chain in FINGER_CHAINS[2:]:
        for j, deg in zip(chain, (85, 95, 70)):
            a[j] = np.radians(deg) * flexion_axis(J, j)
    h = thumb_hinge(J)
    for j, deg in zip((13, 14, 15), (30, 40, 30)):
        a[j] = np.radians(deg) * h
    return pose_vec(a)


def spread_pose(J: np.ndarray) -> np.ndarray:
    """MCP abduction about the palm normal (y): index/middle toward the thumb, ring/pinky away."""
    a = {1: np.radians(15) * np.array([0, 1.0, 0]), 4: np.radians(3) * np.array([0, 1.0, 0]),
         10: np.radians(-10) * np.array([0, 1.0, 0]), 7: np.radians(-15) * np.array([0, 1.0, 0]),
         13: np.radians(-15) * thumb_hinge(J)}
    return pose_vec(a)


# ----------------------------------------------------------------------------- checks

class Report:
    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, ok: bool, msg: str) -> None:
        print(("  ok    " if ok else "  FAIL  ") + msg)
        if not ok:
            self.failures.append(msg)


def joint_region(W: np.ndarray, f: np.ndarray, v: np.ndarray, J: np.ndarray, j: int, margin: float):
    """Faces near joint j (within the nearest skin distance + margin at rest) of it or its parent."""
    dist = np.linalg.norm(v - J[j], axis=1)
    near = (dist < dist.min() + margin) & ((W[:, j] + W[:, PARENTS[j]]) > 0.5)
    return np.nonzero(near[f].all(1))[0]


def flex_one(v, f, W, J, tips, name: str, k: int, deg: float) -> tuple[float, float, float, float]:
    """Flex one joint by deg about its hinge: volume change, thickness ratio, winding, tip travel to the palm."""
    chain = FINGER_CHAINS[FINGERS.index(name)]
    j = chain[k]
    axis = flexion_axis(J, j)
    vp, jp = forward(v, W, J, np.zeros(3), pose_vec({j: np.radians(deg) * axis}))
    dvol = signed_volume(vp, f) / signed_volume(v, f) - 1
    faces = joint_region(W, f, v, J, j, 0.008)
    d0 = np.linalg.norm(surface_samples(v, f, faces) - J[j], axis=1).min()
    d1 = np.linalg.norm(surface_samples(vp, f, faces) - jp[j], axis=1).min()
    inside = winding_number(jp[j], vp, f)
    tip = tips[FINGERS.index(name)]
    # flexion must move the fingertip to the palm side: -y for fingers; for the thumb the side a
    # positive hinge rotation turns its bone to (hinge x bone)
    if name == "thumb":
        bone = (J[chain[k + 1]] - J[j]) if k < 2 else (v[tip] - J[j])
        palmar = np.cross(axis, bone / np.linalg.norm(bone))
    else:
        palmar = np.array([0.0, -1.0, 0.0])
    moved = float((vp[tip] - v[tip]) @ palmar)
    return dvol, d1 / d0, inside, moved, d0, d1


def flex_tests(rep: Report, v, f, W, J, tips) -> dict:
    out = {}
    print("\n90-degree flexion of each joint (volume change, thinnest-skin ratio, joint inside, tip palmar):")
    for name, chain in zip(FINGERS, FINGER_CHAINS):
        for k in range(3):
            degs = (90.0, CMC_LIMIT_DEG) if (name, k) == ("thumb", 0) else (90.0,)
            for deg in degs:
                dvol, ratio, inside, moved, d0, d1 = flex_one(v, f, W, J, tips, name, k, deg)
                msg = (f"{name}{k + 1} {deg:.0f} deg: volume {dvol * 100:+.2f} %, thickness {d1 * 1000:.1f}/"
                       f"{d0 * 1000:.1f} mm = {ratio:.2f}, winding {inside:.2f}, tip toward palm {moved * 1000:+.1f} mm")
                if len(degs) == 2 and deg == 90.0:
                    print("  info  " + msg + f" (beyond the {CMC_LIMIT_DEG:.0f}-deg CMC bend limit)")
                    continue
                out[(name, k + 1)] = (dvol, ratio)
                rep.check(abs(dvol) < MAX_VOL_CHANGE and ratio >= MIN_THICKNESS and inside > 0.5 and moved > 0, msg)
    return out


def pose_test(rep: Report, name: str, pose: np.ndarray, v, f, W, J, tips):
    vol0 = signed_volume(v, f)
    vp, jp = forward(v, W, J, np.zeros(3), pose)
    dvol = signed_volume(vp, f) / vol0 - 1
    inside = [winding_number(jp[j], vp, f) for j in range(16)]
    rep.check(abs(dvol) < MAX_POSE_VOL_CHANGE and min(inside) > 0.5,
              f"{name}: volume {dvol * 100:+.2f} %, min joint winding {min(inside):.2f}")
    return vp


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path(__file__).resolve().parent.parent
    ap.add_argument("--npz", type=Path, default=root / "resources" / "hands" / "default_hand.npz")
    ap.add_argument("--render-dir", type=Path, default=Path("/tmp"))
    ap.add_argument("--no-render", action="store_true")
    args = ap.parse_args(argv)
    rep = Report()

    print(f"{args.npz} ({args.npz.stat().st_size} bytes)")
    rep.check(args.npz.stat().st_size < MAX_BYTES, f"file size {args.npz.stat().st_size / 1024:.0f} KiB < 300 KB")
    with np.load(args.npz, allow_pickle=False) as d:
        data = {k: d[k] for k in d.files}
    rep.check(set(data) == set(KEYS), f"keys {sorted(data)}")
    for k, (dt, nd) in KEYS.items():
        a = data[k]
        rep.check(a.dtype.type == dt and a.ndim == nd, f"{k}: {a.dtype} {a.shape}")
    src = json.loads(str(data["source"]))
    rep.check(src.get("licence") == "CC0-1.0" and len(src.get("wheel_sha256", "")) == 64,
              f"source: {src.get('package')}, licence {src.get('licence')}, converter {src.get('converter_version')}")

    v = data["vertices"].astype(np.float64)
    f = data["faces"].astype(np.int64)
    W = data["weights"].astype(np.float64)
    J = data["joints"].astype(np.float64)
    tips = data["tip_ids"].astype(np.int64)
    print(f"\n{len(v)} vertices, {len(f)} triangles")
    rep.check(W.shape == (len(v), 16) and J.shape == (16, 3) and tips.shape == (5,) and f.shape[1] == 3,
              "shapes consistent")
    rep.check(np.abs(W.sum(1) - 1).max() < 1e-5 and W.min() >= 0,
              f"weights: rows sum to 1 (max err {np.abs(W.sum(1) - 1).max():.1e}), min {W.min():.3f}, "
              f"{(W > 0).sum(1).mean():.2f} joints per vertex, max {(W > 0).sum(1).max()}")
    rep.check(f.min() == 0 and f.max() == len(v) - 1, "faces index every vertex")
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    rep.check(bool((counts == 2).all()), f"watertight: {len(counts)} edges, all shared by exactly 2 faces"
              f" (bad: {(counts != 2).sum()})")
    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    rep.check(len(np.unique(half, axis=0)) == len(half), "consistent winding (no repeated half-edge)")
    vol = signed_volume(v, f)
    rep.check(vol > 0, f"signed volume {vol * 1e6:.1f} cm^3 > 0 (outward CCW)")

    err = np.linalg.norm(J - MANO_REST_JOINTS, axis=1)
    rep.check(err.max() <= MAX_JOINT_ERR, f"rest joints vs MANO: max {err.max() * 1000:.3f} mm, "
              f"mean {err.mean() * 1000:.3f} mm")
    inside = [winding_number(J[j], v, f) for j in range(16)]
    rep.check(min(inside) > 0.5, f"all rest joints inside the mesh (min winding {min(inside):.2f})")
    print("\nfingertips (joint 3 -> tip vertex):")
    for i, (name, chain) in enumerate(zip(FINGERS, FINGER_CHAINS)):
        L = np.linalg.norm(v[tips[i]] - J[chain[2]])
        d = J[chain[2]] - J[chain[1]]
        t = v[tips[i]] - J[chain[2]]
        ang = np.degrees(np.arccos(d @ t / np.linalg.norm(d) / np.linalg.norm(t)))
        rep.check(abs(L - DISTAL_LENGTHS[i]) <= MAX_TIP_ERR,
                  f"{name}: tip {tips[i]} at {L * 1000:.1f} mm (MANO {DISTAL_LENGTHS[i] * 1000:.1f}, "
                  f"err {(L - DISTAL_LENGTHS[i]) * 1000:+.2f}), {ang:.0f} deg off the joint2->3 line")

    # sanity of the LBS itself: zero pose is the rest mesh
    v0, j0 = forward(v, W, J, np.zeros(3), np.zeros(45))
    rep.check(np.abs(v0 - v).max() < 1e-7 and np.abs(j0 - J).max() < 1e-12, "zero pose reproduces the rest mesh")

    flex_tests(rep, v, f, W, J, tips)
    print("\nwhole-hand poses:")
    poses = {"rest": np.zeros(45), "fist": fist_pose(J), "point": point_pose(J), "spread": spread_pose(J)}
    posed = {k: pose_test(rep, k, p, v, f, W, J, tips) for k, p in poses.items()}
    # in a fist the fingertips should end near the palm
    fist = posed["fist"]
    d_palm = [np.linalg.norm(fist[tips[i]] - J[chain[0]]) for i, chain in enumerate(FINGER_CHAINS)]
    print("  fist: fingertip to own MCP/CMC distance, mm:", ", ".join(f"{n} {d * 1000:.0f}" for n, d in zip(FINGERS, d_palm)))

    if not args.no_render:
        from _render_hand import render_views
        for name, vp in posed.items():
            path = args.render_dir / f"default_hand_{name}.png"
            render_views(vp, f, path)
            print(f"  rendered {path}")

    print("\nFAILED: " + "; ".join(rep.failures) if rep.failures else "\nall checks passed")
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
