"""Onion skin: translucent ghosts of the hands ``before``/``after`` frames around the playhead;
and the compared take: another take's hands at the playhead, as one more ghost.

All ghosts of both hands are one indexed Mesh (one draw call): its faces and per-vertex colours
are set once per configuration; each playhead move writes only the position and normal buffers
(as ``hands_visual``'s fast path does), reusing the hands' pose cache, which poses missing
frames in one batch. Ghosts fade with their distance from the playhead; past ones are tinted red, future
ones green (the animators' convention), each over its hand's colour. ``style="skeleton"``
draws bones instead (cheaper on slow software renderers; see ``bench/playback.py``).
"""
from __future__ import annotations

import numpy as np
from vispy import gloo, scene
from vispy.geometry import MeshData
from vispy.gloo import IndexBuffer, VertexBuffer

from hand_studio._vispy.hands_visual import BONES, HAND_COLORS, HandsVisual, PoseCache
from hand_studio.model.events import Event

ONION_STYLES = ("mesh", "skeleton")
MAX_ONION_FRAMES = 12  # per side
PAST_TINT = (1.0, 0.35, 0.35)
FUTURE_TINT = (0.35, 1.0, 0.5)
MAX_ALPHA = 0.42
COMPARE_ALPHA = 0.38  # the compared take: its hand colours washed towards white
GHOST_CELL = 0.006  # metres: ghosts use a mesh clustered on this grid (default hand: 3,296 -> 1,569 faces)


def cluster_mesh(vertices: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """A coarser mesh by vertex clustering: vertices in one ``cell``-sized grid cell that are
    joined by edges inside it become one (touching fingers stay apart).

    vertices (V, 3) (a rest pose), faces (F, 3) -> keep (K,) the vertex standing for each
    cluster (nearest its centroid), faces (F', 3) into ``keep``, no degenerate or repeated ones.
    """
    if cell <= 0:
        raise ValueError(f"cell must be > 0 metres; got {cell}")
    V = len(vertices)
    _, cell_id = np.unique(np.floor(vertices / cell).astype(np.int64), axis=0, return_inverse=True)
    cell_id = cell_id.ravel()  # (V,)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])  # (3F, 2)
    edges = edges[cell_id[edges[:, 0]] == cell_id[edges[:, 1]]]
    label = np.arange(V)
    while True:  # connected components of the in-cell edges: propagate the smallest index
        m = np.minimum(label[edges[:, 0]], label[edges[:, 1]])
        new = label.copy()
        np.minimum.at(new, edges[:, 0], m)
        np.minimum.at(new, edges[:, 1], m)
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    _, cluster = np.unique(label, return_inverse=True)  # (V,) 0..K-1
    K = cluster.max() + 1
    centroid = np.stack([np.bincount(cluster, vertices[:, c], K) for c in range(3)], 1)
    centroid /= np.bincount(cluster, minlength=K)[:, None]
    dist = np.linalg.norm(vertices - centroid[cluster], axis=1)
    order = np.lexsort((dist, cluster))  # by cluster, nearest the centroid first
    keep = order[np.r_[True, np.diff(cluster[order]) != 0]]  # (K,)
    f = cluster[faces]
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])]
    _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    return keep.astype(np.int64), f[np.sort(first)].astype(np.int32)


def onion_frames(frame: int, num_frames: int, before: int, after: int, step: int
                 ) -> list[tuple[int, int | None]]:
    """Ghost slots around ``frame``: [(signed distance in steps, frame or None past the ends)],
    nearest first on each side: -1, -2, ... -before, then 1, 2, ... after."""
    slots = [(-k, frame - k * step) for k in range(1, before + 1)]
    slots += [(k, frame + k * step) for k in range(1, after + 1)]
    return [(d, f if 0 <= f < num_frames else None) for d, f in slots]


def onion_color(distance: int, hand: int, before: int, after: int) -> tuple[float, float, float, float]:
    """RGBA of a ghost ``distance`` steps away (negative = past): the hand's colour tinted
    towards red (past) or green (future), alpha falling linearly to a third at the far end."""
    n = before if distance < 0 else after
    tint = PAST_TINT if distance < 0 else FUTURE_TINT
    base = HAND_COLORS[hand]
    rgb = [0.5 * base[c] + 0.5 * tint[c] for c in range(3)]
    fade = 1.0 - (abs(distance) - 1) / max(n, 1) * (2.0 / 3.0)
    return (*rgb, MAX_ALPHA * fade)


