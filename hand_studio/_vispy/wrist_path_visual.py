"""Wrist motion paths: per hand a polyline through the wrist at every frame of the clip, markers
on keyed frames and at the playhead, and the pinned target path (dashed) where the document
holds a wrist-path constraint. Drawn over the meshes (no depth test), like a motion trail.
While the viewport edits a path it also shows the dragged point (``set_dragged``) and the stroke
being drawn (``set_stroke``).

Wrist positions are ``clip.joints[:, h, 0]``, the same ones ``model.generation`` pins.
"""
from __future__ import annotations

import numpy as np
from vispy import scene

from hand_studio.model.document import Document
from hand_studio.model.events import Event
from hand_studio.model.tracks import HANDS, hand_tracks

PATH_COLORS = ((1.0, 0.55, 0.2, 0.95), (0.3, 0.62, 1.0, 0.95))  # left orange, right blue
PINNED_COLOR = (1.0, 0.3, 0.9, 1.0)  # magenta, dashed
CURRENT_COLOR = (1.0, 1.0, 1.0, 1.0)
DRAGGED_COLOR = (1.0, 1.0, 0.25, 1.0)  # yellow ring on the dragged pinned point
STROKE_COLOR = (1.0, 1.0, 0.25, 0.9)  # the path being drawn


def dashed_segments(points, dash: float = 0.012, gap: float = 0.008) -> np.ndarray:
    """A polyline (N, 3) cut into dashes of ``dash`` metres every ``dash + gap`` along its
    length -> segment end points (2M, 3) for ``connect="segments"``; (0, 3) when N < 2."""
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3); got {p.shape}")
    if dash <= 0 or gap < 0:
        raise ValueError(f"dash must be > 0 and gap >= 0; got {dash}, {gap}")
    if len(p) < 2:
        return np.zeros((0, 3), np.float32)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])  # (N,) arc length
    if s[-1] <= 0:
        return np.zeros((0, 3), np.float32)
    starts = np.arange(0.0, s[-1], dash + gap)  # (M,)
    ends = np.minimum(starts + dash, s[-1])
    keep = ends - starts > 1e-6 * dash  # no zero-length dash from rounding at the very end
    starts, ends = starts[keep], ends[keep]
    at = lambda t: np.stack([np.interp(t, s, p[:, c]) for c in range(3)], axis=1)  # noqa: E731
    return np.stack([at(starts), at(ends)], axis=1).reshape(-1, 3).astype(np.float32)


def keyed_frames(document: Document, hand: str) -> list[int]:
    """Frames with a key on either of ``hand``'s tracks (pose or wrist), sorted."""
    return sorted(set().union(*(document.key_frames(t) for t in hand_tracks(hand))))


