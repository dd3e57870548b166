"""glTF binary (.glb) writer through pygltflib: skinned hand meshes, skeletons, one animation.

glTF's own conventions are ours: metres, +Y up, right-handed. Joint nodes are named like the
FBX bones (``R_index1``, tips ``R_index_tip``); rest rotations are identity, inverse bind
matrices are pure translations. Rotations are LINEAR quaternion samplers kept in one hemisphere
over time (no long-way-round interpolation); the wrist also animates its translation.
Skin weights use JOINTS_0/WEIGHTS_0 and, where a vertex has more than four bones, JOINTS_1/WEIGHTS_1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.export.rig import BONE_PARENTS, ExportOptions, HandRig, build_rigs, matrix_to_quat, prepare
from engine.motion.clip import Clip, ClipError, atomic_write

ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
FLOAT, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5123, 5125
_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


class _Blob:
    """Accumulates the binary chunk; one bufferView per accessor (4-byte aligned)."""

    def __init__(self, g):
        self.g, self.parts, self.size = g, [], 0

    def accessor(self, arr: np.ndarray, comp: int, width: int, target: int | None = None,
                 minmax: bool = False) -> int:
        import pygltflib as gl
        data = np.ascontiguousarray(arr).tobytes()
        pad = (-self.size) % 4
        if pad:
            self.parts.append(b"\x00" * pad)
            self.size += pad
        self.g.bufferViews.append(gl.BufferView(buffer=0, byteOffset=self.size, byteLength=len(data), target=target))
        self.parts.append(data)
        self.size += len(data)
        flat = np.asarray(arr).reshape(len(arr), -1) if width > 1 else np.asarray(arr).reshape(-1, 1)
        acc = gl.Accessor(bufferView=len(self.g.bufferViews) - 1, componentType=comp, count=len(arr),
                          type=_TYPES[width])
        if minmax:
            acc.min = [float(v) if comp == FLOAT else int(v) for v in flat.min(0)]
            acc.max = [float(v) if comp == FLOAT else int(v) for v in flat.max(0)]
        self.g.accessors.append(acc)
        return len(self.g.accessors) - 1

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    out = np.zeros_like(v)
    for k in range(3):
        np.add.at(out, f[:, k], n)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _influences(weights: np.ndarray, sets: int) -> tuple[np.ndarray, np.ndarray]:
    """(V, 16) -> joints (V, 4*sets) uint16 and normalised weights (V, 4*sets) float32."""
    k = 4 * sets
    order = np.argsort(-weights, axis=1)[:, :k]
    w = np.take_along_axis(weights, order, 1)
    w = w / w.sum(1, keepdims=True)
    order = np.where(w > 0, order, 0)
    return order.astype(np.uint16), w.astype(np.float32)


def _hemisphere(q: np.ndarray) -> np.ndarray:
    """Flip quaternions (T, J, 4) so consecutive keys have a non-negative dot product."""
    dots = (q[1:] * q[:-1]).sum(-1)
    sign = np.concatenate([np.ones((1,) + q.shape[1:-1]), np.cumprod(np.where(dots < 0, -1.0, 1.0), 0)], 0)
    return q * sign[..., None]


def glb_bytes(clip: Clip, options: ExportOptions | None = None, with_mesh: bool = True) -> bytes:
    import pygltflib as gl

    options = options or ExportOptions()
    clip = prepare(clip, options)
    rigs = build_rigs(clip, options.hand_indices(), with_mesh=with_mesh)
    g = gl.GLTF2(asset=gl.Asset(generator="Hand Studio (engine.export.gltf)", version="2.0"))
    g.scenes, g.nodes, g.meshes, g.skins, g.accessors, g.bufferViews = [gl.Scene(nodes=[])], [], [], [], [], []
    g.scene = 0
    blob = _Blob(g)
    T = clip.num_frames
    times = blob.accessor((np.arange(T) / clip.fps).astype(np.float32), FLOAT, 1, minmax=True)
    samplers, channels = [], []
    for rig in rigs:
        base = len(g.nodes)
        for j, name in enumerate(rig.names):
            kids = [base + c for c, p in enumerate(BONE_PARENTS) if p == j]
            g.nodes.append(gl.Node(name=name, translation=[float(x) for x in rig.offsets[j]],
                                   rotation=[0.0, 0.0, 0.0, 1.0], children=kids or None))
        g.scenes[0].nodes.append(base)
        q = _hemisphere(matrix_to_quat(rig.local_R))  # (T, 16, 4) wxyz
        for j in range(16):
            out = blob.accessor(q[:, j][:, [1, 2, 3, 0]].astype(np.float32), FLOAT, 4)
            samplers.append(gl.AnimationSampler(input=times, output=out, interpolation="LINEAR"))
            channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                                target=gl.AnimationChannelTarget(node=base + j, path="rotation")))
        out = blob.accessor(rig.root_pos.astype(np.float32), FLOAT, 3)
        samplers.append(gl.AnimationSampler(input=times, output=out, interpolation="LINEAR"))
        channels.append(gl.AnimationChannel(sampler=len(samplers) - 1,
                                            target=gl.AnimationChannelTarget(node=base, path="translation")))
        if with_mesh and len(rig.vertices):
            _mesh(g, blob, rig, base)
    g.animations = [gl.Animation(name="Take 001", samplers=samplers, channels=channels)]
    data = blob.bytes()
    g.buffers = [gl.Buffer(byteLength=len(data))]
    g.set_binary_blob(data)
    return b"".join(g.save_to_bytes())


def _mesh(g, blob: _Blob, rig: HandRig, base: int) -> None:
    import pygltflib as gl
    v = rig.vertices.astype(np.float32)
    f = rig.faces.astype(np.uint32)
    sets = 2 if int((rig.weights > 0).sum(1).max()) > 4 else 1
    joints, weights = _influences(rig.weights, sets)
    attrs = gl.Attributes(
        POSITION=blob.accessor(v, FLOAT, 3, ARRAY_BUFFER, minmax=True),
        NORMAL=blob.accessor(_vertex_normals(rig.vertices, rig.faces).astype(np.float32), FLOAT, 3, ARRAY_BUFFER),
        JOINTS_0=blob.accessor(joints[:, :4], UNSIGNED_SHORT, 4, ARRAY_BUFFER),
        WEIGHTS_0=blob.accessor(weights[:, :4], FLOAT, 4, ARRAY_BUFFER))
    if sets == 2:
        attrs.JOINTS_1 = blob.accessor(joints[:, 4:], UNSIGNED_SHORT, 4, ARRAY_BUFFER)
        attrs.WEIGHTS_1 = blob.accessor(weights[:, 4:], FLOAT, 4, ARRAY_BUFFER)
    indices = blob.accessor(f.reshape(-1), UNSIGNED_INT, 1, ELEMENT_ARRAY_BUFFER, minmax=True)
    g.meshes.append(gl.Mesh(name=rig.names[0][:2] + "hand_mesh",
                            primitives=[gl.Primitive(attributes=attrs, indices=indices)]))
    inv_bind = np.repeat(np.eye(4, dtype=np.float32)[None], 21, 0)
    inv_bind[:, :3, 3] = -rig.rest
    ibm = blob.accessor(inv_bind.transpose(0, 2, 1).reshape(21, 16), FLOAT, 16)  # column-major
    g.skins.append(gl.Skin(name=rig.names[0][:2] + "hand", joints=list(range(base, base + 21)),
                           inverseBindMatrices=ibm, skeleton=base))
    g.nodes.append(gl.Node(name=rig.names[0][:2] + "hand_mesh", mesh=len(g.meshes) - 1, skin=len(g.skins) - 1))
    g.scenes[0].nodes.append(len(g.nodes) - 1)


def export_glb(clip: Clip, path: str | Path, options: ExportOptions | None = None,
               with_mesh: bool = True) -> list[Path]:
    """Write the clip as a .glb (atomically); returns ``[path]``."""
    path = Path(path)
    if path.suffix.lower() != ".glb":
        raise ClipError(f"{path}: the glTF exporter writes binary .glb files")
    data = glb_bytes(clip, options, with_mesh)
    atomic_write(path, lambda fh: fh.write(data))
    return [path]
