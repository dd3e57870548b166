"""The main window in a real window under Xvfb (pytest-xvfb), rendering with Mesa llvmpipe."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from engine.motion.clip import Clip
from hand_studio._qt.main_window import MainWindow
from hand_studio._qt.viewport import CAMERA_PRESETS
from hand_studio.model.document import Document

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot, studio, small_clip, tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(MainWindow, "ask_save_changes", lambda self: asked.append(1) or "discard")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(studio, Document(small_clip), settings=settings, recovery_dir=tmp_path / "recovery")
    w.asked = asked
    qtbot.addWidget(w)
    w.resize(900, 650)
    w.show()
    w.activateWindow()
    qtbot.waitActive(w)  # window shortcuts need the active window
    yield w
    w.playback.set_playing(False)


def hand_pixels(img: np.ndarray) -> tuple[int, int]:
    """Count warm (left hand) and cool (right hand) pixels in an RGB(A) render."""
    rgb = img[..., :3].astype(int)
    r, b = rgb[..., 0], rgb[..., 2]
    warm = (r - b > 50) & (r > 90)
    cool = (b - r > 40) & (b > 90)
    return int(warm.sum()), int(cool.sum())


def test_window_renders_both_hands(window):
    assert window.windowTitle() == "Untitled — Hand Studio"
    assert "device: cpu" in window.status_label.text()
    window.viewport.stage.visible = False  # the red/blue axes would count as hand colours
    img = window.viewport.render()
    assert img.ndim == 3 and img.shape[2] in (3, 4) and img.shape[0] > 100
    warm, cool = hand_pixels(img)
    total = img.shape[0] * img.shape[1]
    assert warm > 0.005 * total and cool > 0.005 * total, (warm, cool, total)
    window.viewport.hands_visual.meshes[0].visible = False  # hide the left hand: warm goes
    warm_hidden, cool_hidden = hand_pixels(window.viewport.render())
    assert warm_hidden < 0.05 * warm and cool_hidden > 0.5 * cool


def test_keys_move_playhead_and_mesh(window, qtbot, press_shortcut):
    vis = window.viewport.hands_visual
    before_verts = [v.copy() for v in vis.vertices]
    before_img = window.viewport.render()
    press_shortcut(window, Qt.Key_End)
    assert window.document.frame == 9
    assert "frame 9 / 9" in window.playback.label.text()
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(before_verts, vis.vertices))
    after_img = window.viewport.render()
    assert np.abs(after_img.astype(int) - before_img.astype(int)).mean() > 0.5  # the GPU saw it
    press_shortcut(window, Qt.Key_Right)  # stops at the end
    assert window.document.frame == 9
    press_shortcut(window, Qt.Key_Home)
    press_shortcut(window, Qt.Key_Right)
    assert window.document.frame == 1
    press_shortcut(window, Qt.Key_Left)
    assert window.document.frame == 0
    window.document.frame = 3  # and the model drives the timeline's playhead
    assert window.timeline.playhead.value() == 3


def test_buffer_upload_draws_what_set_data_draws(window):
    """Pins the vispy 0.17 internals behind the fast path against vispy's own set_data."""
    vp, vis = window.viewport, window.viewport.hands_visual
    window.document.frame = 6
    fast = vp.render().astype(int)
    vis.upload = "set_data"
    vis._on_frame_change()
    slow = vp.render().astype(int)
    assert np.abs(fast - slow).mean() < 1.0


def test_malformed_clip_shows_error_and_keeps_clip(window, qtbot, tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, transl=np.zeros((4, 2)), fps=np.array(30.0))
    clip = window.document.clip
    window.document.frame = 5
    assert window.open_clip(bad) is False
    box = window.findChild(QMessageBox, "error_box")
    assert box is not None and box.isVisible()
    assert "bad.npz" in box.text() and "missing arrays" in box.text()
    assert window.document.clip is clip and window.document.frame == 5
    box.accept()
    assert window.recent_files() == []


def test_open_and_save_clip_updates_recent_files(window, tmp_path):
    path = tmp_path / "three.npz"
    Clip.rest(3).save(path)
    assert window.open_clip(path)
    assert window.document.num_frames == 3
    assert 2.5 <= window.timeline.view_box.viewRange()[0][1] <= 3.5  # the timeline shows the new clip
    assert window.windowTitle() == "three.npz — Hand Studio"
    out = tmp_path / "copy.npz"
    assert window.save_clip(out) and Clip.load(out).num_frames == 3
    assert window.recent_files()[:2] == [str(out.resolve()), str(path.resolve())]
    assert [a.text() for a in window.recent_menu.actions()] == ["copy.npz", "three.npz"]


