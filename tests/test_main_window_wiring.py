"""The finished parts wired into the main window, in a real window under Xvfb: the View menu's onion
skin and wrist path toggles (kept in sync with the viewport and persisted), joint picking in the
status bar, real-time playback that drops frames when drawing is slow, the Dataset and Training
docks (messages, dataset -> training, an activated model reloads the Studio) and their shutdown."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt
from PySide6.QtWidgets import QMessageBox

from engine.motion.clip import Clip
from hand_studio._qt.main_window import MainWindow
from hand_studio.model.document import Document

pytestmark = pytest.mark.gui


def make_window(qtbot, studio, clip, settings_path, tmp_path) -> MainWindow:
    settings = QSettings(str(settings_path), QSettings.IniFormat)
    w = MainWindow(studio, Document(clip), settings=settings, recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(w)
    w.resize(900, 650)
    w.show()
    w.activateWindow()
    qtbot.waitActive(w)  # window shortcuts need the active window
    return w


@pytest.fixture
def window(qtbot, studio, small_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(MainWindow, "ask_save_changes", lambda self: "discard")
    w = make_window(qtbot, studio, small_clip, tmp_path / "settings.ini", tmp_path)
    yield w
    w.playback.set_playing(False)


def test_view_actions_follow_the_viewport_and_persist(window, qtbot, press_shortcut, studio, small_clip, tmp_path):
    vp, onion = window.viewport, window.viewport.onion_skin
    assert not vp.onion_skin_visible and not window.action_onion.isChecked()
    assert window.onion_side_actions[3].isChecked() and window.onion_step_actions[1].isChecked()
    assert (onion.before, onion.after, onion.step, onion.style) == (3, 3, 1, "mesh")

    press_shortcut(window, Qt.Key_O)  # the menu's shortcut
    assert vp.onion_skin_visible and window.action_onion.isChecked()
    vp.set_onion_skin_visible(False)  # the viewport's own change reaches the menu
    assert not window.action_onion.isChecked()
    window.action_onion.trigger()
    assert vp.onion_skin_visible and window.action_onion.isChecked()

    window.action_onion_bones.trigger()
    assert onion.style == "skeleton"
    window.onion_side_actions[5].trigger()
    window.onion_step_actions[4].trigger()
    assert (onion.before, onion.after, onion.step) == (5, 5, 4)
    assert window.onion_side_actions[5].isChecked() and not window.onion_side_actions[3].isChecked()
    assert onion.frames == [None] * 5 + [4, 8, None, None, None]  # from frame 0, every 4th

    press_shortcut(window, Qt.Key_P)
    assert vp.wrist_paths_visible and window.action_wrist_paths.isChecked()
    vp.set_wrist_paths_visible(False)
    assert not window.action_wrist_paths.isChecked()
    window.action_wrist_paths.trigger()
    assert vp.wrist_paths_visible

    window.close()  # a new window reads them back from the same settings
    w2 = make_window(qtbot, studio, small_clip, tmp_path / "settings.ini", tmp_path)
    vp2, onion2 = w2.viewport, w2.viewport.onion_skin
    assert vp2.onion_skin_visible and w2.action_onion.isChecked()
    assert vp2.wrist_paths_visible and w2.action_wrist_paths.isChecked()
    assert (onion2.before, onion2.after, onion2.step, onion2.style) == (5, 5, 4, "skeleton")
    assert w2.action_onion_bones.isChecked() and w2.onion_step_actions[4].isChecked()
    w2.close()


def test_picking_a_joint_names_it_in_the_status_bar(window, qtbot):
    vp, bar = window.viewport, window.statusBar()
    vp.set_picked_joint(("right", 17))
    assert bar.currentMessage() == "Picked right index_tip"
    vp.set_picked_joint(None)
    assert bar.currentMessage() == ""

    # a real click on a joint drawn clear of the others
    xy, _, ok = vp.project_joints()
    flat = xy.reshape(-1, 2)
    gaps = np.linalg.norm(flat[:, None] - flat[None], axis=2) + np.eye(42) * 1e9
    i = next(i for i in range(42) if gaps[i].min() > 4.0 and ok.ravel()[i])
    with qtbot.waitSignal(vp.sig_joint_picked):
        qtbot.mouseClick(vp.canvas.native, Qt.LeftButton, pos=QPoint(*np.round(flat[i]).astype(int)))
    from engine.hands.skeleton import KEYPOINT_NAMES
    assert bar.currentMessage() == f"Picked {('left', 'right')[i // 21]} {KEYPOINT_NAMES[i % 21]}"
    window.statusBar().showMessage("Saved clap")  # clearing the pick leaves other messages alone
    vp.set_picked_joint(None)
    assert bar.currentMessage() == "Saved clap"


def test_playback_keeps_real_time_when_drawing_is_slow(window, qtbot):
    """Every frame change costs 60 ms here (a slow draw): at 30 fps, playback drops frames and the
    playhead still follows the wall clock (one frame per tick would reach only ~8 in 0.5 s)."""
    doc, bar = window.document, window.playback
    window._replace_document(Document(Clip.rest(240, fps=30.0)))
    assert bar.timer.interval() == 16 and bar.timer.timerType() == Qt.PreciseTimer
    seen: list[tuple[float, int]] = []

    def slow_draw(event) -> None:
        seen.append((time.perf_counter() - t0, event.value))
        time.sleep(0.06)

    doc.events.frame.connect(slow_draw)
    t0 = time.perf_counter()
    window.action_play.trigger()
    qtbot.waitUntil(lambda: time.perf_counter() - t0 >= 0.5 and bool(seen), timeout=5000)
    window.action_play.trigger()
    doc.events.frame.disconnect(slow_draw)
    t, frame = seen[-1]
    assert abs(frame - 30.0 * t) <= 2.0, (t, frame, seen)  # where the clock says, within two frames
    assert frame >= 12, seen  # ~15 after 0.5 s
    assert len(seen) < frame and bar.dropped_frames > 0  # fewer draws than frames: frames were skipped
    assert bar.frames_advanced == frame and bar.dropped_frames == frame - len(seen)


def test_playback_scrub_and_loop_off(window, qtbot):
    doc, bar = window.document, window.playback
    window._replace_document(Document(Clip.rest(240, fps=30.0)))
    window.action_play.trigger()
    qtbot.waitUntil(lambda: doc.frame >= 3, timeout=5000)
    doc.frame = 100  # scrubbing while playing goes on from there
    qtbot.waitUntil(lambda: doc.frame >= 103, timeout=5000)
    assert doc.frame < 130 and bar.playing
    window.action_play.trigger()

    window.action_loop.trigger()  # off: stop on the last frame
    assert not bar.loop and not bar.loop_button.isChecked()
    doc.frame = 230
    window.action_play.trigger()
    qtbot.waitUntil(lambda: not bar.playing, timeout=5000)
    assert doc.frame == 239
    window.action_play.trigger()  # Play on the last frame without looping starts over
    assert bar.playing and doc.frame < 20
    window.action_play.trigger()
    bar.loop_button.click()  # the button and the menu agree
    assert bar.loop and window.action_loop.isChecked()


def write_model_folder(folder):
    """What the registry and Studio.load check for a diffusion model: a folder with config.json
    (the pipeline itself loads only when generating)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"note": "test stand-in"}))
    return folder


