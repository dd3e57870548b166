"""VisPy visuals for the two hands (with the picked-joint highlight) and the stage (floor grid +
XYZ axes), and the pose cache the hands, the onion skin and the compared take pose frames with.

``HandsVisual`` listens to a :class:`~hand_studio.model.Document`: on a frame change it poses
both hands with the engine (``TwoHands.forward`` under ``torch.no_grad``), computes smooth
vertex normals on the CPU and writes only the vertex and normal buffers. ``Mesh.set_data``
every frame rebuilds the mesh program: on Xvfb + llvmpipe (960x640, 2 x 1650 vertices) it
draws ~42 fps against ~160-180 fps for the buffer path (see ``UPLOAD_MODES``). The fast path
relies on vispy 0.17's ``MeshVisual._vertices`` and ``ShadingFilter._normals`` buffers
(vispy is pinned in pyproject); ``tests/test_gui.py`` checks it draws what ``set_data`` draws.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import torch
from vispy import scene
from vispy.visuals.transforms import STTransform

from engine.hands.skeleton import KEYPOINT_PARENTS
from hand_studio.model.document import Document
from hand_studio.model.events import Event

# left = warm skin, right = cool skin; distinct so tests and users can tell them apart
HAND_COLORS = ((0.93, 0.66, 0.50, 1.0), (0.58, 0.72, 0.93, 1.0))
BONE_COLOR = (1.0, 0.95, 0.35, 1.0)
PICK_COLOR = (0.2, 1.0, 0.45, 1.0)
UPLOAD_MODES = ("buffer", "set_data")
# (child, parent) keypoint pairs of the 20 bones
BONES = np.array([(j, p) for j, p in enumerate(KEYPOINT_PARENTS) if p >= 0], np.int32)  # (20, 2)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted smooth normals. vertices (V, 3), faces (F, 3) CCW-outward -> (V, 3) unit."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    face_n = np.cross(v1 - v0, v2 - v0)  # (F, 3), length = 2 * area
    V = vertices.shape[0]
    n = np.stack([sum(np.bincount(faces[:, k], face_n[:, c], minlength=V) for k in range(3))
                  for c in range(3)], axis=1)  # (V, 3)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return n.astype(np.float32)


def floor_grid(y: float, half_size: float = 0.5, step: float = 0.05, major_every: int = 5
               ) -> tuple[np.ndarray, np.ndarray]:
    """Line segments of a square grid on the plane ``y``. -> pos (2N, 3), colors (2N, 4)."""
    n = int(round(half_size / step))
    pos, col = [], []
    for i in range(-n, n + 1):
        c = i * step
        shade = (0.42, 0.42, 0.46, 0.9) if i % major_every == 0 else (0.27, 0.27, 0.30, 0.8)
        pos += [(c, y, -half_size), (c, y, half_size), (-half_size, y, c), (half_size, y, c)]
        col += [shade] * 4
    return np.asarray(pos, np.float32), np.asarray(col, np.float32)


class FramePose(NamedTuple):
    """Both hands posed at one frame (float32, current hand model)."""

    vertices: list  # [left (Vl, 3), right (Vr, 3)]
    normals: list  # [left (Vl, 3), right (Vr, 3)] unit smooth normals
    joints: np.ndarray  # (2, 21, 3) keypoints


class PoseCache:
    """One clip's frames posed by the hand model, least recently used out. Posing is the
    engine's ``TwoHands.forward`` under ``no_grad``; smooth normals are computed once per frame.
    A frame of the default hands holds ~80 kB: 360 frames (12 s at 30 fps) ~28 MB."""

    def __init__(self, hands, clip=None, size: int = 360):
        self.hands = hands
        self.size = int(size)
        self.faces = (np.ascontiguousarray(hands.left.faces, np.int32),
                      np.ascontiguousarray(hands.right.faces, np.int32))
        self._cache: OrderedDict[int, FramePose] = OrderedDict()
        self.clip = None
        if clip is not None:
            self.set_clip(clip)

    def set_clip(self, clip) -> None:
        dev = self.hands.device
        self.clip = clip
        self._params = {k: torch.from_numpy(np.asarray(getattr(clip, k))).to(dev)
                        for k in ("betas", "global_orient", "hand_pose", "transl")}
        self._cache.clear()

    @torch.no_grad()
    def poses(self, frames) -> list[FramePose]:
        """Several frames at once: the uncached ones are posed in one batched forward pass
        (7 frames cost about what 1 does), so onion skins add little per playback tick."""
        frames = [int(f) for f in frames]
        T = self.clip.num_frames
        for f in frames:
            if not 0 <= f < T:
                raise ValueError(f"frame must be in 0..{T - 1}; got {f}")
        missing = sorted({f for f in frames if f not in self._cache})
        if missing:
            p = self._params
            idx = torch.as_tensor(missing, dtype=torch.long, device=p["transl"].device)
            verts, joints = self.hands(p["betas"], p["global_orient"][idx], p["hand_pose"][idx],
                                       p["transl"][idx])  # [(M, V, 3)] * 2, (M, 2, 21, 3)
            verts = [v.float().cpu().numpy() for v in verts]
            joints = joints.float().cpu().numpy()
            for i, f in enumerate(missing):
                vs = [np.ascontiguousarray(verts[h][i]) for h in range(2)]
                ns = [vertex_normals(vs[h], self.faces[h]) for h in range(2)]
                self._cache[f] = FramePose(vs, ns, joints[i])
        out = []
        for f in frames:
            self._cache.move_to_end(f)
            out.append(self._cache[f])
        while len(self._cache) > max(self.size, len(frames)):
            self._cache.popitem(last=False)
        return out


class HandsVisual:
    """Left and right hand meshes, optional skeleton lines and joint markers, one Document.

    ``upload`` picks how each frame reaches the GPU: ``"buffer"`` (vertex + normal buffers only)
    or ``"set_data"`` (vispy's full path; kept for comparison and as a fallback).
    """

    def __init__(self, document: Document, hands, parent: scene.Node | None = None,
                 upload: str = "buffer", cache_frames: int = 360):
        if upload not in UPLOAD_MODES:
            raise ValueError(f"upload must be one of {UPLOAD_MODES}; got {upload!r}")
        self.document = document
        self.hands = hands
        self.upload = upload
        self.cache = PoseCache(hands, size=cache_frames)
        self.faces = self.cache.faces

        self.node = scene.Node(parent=parent, name="hands")
        self.meshes = []
        for h, color in enumerate(HAND_COLORS):
            mesh = scene.visuals.Mesh(parent=self.node, color=color, shading="smooth")
            mesh.name = ("left_hand", "right_hand")[h]
            self.meshes.append(mesh)
        self.skeleton = scene.visuals.Line(parent=self.node, color=BONE_COLOR, width=2.0,
                                           connect="segments", antialias=False)
        self.joint_markers = scene.visuals.Markers(parent=self.node, scaling=False)
        for overlay in (self.skeleton, self.joint_markers):
            overlay.set_gl_state("translucent", depth_test=False)
            overlay.order = 10  # drawn after the meshes so bones show through the skin
        self.picked_marker = scene.visuals.Markers(parent=self.node, scaling=False)
        self.picked_marker.set_gl_state("translucent", depth_test=False)
        self.picked_marker.order = 11
        self.picked_marker.visible = False
        self._picked: tuple[int, int] | None = None
        self.skeleton_visible = False

        self.vertices: list[np.ndarray] = []  # current frame, [(Vl, 3), (Vr, 3)]
        self.joints = np.zeros((2, 21, 3), np.float32)  # current frame keypoints
        document.events.clip.connect(self._on_clip_change)
        document.events.frame.connect(self._on_frame_change)
        self._on_clip_change()
        for mesh in self.meshes:  # the filter needs mesh data before its lights can be set
            sf = mesh.shading_filter
            sf.shininess = 24.0
            sf.specular_light = (1.0, 1.0, 1.0, 0.18)
            sf.ambient_light = (1.0, 1.0, 1.0, 0.38)
            sf.diffuse_light = (1.0, 1.0, 1.0, 0.75)

    # --- model events ---------------------------------------------------------------------
    def _on_clip_change(self, event: Event | None = None) -> None:
        self.cache.set_clip(self.document.clip)
        pose = self.pose(self.document.frame)
        for h, mesh in enumerate(self.meshes):  # full upload: builds program and buffers once
            mesh.set_data(vertices=pose.vertices[h], faces=self.faces[h], color=HAND_COLORS[h])
        self._show(pose)

    def _on_frame_change(self, event: Event | None = None) -> None:
        self._show(self.pose(self.document.frame))

    # --- posing ---------------------------------------------------------------------------
    def pose(self, frame: int) -> FramePose:
        """Both hands at ``frame`` of the document's clip (cached)."""
        return self.cache.poses([frame])[0]

    def poses(self, frames) -> list[FramePose]:
        """Several frames of the document's clip, the uncached ones posed in one batch."""
        return self.cache.poses(frames)

    @torch.no_grad()
    def rest_vertices(self) -> list[np.ndarray]:
        """Both hands flat at the origin with mean shape: [left (Vl, 3), right (Vr, 3)]."""
        dev = self.hands.device
        z = lambda *shape: torch.zeros(*shape, device=dev)  # noqa: E731
        verts, _ = self.hands(z(2, 10), z(1, 2, 3), z(1, 2, 45), z(1, 2, 3))
        return [v[0].float().cpu().numpy() for v in verts]

    def _show(self, pose: FramePose) -> None:
        self.vertices, self.joints = pose.vertices, pose.joints
        for h, mesh in enumerate(self.meshes):
            if self.upload == "set_data":
                mesh.set_data(vertices=pose.vertices[h], faces=self.faces[h], color=HAND_COLORS[h])
            else:
                _upload_positions(mesh, pose.vertices[h], self.faces[h], pose.normals[h])
        if self._skeleton_visible:
            self._update_skeleton()
        self._update_picked()

    def _update_skeleton(self) -> None:
        j = self.joints  # (2, 21, 3)
        segs = np.concatenate([j[h][BONES].reshape(-1, 3) for h in range(2)])  # (80, 3)
        self.skeleton.set_data(pos=segs, connect="segments", color=BONE_COLOR)
        colors = np.repeat(np.asarray(HAND_COLORS, np.float32) * [0.6, 0.6, 0.6, 1], 21, axis=0)
        self.joint_markers.set_data(j.reshape(-1, 3), face_color=colors, edge_color="white",
                                    size=7, edge_width=1)

    def _update_picked(self) -> None:
        if self._picked is None:
            self.picked_marker.visible = False
            return
        h, j = self._picked
        self.picked_marker.set_data(self.joints[h, j][None], face_color=PICK_COLOR,
                                    edge_color="white", size=14, edge_width=2)
        self.picked_marker.visible = True

    # --- properties -----------------------------------------------------------------------
    @property
    def picked(self) -> tuple[int, int] | None:
        """The highlighted joint (hand 0 = left / 1 = right, keypoint 0..20), or None."""
        return self._picked

    @picked.setter
    def picked(self, joint: tuple[int, int] | None) -> None:
        if joint is not None:
            h, j = (int(x) for x in joint)
            if h not in (0, 1) or not 0 <= j < 21:
                raise ValueError(f"picked joint must be (hand 0..1, keypoint 0..20); got {joint!r}")
            joint = (h, j)
        self._picked = joint
        self._update_picked()

    @property
    def skeleton_visible(self) -> bool:
        return self._skeleton_visible

    @skeleton_visible.setter
    def skeleton_visible(self, visible: bool) -> None:
        self._skeleton_visible = bool(visible)
        self.skeleton.visible = self.joint_markers.visible = self._skeleton_visible
        if self._skeleton_visible and len(self.vertices):
            self._update_skeleton()

    @property
    def visible(self) -> bool:
        return self.node.visible

    @visible.setter
    def visible(self, visible: bool) -> None:
        self.node.visible = bool(visible)

    def set_light_dir(self, direction) -> None:
        """Direction the light travels, in scene coordinates (e.g. from the camera)."""
        d = tuple(float(x) for x in direction)
        for mesh in self.meshes:
            mesh.shading_filter.light_dir = d

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box of the current frame's keypoints: (min (3,), max (3,))."""
        j = self.joints.reshape(-1, 3)
        return j.min(0), j.max(0)

    def close(self) -> None:
        """Stop listening to the document and leave the scene."""
        self.document.events.clip.disconnect(self._on_clip_change)
        self.document.events.frame.disconnect(self._on_frame_change)
        self.node.parent = None


def _upload_positions(mesh: scene.visuals.Mesh, vertices: np.ndarray, faces: np.ndarray,
                      normals: np.ndarray | None = None) -> None:
    """Write one frame's positions and smooth normals straight into the mesh's GPU buffers.

    vispy 0.17 draws meshes unindexed, so both buffers hold (3F, 3) rows in face order. The
    MeshData gets the same positions (cheap, no upload) so that anything vispy rebuilds from it
    later (a pending ``set_data``, a shading change) shows this frame, not a stale one.
    """
    if normals is None:
        normals = vertex_normals(vertices, faces)
    mesh.mesh_data.set_vertices(vertices)
    mesh._vertices.set_data(vertices[faces].reshape(-1, 3), convert=True)
    mesh.shading_filter._normals.set_data(normals[faces].reshape(-1, 3), convert=True)
    mesh.update()


class StageVisual:
    """A floor grid on the plane ``y = floor`` and short XYZ axes at its origin."""

    def __init__(self, parent: scene.Node | None = None, floor: float = -0.15, axis_length: float = 0.1):
        self.node = scene.Node(parent=parent, name="stage")
        self.grid = scene.visuals.Line(parent=self.node, connect="segments", antialias=False)
        self.axes = scene.visuals.XYZAxis(parent=self.node, width=3)
        self._axis_length = float(axis_length)
        self.floor = floor

    @property
    def floor(self) -> float:
        return self._floor

    @floor.setter
    def floor(self, y: float) -> None:
        self._floor = float(y)
        pos, col = floor_grid(self._floor)
        self.grid.set_data(pos=pos, color=col, connect="segments")
        L = self._axis_length
        self.axes.transform = STTransform(scale=(L, L, L), translate=(0.0, self._floor, 0.0))

    @property
    def visible(self) -> bool:
        return self.node.visible

    @visible.setter
    def visible(self, visible: bool) -> None:
        self.node.visible = bool(visible)

    def close(self) -> None:
        self.node.parent = None
