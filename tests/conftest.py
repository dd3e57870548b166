"""Shared fixtures. VisPy must choose its Qt backend before any QApplication exists, so it is
selected here at import time (pytest-qt creates the QApplication later, in its fixtures)."""
from __future__ import annotations

import numpy as np
import pytest
import vispy.app

vispy.app.use_app("pyside6")


@pytest.fixture
def small_clip():
    """A 10-frame clip at 30 fps: both hands close from flat to a fist while drifting up."""
    from engine.motion.clip import Clip
    from hand_studio.model.poses import fist_pose, presentation_placement

    T = 10
    orient, transl = presentation_placement()
    w = np.linspace(0.0, 1.0, T, dtype=np.float32)  # (T,)
    hand_pose = w[:, None, None] * fist_pose()[None]  # (T, 2, 45)
    transl = np.repeat(transl[None], T, 0)  # (T, 2, 3)
    transl[:, :, 1] += 0.05 * w[:, None]
    return Clip(transl, np.repeat(orient[None], T, 0), hand_pose, fps=30.0)


@pytest.fixture
def press_shortcut(qtbot):
    """Press a window shortcut as a user does: on the active window. Under Xvfb (no window manager)
    activation can move to another top-level after ``qtbot.waitActive`` returned, and a key sent to
    an inactive window reaches no shortcut, so the window is made active first and the failure
    names the active window and focus widget if the key still triggers none of its actions."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QAction, QKeySequence
    from PySide6.QtWidgets import QApplication

    def press(window, key, modifier=Qt.NoModifier):
        if QApplication.activeWindow() is not window:
            window.raise_()
            window.activateWindow()
            qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=5000)
        seq = QKeySequence(key | modifier)
        bound = [a for a in window.findChildren(QAction) if seq in a.shortcuts()]
        fired = []
        slots = [(a, lambda *_, a=a: fired.append(a)) for a in bound]
        for a, slot in slots:
            a.triggered.connect(slot)
        qtbot.keyClick(window, key, modifier)
        for a, slot in slots:
            a.triggered.disconnect(slot)
        assert not bound or fired, (f"{seq.toString()} triggered none of {[a.text() for a in bound]}; "
                                    f"active window {QApplication.activeWindow()}, focus "
                                    f"{QApplication.focusWidget()}")

    return press


@pytest.fixture(scope="session")
def studio():
    """The engine on the CPU with the default hands (loaded once per session)."""
    from engine.api import Studio

    return Studio.load(device="cpu")


@pytest.fixture(autouse=True, scope="session")
def _isolated_user_data(tmp_path_factory):
    """A developer's own model registry never leaks into the tests."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HAND_STUDIO_DATA", str(tmp_path_factory.mktemp("user-data")))
    yield
    mp.undo()