class WristPathVisual:
    """Both hands' wrist paths for one Document. Hidden by default; while hidden it does no work."""

    def __init__(self, document: Document, parent: scene.Node | None = None):
        self.document = document
        self.node = scene.Node(parent=parent, name="wrist_paths")
        self.paths = []
        for h, color in enumerate(PATH_COLORS):
            line = scene.visuals.Line(parent=self.node, color=color, width=2.0, antialias=False)
            line.name = f"{HANDS[h]}_wrist_path"
            self.paths.append(line)
        self.pinned = scene.visuals.Line(parent=self.node, color=PINNED_COLOR, width=2.0,
                                         connect="segments", antialias=False)
        self.pinned_points = scene.visuals.Markers(parent=self.node, scaling=False)
        self.key_markers = scene.visuals.Markers(parent=self.node, scaling=False)
        self.current_markers = scene.visuals.Markers(parent=self.node, scaling=False)
        self.dragged_marker = scene.visuals.Markers(parent=self.node, scaling=False)
        self.stroke = scene.visuals.Line(parent=self.node, color=STROKE_COLOR, width=2.0, antialias=False)
        for i, v in enumerate((*self.paths, self.pinned, self.pinned_points, self.key_markers,
                               self.current_markers, self.dragged_marker, self.stroke)):
            v.set_gl_state("translucent", depth_test=False)
            v.order = 12 + i
        self.dragged_marker.visible = self.stroke.visible = False
        self.dragged: tuple[int, int] | None = None  # (hand 0/1, frame) of the dragged point
        self.wrists = np.zeros((0, 2, 3), np.float32)  # (T, 2, 3) every frame's wrists
        self.node.visible = False
        document.events.clip.connect(self._on_clip_change)
        document.events.frame.connect(self._on_frame_change)
        document.events.keys.connect(self._on_keys_change)
        document.events.constraints.connect(self._on_constraints_change)

    @property
    def visible(self) -> bool:
        return self.node.visible

    @visible.setter
    def visible(self, visible: bool) -> None:
        self.node.visible = bool(visible)
        if visible:
            self.refresh()

    def path(self, hand: int) -> np.ndarray:
        """The drawn polyline of hand 0 (left) / 1 (right): (T, 3) wrist positions."""
        return self.wrists[:, hand]

    def set_dragged(self, dragged: tuple[int, int] | None) -> None:
        """Ring the point being dragged: (hand 0/1, frame), or None. It follows the pinned path
        (the take's wrist where that frame is not pinned)."""
        self.dragged = None if dragged is None else (int(dragged[0]), int(dragged[1]))
        if self.node.visible:
            self._update_dragged()

    def set_stroke(self, points) -> None:
        """Draw the stroke of a path being drawn: (M, 3) world points; None (or < 2) hides it."""
        pos = None if points is None else np.asarray(points, np.float32).reshape(-1, 3)
        self.stroke.visible = pos is not None and len(pos) >= 2
        if self.stroke.visible:
            self.stroke.set_data(pos=pos, color=STROKE_COLOR, connect="strip")

    # --- model events ---------------------------------------------------------------------
    def _on_clip_change(self, event: Event | None = None) -> None:
        if self.node.visible:
            self.refresh()

    def _on_frame_change(self, event: Event | None = None) -> None:
        if self.node.visible and len(self.wrists):
            self._update_current()

    def _on_keys_change(self, event: Event | None = None) -> None:
        if self.node.visible and len(self.wrists):
            self._update_keys()

    def _on_constraints_change(self, event: Event | None = None) -> None:
        if self.node.visible:
            self._update_pinned()

    # --- drawing --------------------------------------------------------------------------
    def refresh(self) -> None:
        """Rebuild everything from the document."""
        self.wrists = np.ascontiguousarray(self.document.clip.joints[:, :, 0], np.float32)  # (T, 2, 3)
        for h, line in enumerate(self.paths):
            pos = self.wrists[:, h]
            if len(pos) < 2:  # one frame: a zero-length segment keeps the visual valid
                pos = np.repeat(pos, 2, axis=0)
            line.set_data(pos=pos, color=PATH_COLORS[h], connect="strip")
        self._update_keys()
        self._update_pinned()
        self._update_current()

    def _update_current(self) -> None:
        pos = self.wrists[self.document.frame]  # (2, 3)
        self.current_markers.set_data(pos, face_color=np.asarray(PATH_COLORS, np.float32),
                                      edge_color=CURRENT_COLOR, edge_width=2, size=12, symbol="disc")

    def _update_keys(self) -> None:
        pos, col = [], []
        for h, hand in enumerate(HANDS):
            frames = keyed_frames(self.document, hand)
            pos.append(self.wrists[frames, h].reshape(-1, 3))
            col += [PATH_COLORS[h]] * len(frames)
        pos = np.concatenate(pos)
        self.key_markers.visible = len(pos) > 0
        if len(pos):
            self.key_markers.set_data(pos, face_color=np.asarray(col, np.float32), edge_color="white",
                                      edge_width=1, size=10, symbol="diamond")

    def _update_pinned(self) -> None:
        segs, points = [], []
        for hand in HANDS:
            pts = self.document.wrist_path(hand)
            if not pts:
                continue
            xyz = np.asarray([p for _, p in pts], np.float32)  # (N, 3)
            points.append(xyz)
            segs.append(dashed_segments(xyz))
        segs = np.concatenate(segs) if segs else np.zeros((0, 3), np.float32)
        self.pinned.visible = len(segs) > 0
        if len(segs):
            self.pinned.set_data(pos=segs, color=PINNED_COLOR, connect="segments")
        self.pinned_points.visible = bool(points)
        if points:
            self.pinned_points.set_data(np.concatenate(points), face_color=PINNED_COLOR,
                                        edge_color=PINNED_COLOR, size=5, symbol="cross")
        self._update_dragged()

    def _update_dragged(self) -> None:
        self.dragged_marker.visible = self.dragged is not None and len(self.wrists) > 0
        if not self.dragged_marker.visible:
            return
        h, frame = self.dragged
        pinned = dict(self.document.wrist_path(HANDS[h]))
        if frame in pinned:
            pos = np.asarray(pinned[frame], np.float32)
        elif frame < len(self.wrists):
            pos = self.wrists[frame, h]
        else:
            self.dragged_marker.visible = False
            return
        self.dragged_marker.set_data(pos.reshape(1, 3), face_color=(0, 0, 0, 0), edge_color=DRAGGED_COLOR,
                                     edge_width=2, size=14, symbol="disc")

    def close(self) -> None:
        """Stop listening to the document and leave the scene."""
        ev = self.document.events
        ev.clip.disconnect(self._on_clip_change)
        ev.frame.disconnect(self._on_frame_change)
        ev.keys.disconnect(self._on_keys_change)
        ev.constraints.disconnect(self._on_constraints_change)
        self.node.parent = None
