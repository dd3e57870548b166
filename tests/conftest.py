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
