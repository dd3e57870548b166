"""VisPy visuals for the two hands and the stage (floor grid + XYZ axes).

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


class HandsVisual:
    """Left and right hand meshes, optional skeleton lines and joint markers, one Document.

    ``upload`` picks how each frame reaches the GPU: ``"buffer"`` (vertex + normal buffers only)
    or ``"set_data"`` (vispy's full path; kept for comparison and as a fallback).
    """

    def __init__(self, document: Document, hands, parent: scene.Node | None = None,
                 upload: str = "buffer", cache_frames: int = 256):
        if upload not in UPLOAD_MODES:
            raise ValueError(f"upload must be one of {UPLOAD_MODES}; got {upload!r}")
        self.document = document
        self.hands = hands
        self.upload = upload
        self._cache: OrderedDict[int, tuple[list[np.ndarray], np.ndarray]] = OrderedDict()
        self._cache_frames = int(cache_frames)
        self.faces = (np.ascontiguousarray(hands.left.faces, np.int32),
                      np.ascontiguousarray(hands.right.faces, np.int32))

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
        clip = self.document.clip
        dev = self.hands.device
        self._params = {k: torch.from_numpy(np.asarray(getattr(clip, k))).to(dev)
                        for k in ("betas", "global_orient", "hand_pose", "transl")}
        self._cache.clear()
        verts, joints = self._pose(self.document.frame)
        for h, mesh in enumerate(self.meshes):  # full upload: builds program and buffers once
            mesh.set_data(vertices=verts[h], faces=self.faces[h], color=HAND_COLORS[h])
        self._show(verts, joints)

    def _on_frame_change(self, event: Event | None = None) -> None:
        self._show(*self._pose(self.document.frame))

    # --- posing ---------------------------------------------------------------------------
    @torch.no_grad()
    def _pose(self, frame: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Frame -> ([left (Vl, 3), right (Vr, 3)] float32 vertices, joints (2, 21, 3))."""
        if frame in self._cache:
            self._cache.move_to_end(frame)
            return self._cache[frame]
        p = self._params
        sl = slice(frame, frame + 1)
        verts, joints = self.hands(p["betas"], p["global_orient"][sl], p["hand_pose"][sl], p["transl"][sl])
        out = ([v[0].float().cpu().numpy() for v in verts], joints[0].float().cpu().numpy())
        self._cache[frame] = out
        if len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)
        return out

    def _show(self, verts: list[np.ndarray], joints: np.ndarray) -> None:
        self.vertices, self.joints = verts, joints
        for h, mesh in enumerate(self.meshes):
            if self.upload == "set_data":
                mesh.set_data(vertices=verts[h], faces=self.faces[h], color=HAND_COLORS[h])
            else:
                _upload_positions(mesh, verts[h], self.faces[h])
        if self._skeleton_visible:
            self._update_skeleton()

    def _update_skeleton(self) -> None:
        j = self.joints  # (2, 21, 3)
        segs = np.concatenate([j[h][BONES].reshape(-1, 3) for h in range(2)])  # (80, 3)
        self.skeleton.set_data(pos=segs, connect="segments", color=BONE_COLOR)
        colors = np.repeat(np.asarray(HAND_COLORS, np.float32) * [0.6, 0.6, 0.6, 1], 21, axis=0)
        self.joint_markers.set_data(j.reshape(-1, 3), face_color=colors, edge_color="white",
                                    size=7, edge_width=1)

    # --- properties -----------------------------------------------------------------------
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


def _upload_positions(mesh: scene.visuals.Mesh, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write one frame's positions and smooth normals straight into the mesh's GPU buffers.

    vispy 0.17 draws meshes unindexed, so both buffers hold (3F, 3) rows in face order. The
    MeshData gets the same positions (cheap, no upload) so that anything vispy rebuilds from it
    later (a pending ``set_data``, a shading change) shows this frame, not a stale one.
    """
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