def test_camera_presets_change_the_camera(window):
    vp = window.viewport
    eyes = {}
    for name in CAMERA_PRESETS:
        window.camera_actions[name].trigger()
        assert vp.camera_preset == name and window.camera_actions[name].isChecked()
        eyes[name] = vp.camera_position()
    assert len({tuple(np.round(e, 4)) for e in eyes.values()}) == len(CAMERA_PRESETS)
    vp.set_camera_preset("first_person")
    forward, right, up = vp.camera_axes()
    assert forward[2] < -0.5 and right[0] > 0.99 and up[1] > 0.5  # along -Z, +X right, +Y up
    assert eyes["first_person"][2] > vp.hands_visual.joints[..., 2].max()  # behind the hands
    vp.set_camera_preset("top")
    assert vp.camera_axes()[0][1] < -0.99  # looking down
    lo, hi = vp.hands_visual.bounds()
    np.testing.assert_allclose(vp.camera.center, (lo + hi) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="camera preset must be one of"):
        vp.set_camera_preset("side")


def test_playback_advances_and_loops(window, qtbot):
    """Real time skips frames when drawing (or the machine) is slow: wait for the playhead to pass
    the end of the 10-frame clip, not for every frame to be shown."""
    bar, seen = window.playback, []
    window.document.frame = 7
    window.document.events.frame.connect(lambda e: seen.append(e.value))
    window.action_play.trigger()
    assert bar.playing
    qtbot.waitUntil(lambda: bar.frames_advanced >= 5 and len(seen) >= 2, timeout=5000)
    assert bar.playing and window.document.frame == (7 + bar.frames_advanced) % 10  # wrapped, still playing
    assert len(seen) + bar.dropped_frames == bar.frames_advanced
    window.action_play.trigger()
    assert not window.playback.playing


def test_skeleton_toggle_draws_bones(window):
    vp = window.viewport
    plain = vp.render()
    window.action_skeleton.trigger()
    assert vp.hands_visual.skeleton_visible
    bones = vp.render()
    rgb = bones[..., :3].astype(int)
    yellow = (rgb[..., 0] > 200) & (rgb[..., 1] > 190) & (rgb[..., 2] < 120)
    assert yellow.sum() > 50 and not np.array_equal(plain, bones)


def test_close_saves_geometry_and_disconnects(window):
    doc = window.document
    window.close()
    assert window.settings.value("main_window/geometry") is not None
    assert doc.events.frame.callbacks == () and doc.events.clip.callbacks == ()