def test_dataset_and_training_docks(window, qtbot):
    right = Qt.RightDockWidgetArea
    assert window.dockWidgetArea(window.dataset_dock) == right and window.dockWidgetArea(window.training_dock) == right
    tabbed = set(window.tabifiedDockWidgets(window.prompt_dock))
    assert {window.dataset_dock, window.training_dock} <= tabbed
    assert window.dataset_dock.widget().widget() is window.dataset_panel  # in a scroll area
    assert window.training_dock.widget().widget() is window.training_panel
    assert window.dataset_panel.studio is window.studio

    window.action_show_training.trigger()
    qtbot.waitUntil(lambda: not window.training_dock.visibleRegion().isEmpty(), timeout=2000)
    assert window.prompt_dock.visibleRegion().isEmpty()  # the tab behind
    window.dataset_dock.close()
    assert not window.dataset_dock.isVisible()
    window.action_show_dataset.trigger()
    qtbot.waitUntil(lambda: not window.dataset_dock.visibleRegion().isEmpty(), timeout=2000)

    window.dataset_panel.sig_message.emit("Imported 12 clips")
    assert window.statusBar().currentMessage() == "Imported 12 clips"
    window.training_panel.sig_message.emit("Checkpoint at step 10")
    assert window.statusBar().currentMessage() == "Checkpoint at step 10"
    window.dataset_panel.sig_dataset_saved.emit("/data/my_dataset")
    assert window.training_panel.data_edit.text() == "/data/my_dataset"


