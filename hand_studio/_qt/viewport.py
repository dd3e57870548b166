"""The 3D viewport: a VisPy SceneCanvas with the hands, the stage and a turntable camera, plus
the onion skin, the wrist motion paths and joint picking (a click projects the current frame's
42 keypoints on the CPU and takes the nearest within a few pixels; see ``_vispy/picking.py``).

Path edit mode (``set_path_edit(hand)``) edits one hand's pinned wrist path in place: dragging a
path point moves it in the camera's view plane, its neighbours following with a raised-cosine
falloff (one undo step per drag); Shift+drag draws a new path, one point per frame of the
interval (the whole clip when none). Edits go through ``push`` (the window's undo stack). While
a path gesture runs, the mouse events are blocked before the scene sees them and the camera is
not interactive, so it neither orbits nor pans.

World frame (docs/architecture.md): +Y up, +X the performer's right, the performer looks
along -Z. With ``TurntableCamera(up="+y")`` the eye sits at ``(-cos az, ., sin az)``, so
azimuth 90 puts it behind the performer (first person) and -90 in front of them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget
from vispy import scene
from vispy.io import write_png
from vispy.util import keys

from hand_studio._vispy.hands_visual import HandsVisual, StageVisual
from hand_studio._vispy.onion_visual import CompareGhostVisual, OnionSkinVisual
from hand_studio._vispy.picking import (PICK_RADIUS_PX, drag_path, pick_nearest, project_points,
                                        resample_polyline, transform_matrix, unproject_points)
from hand_studio._vispy.wrist_path_visual import WristPathVisual
from hand_studio.model import commands as C
from hand_studio.model.document import Document
from hand_studio.model.events import Event
from hand_studio.model.generation import pinned_wrist_path
from hand_studio.model.tracks import HANDS, check_hand

BACKGROUND = "#1d1f23"
# name -> (azimuth, elevation) in degrees
CAMERA_PRESETS: dict[str, tuple[float, float]] = {
    "front": (-90.0, 8.0),          # facing the performer
    "top": (90.0, 90.0),            # from above, forward (-Z) up the screen, +X right
    "first_person": (90.0, 28.0),   # behind and above the hands, looking along -Z
    "orbit": (-112.0, 36.0),        # 3/4 view from the front right, above
}
CLICK_SLOP_PX = 4.0  # a press and release closer than this is a click (a pick), not a drag
PATH_FALLOFF_FRAMES = 8  # a dragged path point's neighbours within this many frames follow it


@dataclass
class _PathGesture:
    """One drag of a path point ('drag') or one drawn stroke ('draw'), from press to release."""

    kind: str
    hand: str
    matrix: np.ndarray  # (4, 4) world -> canvas at the press (the camera is held still)
    press: np.ndarray  # (2,) canvas pixels
    depth: float  # the view plane's depth (z/w)
    frames: np.ndarray | None = None  # drag: (N,) the path's frames
    base: np.ndarray | None = None  # drag: (N, 3) the path at the press
    frame: int = -1  # drag: the dragged frame
    drag_id: int = -1
    moved: bool = False
    samples: list = field(default_factory=list)  # draw: canvas pixels (2,)


def _do_command(make_command) -> bool:
    """``push`` without an undo stack: make the command and do it."""
    make_command().do()
    return True


class QtViewport(QWidget):
    """Shows a Document's hands; owns the canvas, the camera and the visuals. ``push`` takes a
    function making a model command and runs it through the window's undo stack (without one,
    path edits are done directly, with no undo)."""

    sig_camera_preset_changed = Signal(str)
    """A camera preset was applied (its name)."""
    sig_joint_picked = Signal(str, int)
    """A click picked a joint ('left'/'right', keypoint 0..20), or cleared the pick ('', -1)."""
    sig_onion_skin_toggled = Signal(bool)
    """The onion skin was shown (True) or hidden (False)."""
    sig_wrist_paths_toggled = Signal(bool)
    """The wrist motion paths were shown (True) or hidden (False)."""
    sig_path_edit_changed = Signal(str)
    """Path edit mode now edits this hand's wrist path ('left'/'right'), or is off ('')."""
    sig_wrist_path_edited = Signal(str)
    """A drag or a drawn stroke ended and pinned this hand's wrist path ('left'/'right')."""

    def __init__(self, document: Document, hands, parent: QWidget | None = None,
                 upload: str = "buffer", size: tuple[int, int] = (960, 640), push=None):
        super().__init__(parent)
        self.document = document
        self.push = push if push is not None else _do_command
        self._path_falloff = PATH_FALLOFF_FRAMES
        self._path_edit: str | None = None
        self._paths_were_visible = False  # wrist paths shown before path edit mode showed them
        self._gesture: _PathGesture | None = None
        self._camera_was_interactive = True
        self.canvas = scene.SceneCanvas(keys=None, bgcolor=BACKGROUND, size=size, parent=self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas.native)

        self.view = self.canvas.central_widget.add_view()
        self.view.camera = scene.TurntableCamera(up="+y", fov=35.0)
        # near = d/10, far = 10 d (vispy's default 1e6 z-fights where fingers touch)
        self.view.camera.depth_value = 10.0
        self.stage = StageVisual(parent=self.view.scene)
        self.hands_visual = HandsVisual(document, hands, parent=self.view.scene, upload=upload)
        self.onion_skin = OnionSkinVisual(self.hands_visual, parent=self.view.scene)
        self.wrist_paths = WristPathVisual(document, parent=self.view.scene)
        self.compare_ghost = CompareGhostVisual(self.hands_visual, parent=self.view.scene)
        self.camera_preset = "orbit"
        self._press_pos: tuple[float, float] | None = None

        self.view.camera.transform.changed.connect(self._on_camera_change)
        # first in line (before the scene's handler, which feeds the camera): a path gesture blocks them
        self.canvas.events.mouse_press.connect(self._on_mouse_press, position="first")
        self.canvas.events.mouse_move.connect(self._on_mouse_move, position="first")
        self.canvas.events.mouse_release.connect(self._on_mouse_release, position="first")
        document.events.clip.connect(self._on_clip_change)
        self._on_clip_change()
        self.set_camera_preset("orbit")

    @property
    def camera(self) -> scene.TurntableCamera:
        return self.view.camera

    # --- model events -------------------------------------------------------------------
    def _on_clip_change(self, event: Event | None = None) -> None:
        """Put the floor just under the lowest keypoint of the whole clip."""
        lowest = float(self.document.clip.joints[..., 1].min())
        self.stage.floor = math.floor((lowest - 0.03) * 100) / 100

    def _on_camera_change(self, event=None) -> None:
        """Light from above and left of the eye, so the lit side always faces the viewer."""
        forward, right, up = self.camera_axes()
        light = forward - 0.6 * up + 0.35 * right
        self.hands_visual.set_light_dir(light)
        self.onion_skin.set_light_dir(light)
        self.compare_ghost.set_light_dir(light)

    # --- camera -------------------------------------------------------------------------
    def camera_axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit view direction, screen-right and screen-up of the camera, in world coordinates."""
        tr = self.camera.transform
        eye = tr.map([0, 0, 0])[:3]
        right = tr.map([1, 0, 0])[:3] - eye
        up = tr.map([0, 1, 0])[:3] - eye
        forward = np.cross(up, right)  # camera looks along its local -z
        return tuple(v / np.linalg.norm(v) for v in (forward, right, up))

    def camera_position(self) -> np.ndarray:
        """The eye in world coordinates (3,)."""
        return np.asarray(self.camera.transform.map([0, 0, 0])[:3], np.float64)

    def set_camera_preset(self, name: str) -> None:
        """One of CAMERA_PRESETS; also refits the camera to the hands."""
        if name not in CAMERA_PRESETS:
            raise ValueError(f"camera preset must be one of {sorted(CAMERA_PRESETS)}; got {name!r}")
        az, el = CAMERA_PRESETS[name]
        cam = self.camera
        cam.azimuth, cam.elevation, cam.roll = az, el, 0.0
        self.camera_preset = name
        self.frame_hands()
        self.sig_camera_preset_changed.emit(name)

    def frame_hands(self, margin: float = 1.0) -> None:
        """Centre the camera on the current keypoints' box and zoom so the box fits (``margin``: the
        box's share of the view, > 0; a zero scale would break every later camera change)."""
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin > 0:
            raise ValueError(f"frame_hands margin must be a number > 0; got {margin!r}")
        lo, hi = self.hands_visual.bounds()
        radius = max(float(np.linalg.norm(hi - lo)) / 2, 0.05)
        cam = self.camera
        cam.center = tuple(float(c) for c in (lo + hi) / 2)
        cam.distance = None  # derived from scale_factor and fov
        cam.scale_factor = 2 * radius * margin
        cam.view_changed()

    # --- onion skin and wrist paths -------------------------------------------------------
    @property
    def onion_skin_visible(self) -> bool:
        return self.onion_skin.visible

    def set_onion_skin_visible(self, visible: bool) -> None:
        """Show/hide ghosts of the hands around the playhead (``set_onion_skin_range``)."""
        visible = bool(visible)
        if visible != self.onion_skin.visible:
            self.onion_skin.visible = visible
            self.sig_onion_skin_toggled.emit(visible)

    def set_onion_skin_range(self, before: int | None = None, after: int | None = None,
                             step: int | None = None) -> None:
        """Ghosts before / after the playhead (0..12 each, default 3) every ``step`` frames."""
        self.onion_skin.set_range(before, after, step)

    def set_onion_skin_style(self, style: str) -> None:
        """'mesh' (translucent hands, default) or 'skeleton' (bones only; cheaper)."""
        self.onion_skin.style = style

    @property
    def wrist_paths_visible(self) -> bool:
        return self.wrist_paths.visible

    def set_wrist_paths_visible(self, visible: bool) -> None:
        """Show/hide both wrists' motion paths, their key and playhead markers and pinned paths.
        Hiding them ends path edit mode."""
        visible = bool(visible)
        if not visible and self._path_edit is not None:
            self._paths_were_visible = False
            self.set_path_edit(None)  # hides them
            return
        if visible != self.wrist_paths.visible:
            self.wrist_paths.visible = visible
            self.sig_wrist_paths_toggled.emit(visible)

    @property
    def compare_clip(self):
        """The other take's clip drawn as a ghost at the playhead, or None."""
        return self.compare_ghost.clip

    def set_compare_clip(self, clip) -> None:
        """Draw ``clip`` (another take) as a translucent ghost at the playhead; None hides it."""
        self.compare_ghost.set_clip(clip)

    # --- picking ------------------------------------------------------------------------
    def project_joints(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The current frame's keypoints on the canvas: xy (2, 21, 2) logical pixels from the
        top left (as mouse positions), depth (2, 21) and in_front (2, 21) bool."""
        tr = self.hands_visual.joint_markers.get_transform("visual", "canvas")
        xy, depth, ok = project_points(self.hands_visual.joints.reshape(-1, 3), transform_matrix(tr))
        return xy.reshape(2, 21, 2), depth.reshape(2, 21), ok.reshape(2, 21)

    def joint_at(self, pos, radius: float = PICK_RADIUS_PX) -> tuple[str, int] | None:
        """The keypoint drawn nearest canvas position ``pos`` (x, y) within ``radius`` pixels,
        as ('left'/'right', keypoint 0..20); None when there is none. Picks nothing."""
        xy, depth, ok = self.project_joints()
        i = pick_nearest(xy.reshape(-1, 2), pos, radius, depth.ravel(), ok.ravel())
        return None if i is None else (HANDS[i // 21], i % 21)

    @property
    def picked_joint(self) -> tuple[str, int] | None:
        """The highlighted joint ('left'/'right', keypoint 0..20), or None."""
        p = self.hands_visual.picked
        return None if p is None else (HANDS[p[0]], p[1])

    def set_picked_joint(self, joint: tuple[str, int] | None) -> None:
        """Highlight a joint (it follows the playhead) or clear with None; emits sig_joint_picked
        when the pick changes."""
        new = None
        if joint is not None:
            hand, j = joint
            if hand not in HANDS:
                raise ValueError(f"picked hand must be 'left' or 'right'; got {hand!r}")
            new = (HANDS.index(hand), int(j))
        if new == self.hands_visual.picked:
            return
        self.hands_visual.picked = new
        self.sig_joint_picked.emit(*(joint if joint is not None else ("", -1)))

    def pick(self, pos, radius: float = PICK_RADIUS_PX) -> tuple[str, int] | None:
        """What a click at ``pos`` does: pick the joint there (or clear the pick) and return it."""
        joint = self.joint_at(pos, radius)
        self.set_picked_joint(joint)
        return joint

    def _on_mouse_press(self, event) -> None:
        self._press_pos = tuple(event.pos[:2]) if event.button == 1 else None
        if self._path_edit is None or event.button != 1 or self._gesture is not None:
            return
        shift = keys.SHIFT in (event.modifiers or ())
        if self._begin_path_gesture(event.pos[:2], draw=shift):
            self._press_pos = None  # not a click either
            event.blocked = True

    def _on_mouse_move(self, event) -> None:
        if self._gesture is None:
            return
        event.blocked = True
        self._continue_path_gesture(event.pos[:2])

    def _on_mouse_release(self, event) -> None:
        if self._gesture is not None:
            event.blocked = True
            if event.button == 1:
                self._continue_path_gesture(event.pos[:2])
                self._end_path_gesture()
            return
        press, self._press_pos = self._press_pos, None
        if press is None or event.button != 1:
            return
        if math.dist(press, tuple(event.pos[:2])) <= CLICK_SLOP_PX:  # a click, not a camera drag
            self.pick(event.pos[:2])

    # --- wrist path editing ---------------------------------------------------------------
    @property
    def path_edit(self) -> str | None:
        """The hand whose wrist path the mouse edits ('left'/'right'), or None."""
        return self._path_edit

    def set_path_edit(self, hand: str | None) -> None:
        """Edit ``hand``'s wrist path with the mouse (drag a point; Shift+drag draws a new path);
        None ends it. The wrist paths are shown while it is on, and hidden after if they were."""
        if hand is not None:
            check_hand(hand)
        if hand == self._path_edit:
            return
        self._end_path_gesture()
        if hand is not None and self._path_edit is None:
            self._paths_were_visible = self.wrist_paths_visible
        self._path_edit = hand
        self.set_wrist_paths_visible(hand is not None or self._paths_were_visible)
        self.sig_path_edit_changed.emit(hand or "")

    @property
    def path_falloff(self) -> int:
        """Frames each side of a dragged path point that follow it (raised cosine); 0: none."""
        return self._path_falloff

    @path_falloff.setter
    def path_falloff(self, frames: int) -> None:
        if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 0:
            raise ValueError(f"path falloff must be a whole number of frames >= 0; got {frames!r}")
        self._path_falloff = int(frames)

    @property
    def path_gesture(self) -> str | None:
        """'drag' or 'draw' while a path gesture runs (the mouse is down), else None."""
        return None if self._gesture is None else self._gesture.kind

    def path_matrix(self) -> np.ndarray:
        """The (4, 4) row-vector world -> canvas matrix the wrist paths are drawn with."""
        return transform_matrix(self.wrist_paths.paths[0].get_transform("visual", "canvas"))

    def editable_path(self, hand: str) -> tuple[np.ndarray, np.ndarray]:
        """What a drag of ``hand``'s path moves: -> frames (N,), points (N, 3). Its pinned path;
        when none is pinned, the current take's wrist over the interval (every frame when none)."""
        pinned = self.document.wrist_path(hand)
        if pinned:
            return (np.array([f for f, _ in pinned], np.int64),
                    np.array([p for _, p in pinned], np.float64).reshape(-1, 3))
        return pinned_wrist_path(self.document, hand)

    def path_point_at(self, pos, hand: str | None = None, radius: float = PICK_RADIUS_PX) -> int | None:
        """The frame of ``hand``'s (default: the edited hand's) editable path point drawn nearest
        canvas position ``pos`` within ``radius`` pixels, or None."""
        hand = check_hand(hand if hand is not None else self._path_edit)
        hit = self._nearest_path_point(hand, pos, self.path_matrix(), radius)
        return None if hit is None else int(hit[0][hit[2]])

    def _nearest_path_point(self, hand: str, pos, matrix, radius: float = PICK_RADIUS_PX):
        """-> (frames (N,), points (N, 3), index of the point drawn nearest ``pos``, its depth),
        or None when no point of ``hand``'s editable path is within ``radius`` pixels."""
        frames, points = self.editable_path(hand)
        xy, depth, ok = project_points(points, matrix)
        i = pick_nearest(xy, pos, radius, depth, ok)
        return None if i is None else (frames, points, i, float(depth[i]))

    def _begin_path_gesture(self, pos, draw: bool) -> bool:
        hand, h = self._path_edit, HANDS.index(self._path_edit)
        m = self.path_matrix()
        if draw:  # on the view plane through the wrist at the playhead
            wrist = self.document.clip.joints[self.document.frame, h, 0]
            _, depth, ok = project_points(np.reshape(wrist, (1, 3)), m)
            if not ok[0]:
                return False
            g = _PathGesture("draw", hand, m, np.asarray(pos, np.float64), float(depth[0]),
                             samples=[np.asarray(pos, np.float64)])
        else:
            hit = self._nearest_path_point(hand, pos, m)
            if hit is None:
                return False  # not on the path: the camera orbits as usual
            frames, points, i, depth = hit
            g = _PathGesture("drag", hand, m, np.asarray(pos, np.float64), depth, frames=frames,
                             base=points, frame=int(frames[i]), drag_id=C.new_drag_id())
            self.wrist_paths.set_dragged((h, g.frame))
        self._gesture = g
        self._camera_was_interactive = self.camera.interactive
        self.camera.interactive = False
        return True

    def _continue_path_gesture(self, pos) -> None:
        g = self._gesture
        pos = np.asarray(pos, np.float64)
        if g.kind == "draw":
            if np.any(pos != g.samples[-1]):
                g.samples.append(pos)
                self.wrist_paths.set_stroke(unproject_points(np.stack(g.samples), g.depth, g.matrix))
            return
        if not g.moved and np.all(pos == g.press):
            return
        ends = unproject_points(np.stack([g.press, pos]), g.depth, g.matrix)  # (2, 3)
        moved = drag_path(g.base, g.frames, g.frame, ends[1] - ends[0], self.path_falloff)  # (N, 3)
        points = list(zip(g.frames.tolist(), moved))
        if self.push(lambda: C.SetWristPath(self.document, g.hand, points, drag_id=g.drag_id)):
            g.moved = True

    def _end_path_gesture(self) -> None:
        """Finish the running gesture (a stroke becomes the path); give the camera back."""
        g, self._gesture = self._gesture, None
        if g is None:
            return
        self.camera.interactive = self._camera_was_interactive
        self.wrist_paths.set_dragged(None)
        self.wrist_paths.set_stroke(None)
        if g.kind == "draw":
            g.moved = self._pin_stroke(g)
        if g.moved:
            self.sig_wrist_path_edited.emit(g.hand)

    def _pin_stroke(self, g: _PathGesture) -> bool:
        """A drawn stroke -> one point per frame of the interval (the clip when none), pinned."""
        if len(g.samples) < 2:
            return False  # a Shift+click: nothing drawn
        world = unproject_points(np.stack(g.samples), g.depth, g.matrix)  # (M, 3)
        a, b = self.document.interval if self.document.interval is not None else (0, self.document.num_frames - 1)
        try:
            points = resample_polyline(world, b - a + 1)  # (b - a + 1, 3)
        except ValueError:
            return False  # a Shift+click: nothing drawn
        path = list(zip(range(a, b + 1), points))
        return self.push(lambda: C.SetWristPath(self.document, g.hand, path))

    # --- images -------------------------------------------------------------------------
    def render(self) -> np.ndarray:
        """The canvas as an RGBA image (H, W, 4) uint8."""
        return self.canvas.render(alpha=False)

    def grab_png(self, path: str | os.PathLike) -> np.ndarray:
        """Render and write a PNG; returns the image."""
        img = self.render()
        write_png(os.fspath(path), img)
        return img

    def close_visuals(self) -> None:
        """Disconnect from the document and free the canvas. Idempotent."""
        if self.hands_visual is None:
            return
        self.document.events.clip.disconnect(self._on_clip_change)
        self.view.camera.transform.changed.disconnect(self._on_camera_change)
        self._gesture = None
        self.canvas.events.mouse_press.disconnect(self._on_mouse_press)
        self.canvas.events.mouse_move.disconnect(self._on_mouse_move)
        self.canvas.events.mouse_release.disconnect(self._on_mouse_release)
        self.onion_skin.close()
        self.wrist_paths.close()
        self.compare_ghost.close()
        self.hands_visual.close()
        self.stage.close()
        self.hands_visual = None
        self.canvas.close()

    def closeEvent(self, event) -> None:
        self.close_visuals()
        super().closeEvent(event)