def test_edit_menu_undo_redo_and_dirty_title(window, qtbot, press_shortcut):
    doc = window.document
    doc.frame = 4
    press_shortcut(window, Qt.Key_K)  # key the current pose on all four tracks
    assert doc.num_keys == 4 and window.windowTitle() == "Untitled* — Hand Studio"
    press_shortcut(window, Qt.Key_Delete)
    assert doc.num_keys == 0
    press_shortcut(window, Qt.Key_Z, Qt.ControlModifier)
    assert doc.num_keys == 4
    press_shortcut(window, Qt.Key_Z, Qt.ControlModifier)
    assert doc.num_keys == 0 and window.windowTitle() == "Untitled — Hand Studio"
    press_shortcut(window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    assert doc.num_keys == 4 and window.action_undo.text() == "&Undo Add key at frame 4"
    window.lock_actions["left"].trigger()
    assert doc.locked_hands == {"left"}
    window.action_undo.trigger()
    assert doc.locked_hands == frozenset() and not window.lock_actions["left"].isChecked()


def test_project_save_open_close_and_crash_recovery(window, qtbot, studio, tmp_path, monkeypatch):
    doc = window.document
    window.timeline.key_current_pose()
    path = tmp_path / "clap.handproj"
    monkeypatch.setattr(MainWindow, "ask_project_path", lambda self: path)
    window.action_save_project.trigger()
    assert path.is_dir() and window.windowTitle() == "clap — Hand Studio"
    assert window.recent_files()[0] == str(path.resolve())

    doc.frame = 7
    window.timeline.key_current_pose()  # an edit after the save ...
    assert window.autosaver.tick(now=window.autosaver.clock() + 3600) == tmp_path / "clap.handproj.autosave"
    # ... then the app is killed: nothing else is written. A new window opens the project.
    monkeypatch.setattr(MainWindow, "ask_recover", lambda self, p: True)
    settings = QSettings(str(tmp_path / "settings2.ini"), QSettings.IniFormat)
    w2 = MainWindow(studio, settings=settings, recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(w2)
    assert w2.open_project(path)
    assert w2.document.key_frames("right_hand") == [0, 7]  # the edit is back
    assert w2.windowTitle() == "clap* — Hand Studio" and w2.dirty
    assert w2.save()
    assert not w2.dirty and not (tmp_path / "clap.handproj.autosave").exists()
    w2.close()

    window.asked.clear()
    monkeypatch.setattr(MainWindow, "ask_save_changes", lambda self: window.asked.append(1) or "cancel")
    assert not window.close() and window.isVisible() and window.asked == [1]  # cancel keeps it open


def test_recovered_changes_survive_a_second_crash(window, qtbot, studio, tmp_path, monkeypatch):
    """Recovering an autosave writes it again at once: a second crash before the next autosave tick
    still offers the recovered edits (it used to delete the autosave as soon as it was read)."""
    doc = window.document
    path = tmp_path / "walk.handproj"
    assert window.save_project(path)
    doc.frame = 7
    window.timeline.key_current_pose()
    auto = window.autosaver.save_now()
    monkeypatch.setattr(MainWindow, "ask_recover", lambda self, p: True)
    windows = []
    for i in range(2):  # two crashes in a row, each before any autosave tick
        w = MainWindow(studio, settings=QSettings(str(tmp_path / f"s{i}.ini"), QSettings.IniFormat),
                       recovery_dir=tmp_path / "recovery")
        qtbot.addWidget(w)
        windows.append(w)
        assert w.open_project(path)
        assert w.document.key_frames("right_hand") == [7] and w.dirty
        assert auto.exists() and not w.autosaver.pending
    # an untitled document's autosave: recovered, then kept under the new window's own name
    first = windows[-1]
    first.new_project()
    first.timeline.key_current_pose()
    untitled = first.autosaver.save_now()
    w = MainWindow(studio, settings=QSettings(str(tmp_path / "s9.ini"), QSettings.IniFormat),
                   recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(w)
    assert w.recover_untitled() and w.document.num_keys == 4
    assert not untitled.exists() and w.autosaver.target.exists()


def test_open_project_restores_generation_settings_and_any_case_suffix(window, qtbot, studio, tmp_path):
    """The prompt panel shows the opened project's seed, steps, guidance and duration (it kept the
    previous document's); a project saved as "Walk.HANDPROJ" reopens from Open recent as a project."""
    doc, p = window.document, window.prompt_panel
    doc.generation = {"seed": 1234, "steps": 7, "guidance": 3.5, "frames": 45}
    path = tmp_path / "Walk.HANDPROJ"
    assert window.save_project(path)
    assert window.windowTitle() == "Walk — Hand Studio"
    assert window.new_project()
    p.seed_spin.setValue(5)
    assert window.open_project(path)
    assert (p.seed_spin.value(), p.steps_spin.value(), p.guidance_spin.value(), p.frames_spin.value()) == (1234, 7, 3.5, 45)
    assert window.new_project() and p.seed_spin.value() == 0  # a new document starts from the defaults
    recent = [a for a in window.recent_menu.actions() if a.text() == "Walk.HANDPROJ"]
    assert recent
    recent[0].trigger()
    assert window.document.project_path == path.absolute() and p.seed_spin.value() == 1234


def test_frame_hands_fits_the_hands_and_leaves_the_camera_working(window, qtbot, press_shortcut):
    """View > Frame hands (F) through its QAction: the action's `checked` argument once reached
    frame_hands as a zero margin, a zero camera scale, and every later camera change divided by it."""
    vp = window.viewport
    vp.camera.scale_factor = 40.0  # far away
    press_shortcut(window, Qt.Key_F)
    sf = vp.camera.scale_factor
    assert np.isfinite(sf) and 0.05 < sf < 2.0, sf
    window.action_frame.trigger()
    assert vp.camera.scale_factor == pytest.approx(sf)
    window.camera_actions["top"].trigger()  # a later camera change still works
    assert np.isfinite(vp.camera.scale_factor) and vp.camera.scale_factor > 0
    with pytest.raises(ValueError, match="margin must be a number > 0"):
        vp.frame_hands(margin=0)