class _GhostMeshData(MeshData):
    """Mesh data whose normals are given per vertex (``normals`` (V, 3), updated in place), for
    every indexing the shading filter asks for: the ghost mesh draws indexed."""

    normals: np.ndarray | None = None

    def get_vertex_normals(self, indexed=None):
        return self.normals


class _GhostMesh(scene.visuals.Mesh):
    """An indexed mesh drawn without writing depth.

    vispy 0.17 draws meshes unindexed (3 vertices per face): for 12 ghost hands that is 56k
    vertices through llvmpipe's single-threaded vertex stage and the same again uploaded each
    frame; indexed, 9.5k. ``_update_data`` (run by vispy before a draw after ``set_data``) sends
    per-vertex positions and colours and sets an index buffer; the per-frame path then writes
    only the position and normal buffers. It turns depth writes back on after drawing: GL
    keeps the mask, and with it off the next frame's clear would leave the depth buffer stale.
    """

    def _update_data(self):
        md = self.mesh_data
        v = md.get_vertices()
        if v is None:
            return False
        colors = np.ascontiguousarray(md.get_vertex_colors(), np.float32)  # (V, 4)
        self._vertices.set_data(np.ascontiguousarray(v, np.float32))
        prog = self.shared_program
        prog.vert["position"] = self._vertices
        prog["texture2D_LUT"] = self._cmap.texture_lut()
        prog.vert["to_vec4"] = self._ensure_vec4_func(3)
        prog.vert["color_transform"] = self._build_color_transform(colors)
        prog.vert["base_color"] = VertexBuffer(colors)
        self._index_buffer = IndexBuffer(np.ascontiguousarray(md.get_faces(), np.uint32))
        self._data_changed = False
        self.events.data_updated()  # the shading filter takes the per-vertex normals

    def draw(self):
        super().draw()
        gloo.set_depth_mask(True)


class _GhostLines(scene.visuals.Line):
    def draw(self):
        super().draw()
        gloo.set_depth_mask(True)


