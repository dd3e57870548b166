"""The 3D viewport: a VisPy SceneCanvas with the hands, the stage and a turntable camera.

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
from hand_studio.model.document import Document
from hand_studio.model.events import Event

BACKGROUND = "#1d1f23"
# name -> (azimuth, elevation) in degrees
CAMERA_PRESETS: dict[str, tuple[float, float]] = {
    "front": (-90.0, 8.0),          # facing the performer
    "top": (90.0, 90.0),            # from above, forward (-Z) up the screen, +X right
    "first_person": (90.0, 28.0),   # behind and above the hands, looking along -Z
    "orbit": (-112.0, 36.0),        # 3/4 view from the front right, above
}


class QtViewport(QWidget):
    """Shows a Document's hands; owns the canvas, the camera and the visuals."""

    sig_camera_preset_changed = Signal(str)
    """A camera preset was applied (its name)."""

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
        self.camera_preset = "orbit"

        self.view.camera.transform.changed.connect(self._on_camera_change)
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
        self.hands_visual.set_light_dir(forward - 0.6 * up + 0.35 * right)

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
        self.hands_visual.close()
        self.stage.close()
        self.hands_visual = None
        self.canvas.close()

    def closeEvent(self, event) -> None:
        self.close_visuals()
        super().closeEvent(event)