def test_activated_model_reloads_the_studio(window, qtbot, tmp_path, monkeypatch):
    from engine.registry import Registry
    from hand_studio._qt.prompt_panel import QtPromptPanel

    monkeypatch.setenv("HAND_STUDIO_DATA", str(tmp_path / "user-data"))  # this test's registry only
    folder = write_model_folder(tmp_path / "run" / "model")
    reg = Registry()
    reg.register("my-hands", "diffusion", folder)
    reg.use("my-hands")
    old_studio, old_panel = window.studio, window.prompt_panel
    old_panel.seed_spin.setValue(1234)
    old_panel.text_edit.setPlainText("both hands clap")

    busy = [True]  # a generation is running: the swap waits for it
    monkeypatch.setattr(QtPromptPanel, "running", property(lambda self: busy[0]))
    window.training_panel.sig_model_activated.emit("my-hands")
    assert window.studio is old_studio and "used when the running generation ends" in window.statusBar().currentMessage()
    busy[0] = False
    qtbot.waitUntil(lambda: window.studio is not old_studio, timeout=3000)

    studio = window.studio
    assert studio.diffusion == str(folder) and studio.models["diffusion"] == str(folder)
    assert studio.device == old_studio.device and studio.hand_backend == old_studio.hand_backend
    assert "model: diffusion (my-hands)" in window.status_label.text()
    pp = window.prompt_panel
    assert pp is not old_panel and pp.studio is studio and window.prompt_scroll.widget() is pp
    assert pp.seed_spin.value() == 1234 and pp.text_edit.toPlainText() == "both hands clap"
    assert pp.model_combo.itemData(pp.model_combo.findText("diffusion"), Qt.ToolTipRole) == str(folder)
    assert window.dataset_panel.studio is studio and window.action_generate.isEnabled()
    pp.sig_message.emit("from the new panel")  # its messages reach the status bar
    assert window.statusBar().currentMessage() == "from the new panel"

    (folder / "config.json").unlink()  # the active model's folder is broken: nothing changes
    window.training_panel.sig_model_activated.emit("my-hands")
    box = window.findChild(QMessageBox, "error_box")
    assert box is not None and box.isVisible() and "my-hands" in box.text()
    assert window.studio is studio
    box.accept()


def test_close_shuts_both_panels_down_first_and_keeps_dock_state(window, qtbot, studio, small_clip, tmp_path):
    calls = []
    for name in ("training_panel", "dataset_panel", "prompt_panel"):
        panel = getattr(window, name)
        original = panel.shutdown
        panel.shutdown = lambda *a, n=name, f=original, **k: calls.append(n) or f(*a, **k)
    window.training_dock.close()
    window.close()
    assert calls == ["training_panel", "dataset_panel", "prompt_panel"]
    assert window.training_panel._closed and window.dataset_panel._closed

    w2 = make_window(qtbot, studio, small_clip, tmp_path / "settings.ini", tmp_path)
    assert not w2.training_dock.toggleViewAction().isChecked() and w2.dataset_dock.toggleViewAction().isChecked()
    w2.action_show_training.trigger()
    assert w2.training_dock.isVisible()
    w2.close()
