"""The 3D viewport: a VisPy SceneCanvas with the hands, the stage and a turntable camera, plus
the onion skin, the wrist motion paths and joint picking (a click projects the current frame's
42 keypoints on the CPU and takes the nearest within a few pixels; see ``_vispy/picking.py``).

World frame (docs/architecture.md): +Y up, +X the performer's right, the performer looks
along -Z. With ``TurntableCamera(up="+y")`` the eye sits at ``(-cos az, ., sin az)``, so
azimuth 90 puts it behind the performer (first person) and -90 in front of them.
"""
from __future__ import annotations

import math
import os

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget
from vispy import scene
from vispy.io import write_png

from hand_studio._vispy.hands_visual import HandsVisual, StageVisual
from hand_studio._vispy.onion_visual import CompareGhostVisual, OnionSkinVisual
from hand_studio._vispy.picking import PICK_RADIUS_PX, pick_nearest, project_points, transform_matrix
from hand_studio._vispy.wrist_path_visual import WristPathVisual
from hand_studio.model.document import Document
from hand_studio.model.events import Event
from hand_studio.model.tracks import HANDS

BACKGROUND = "#1d1f23"
# name -> (azimuth, elevation) in degrees
CAMERA_PRESETS: dict[str, tuple[float, float]] = {
    "front": (-90.0, 8.0),          # facing the performer
    "top": (90.0, 90.0),            # from above, forward (-Z) up the screen, +X right
    "first_person": (90.0, 28.0),   # behind and above the hands, looking along -Z
    "orbit": (-112.0, 36.0),        # 3/4 view from the front right, above
}
CLICK_SLOP_PX = 4.0  # a press and release closer than this is a click (a pick), not a drag


class QtViewport(QWidget):
    """Shows a Document's hands; owns the canvas, the camera and the visuals."""

    sig_camera_preset_changed = Signal(str)
    """A camera preset was applied (its name)."""
    sig_joint_picked = Signal(str, int)
    """A click picked a joint ('left'/'right', keypoint 0..20), or cleared the pick ('', -1)."""
    sig_onion_skin_toggled = Signal(bool)
    """The onion skin was shown (True) or hidden (False)."""
    sig_wrist_paths_toggled = Signal(bool)
    """The wrist motion paths were shown (True) or hidden (False)."""

    def __init__(self, document: Document, hands, parent: QWidget | None = None,
                 upload: str = "buffer", size: tuple[int, int] = (960, 640)):
        super().__init__(parent)
        self.document = document
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
        self.canvas.events.mouse_press.connect(self._on_mouse_press)
        self.canvas.events.mouse_release.connect(self._on_mouse_release)
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
        """Centre the camera on the current keypoints' box and zoom so the box fits."""
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
        """Show/hide both wrists' motion paths, their key and playhead markers and pinned paths."""
        visible = bool(visible)
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

    def _on_mouse_release(self, event) -> None:
        press, self._press_pos = self._press_pos, None
        if press is None or event.button != 1:
            return
        if math.dist(press, tuple(event.pos[:2])) <= CLICK_SLOP_PX:  # a click, not a camera drag
            self.pick(event.pos[:2])

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
        self.canvas.events.mouse_press.disconnect(self._on_mouse_press)
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