class OnionSkinVisual:
    """Ghost hands around the playhead of ``hands_visual``'s document. Hidden by default; while
    hidden it does no work."""

    def __init__(self, hands_visual: HandsVisual, parent: scene.Node | None = None,
                 before: int = 3, after: int = 3, step: int = 1, style: str = "mesh",
                 cell: float | None = GHOST_CELL):
        self.hands_visual = hands_visual
        self.document = hands_visual.document
        rest = hands_visual.rest_vertices()
        if cell:  # [(keep (K,), faces (F', 3))] per hand; on llvmpipe ghosts cost per triangle
            self._lod = [cluster_mesh(rest[h], hands_visual.faces[h], cell) for h in range(2)]
        else:
            self._lod = [(np.arange(len(rest[h])), hands_visual.faces[h]) for h in range(2)]
        self.node = scene.Node(parent=parent, name="onion_skin")
        self.mesh = _GhostMesh(parent=self.node, shading="smooth")
        self.mesh.name = "onion_mesh"
        # after the opaque hands; tested against their depth but never hiding each other
        self.mesh.set_gl_state("translucent", depth_test=True, depth_mask=False, cull_face="back")
        self.mesh.order = 5
        self.lines = _GhostLines(parent=self.node, connect="segments", width=2.0, antialias=False)
        self.lines.name = "onion_skeleton"
        self.lines.set_gl_state("translucent", depth_test=True, depth_mask=False)
        self.lines.order = 5
        self._light_dir = (0.0, -1.0, -1.0)
        self._mesh_ready = False  # faces/colours of the current configuration are uploaded
        self._frames: list[int | None] = []  # what the buffers hold, slot by slot
        self.node.visible = False
        self.before = self.after = self.step = 1
        self._style = ONION_STYLES[0]
        self.set_range(before, after, step)
        self.style = style
        self.document.events.frame.connect(self._on_frame_change)
        self.document.events.clip.connect(self._on_clip_change)

    # --- configuration ----------------------------------------------------------------------
    def set_range(self, before: int | None = None, after: int | None = None, step: int | None = None) -> None:
        """Ghost counts per side (0..12) and the frame step between ghosts (1..60)."""
        before = self.before if before is None else before
        after = self.after if after is None else after
        step = self.step if step is None else step
        for name, v, lo, hi in (("before", before, 0, MAX_ONION_FRAMES),
                                ("after", after, 0, MAX_ONION_FRAMES), ("step", step, 1, 60)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ValueError(f"onion skin {name} must be an integer in {lo}..{hi}; got {v!r}")
        self.before, self.after, self.step = int(before), int(after), int(step)
        self._mesh_ready = False
        self.refresh()

    @property
    def style(self) -> str:
        return self._style

    @style.setter
    def style(self, style: str) -> None:
        if style not in ONION_STYLES:
            raise ValueError(f"onion skin style must be one of {ONION_STYLES}; got {style!r}")
        self._style = style
        self.refresh()

    @property
    def visible(self) -> bool:
        return self.node.visible

    @visible.setter
    def visible(self, visible: bool) -> None:
        self.node.visible = bool(visible)
        self.refresh()

    @property
    def frames(self) -> list[int | None]:
        """The frame each ghost shows now (None: past the clip's ends), as in :func:`onion_frames`."""
        return list(self._frames)

    def set_light_dir(self, direction) -> None:
        self._light_dir = tuple(float(x) for x in direction)
        if self._mesh_ready:
            self.mesh.shading_filter.light_dir = self._light_dir

    # --- model events ---------------------------------------------------------------------
    def _on_frame_change(self, event: Event | None = None) -> None:
        self.refresh()

    def _on_clip_change(self, event: Event | None = None) -> None:
        self.refresh()

    # --- drawing --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Bring the buffers to the playhead (no-op while hidden)."""
        if not self.node.visible:
            self._frames = []
            return
        slots = onion_frames(self.document.frame, self.document.num_frames, self.before, self.after, self.step)
        used = [f for _, f in slots if f is not None]
        self.mesh.visible = self._style == "mesh" and bool(used)
        self.lines.visible = self._style == "skeleton" and bool(used)
        poses = dict(zip(used, self.hands_visual.poses(used))) if used else {}
        self._frames = [f for _, f in slots]
        if self._style == "mesh":
            self._draw_mesh(slots, poses)
        else:
            self._draw_skeleton(slots, poses)

    def _build_mesh(self, slots) -> None:
        """Faces and colours of every (slot, hand) block; positions come per frame."""
        faces_h = [f for _, f in self._lod]
        nv = [len(keep) for keep, _ in self._lod]  # ghost vertices per hand
        faces, colors, offset = [], [], 0
        for d, _ in slots:
            for h in range(2):
                faces.append(faces_h[h] + offset)
                colors.append(np.broadcast_to(np.asarray(onion_color(d, h, self.before, self.after),
                                                         np.float32), (nv[h], 4)))
                offset += nv[h]
        self._nv = nv
        self._faces = np.concatenate(faces).astype(np.int32)  # (S * (Fl + Fr), 3)
        self._verts = np.zeros((offset, 3), np.float32)  # (S * (Vl + Vr), 3)
        self._normals = np.zeros((offset, 3), np.float32)
        self._normals[:, 2] = 1.0
        md = _GhostMeshData(vertices=self._verts, faces=self._faces, vertex_colors=np.concatenate(colors))
        md.normals = self._normals
        self.mesh.set_data(meshdata=md)
        sf = self.mesh.shading_filter  # lights can be set once the filter has data
        sf.shininess = 16.0
        sf.specular_light = (1.0, 1.0, 1.0, 0.10)
        sf.ambient_light = (1.0, 1.0, 1.0, 0.5)
        sf.diffuse_light = (1.0, 1.0, 1.0, 0.6)
        sf.light_dir = self._light_dir
        self._mesh_ready = True

    def _draw_mesh(self, slots, poses) -> None:
        if not poses:
            return
        if not self._mesh_ready:
            self._build_mesh(slots)
        i = 0
        for _, f in slots:
            for h in range(2):
                n = self._nv[h]
                if f is None:  # collapse the block to a point: no fragments
                    self._verts[i:i + n] = 0.0
                else:
                    keep = self._lod[h][0]
                    self._verts[i:i + n] = poses[f].vertices[h][keep]
                    self._normals[i:i + n] = poses[f].normals[h][keep]
                i += n
        self.mesh.mesh_data.set_vertices(self._verts)  # keeps a later vispy rebuild on this frame
        self.mesh._vertices.set_data(self._verts)
        self.mesh.shading_filter._normals.set_data(self._normals)
        self.mesh.update()

    def _draw_skeleton(self, slots, poses) -> None:
        pos, col = [], []
        for d, f in slots:
            if f is None:
                continue
            j = poses[f].joints  # (2, 21, 3)
            for h in range(2):
                pos.append(j[h][BONES].reshape(-1, 3))  # (40, 3)
                c = np.asarray(onion_color(d, h, self.before, self.after), np.float32)
                c[3] = min(1.0, c[3] * 2.0)  # thin lines need more opacity than surfaces
                col.append(np.broadcast_to(c, (len(BONES) * 2, 4)))
        if not pos:
            return
        self.lines.set_data(pos=np.concatenate(pos), color=np.concatenate(col), connect="segments")

    def close(self) -> None:
        """Stop listening to the document and leave the scene."""
        self.document.events.frame.disconnect(self._on_frame_change)
        self.document.events.clip.disconnect(self._on_clip_change)
        self.node.parent = None


def ghost_frame(frame: int, fps: float, clip) -> int:
    """The compared clip's frame at the same moment as the document's ``frame`` (at ``fps``): takes
    at different rates (a 60 fps import beside a 30 fps generation) line up in time, not by frame
    number; past its end the compared clip holds its last frame."""
    f = frame if abs(clip.fps - fps) < 1e-9 else int(np.floor(frame * clip.fps / fps + 0.5))
    return min(max(f, 0), clip.num_frames - 1)


class CompareGhostVisual:
    """Another take's hands at the playhead (held at its last frame past its end), as one
    translucent mesh, so two takes can be compared in place. Hidden while no clip is set."""

    def __init__(self, hands_visual: HandsVisual, parent: scene.Node | None = None):
        self.document = hands_visual.document
        self.cache = PoseCache(hands_visual.hands, size=120)
        self.faces = hands_visual.faces
        self.node = scene.Node(parent=parent, name="compare_take")
        self.mesh = _GhostMesh(parent=self.node, shading="smooth")
        self.mesh.name = "compare_mesh"
        self.mesh.set_gl_state("translucent", depth_test=True, depth_mask=False, cull_face="back")
        self.mesh.order = 6
        self.node.visible = False
        self._light_dir = (0.0, -1.0, -1.0)
        self._verts: np.ndarray | None = None  # (Vl + Vr, 3), both hands in one mesh
        self.document.events.frame.connect(self._on_frame_change)

    @property
    def clip(self):
        return self.cache.clip

    def set_clip(self, clip) -> None:
        """Show ``clip`` (an engine Clip) beside the document's; None hides it."""
        if clip is None:
            self.cache.clip = None
            self.node.visible = False
            return
        self.cache.set_clip(clip)
        if self._verts is None:
            self._build()
        self.node.visible = True
        self.refresh()

    def _build(self) -> None:
        nv = [int(f.max()) + 1 for f in self.faces]
        faces = np.concatenate([self.faces[0], self.faces[1] + nv[0]]).astype(np.int32)
        colors = []
        for h in range(2):
            rgb = [0.35 * c + 0.65 for c in HAND_COLORS[h][:3]]
            colors.append(np.broadcast_to(np.asarray((*rgb, COMPARE_ALPHA), np.float32), (nv[h], 4)))
        self._nv = nv
        self._verts = np.zeros((sum(nv), 3), np.float32)
        self._normals = np.zeros((sum(nv), 3), np.float32)
        md = _GhostMeshData(vertices=self._verts, faces=faces, vertex_colors=np.concatenate(colors))
        md.normals = self._normals
        self.mesh.set_data(meshdata=md)
        sf = self.mesh.shading_filter
        sf.shininess = 16.0
        sf.specular_light = (1.0, 1.0, 1.0, 0.10)
        sf.ambient_light = (1.0, 1.0, 1.0, 0.5)
        sf.diffuse_light = (1.0, 1.0, 1.0, 0.6)
        sf.light_dir = self._light_dir

    def _on_frame_change(self, event: Event | None = None) -> None:
        if self.node.visible:
            self.refresh()

    def refresh(self) -> None:
        clip = self.cache.clip
        pose = self.cache.poses([ghost_frame(self.document.frame, self.document.fps, clip)])[0]
        n0 = self._nv[0]
        for h, sl in enumerate((slice(0, n0), slice(n0, None))):
            self._verts[sl] = pose.vertices[h][:self._nv[h]]
            self._normals[sl] = pose.normals[h][:self._nv[h]]
        self.mesh.mesh_data.set_vertices(self._verts)
        self.mesh._vertices.set_data(self._verts)
        self.mesh.shading_filter._normals.set_data(self._normals)
        self.mesh.update()

    def set_light_dir(self, direction) -> None:
        self._light_dir = tuple(float(x) for x in direction)
        if self._verts is not None:
            self.mesh.shading_filter.light_dir = self._light_dir

    def close(self) -> None:
        self.document.events.frame.disconnect(self._on_frame_change)
        self.node.parent = None
