"""Editing a pinned wrist path in the 3D viewport (issue 7, item 5): the unprojection and falloff
math without a window, then real mouse drags on the canvas under Xvfb: dragging a path point
moves it in the view plane (neighbours less, far frames not at all, the camera still), one undo
step per drag, Shift+drag draws a path with one point per frame, and the main window's
"Edit left/right wrist path" actions."""
from __future__ import annotations

import numpy as np
import pytest

from hand_studio._vispy.picking import (drag_path, falloff_weights, project_points, resample_polyline,
                                        unproject_points)
from hand_studio.model import commands as C
from hand_studio.model.document import Document
from test_viewport import look_at_matrix


# --- pure functions (no Qt, no GL) --------------------------------------------------------
def perspective_matrix(eye, target, fov_deg: float = 35.0, size=(640, 480), near=0.05, far=5.0) -> np.ndarray:
    """A row-vector world -> canvas matrix with a finite OpenGL depth range (as VisPy's chain has)."""
    return look_at_matrix(eye, target, fov_deg, size, near=near, far=far)


def test_unproject_inverts_project_within_1e_6():
    rng = np.random.default_rng(0)
    m = perspective_matrix(eye=(0.3, 1.2, 0.6), target=(0.0, 1.0, 0.0))
    pts = rng.uniform(-0.15, 0.15, (50, 3)) + [0.0, 1.0, 0.0]
    xy, depth, ok = project_points(pts, m)
    assert ok.all()
    np.testing.assert_allclose(unproject_points(xy, depth, m), pts, atol=1e-6)
    # one depth for all: a plane parallel to the screen, its points the pixels asked for
    plane = unproject_points(xy, depth[0], m)
    forward = np.array([0.0, 1.0, 0.0]) - [0.3, 1.2, 0.6]
    assert np.ptp((plane - plane[0]) @ (forward / np.linalg.norm(forward))) < 1e-9
    np.testing.assert_allclose(project_points(plane, m)[0], xy, atol=1e-6)
    with pytest.raises(ValueError, match="xy must have shape"):
        unproject_points(np.zeros((3, 3)), 0.5, m)
    with pytest.raises(ValueError, match="singular"):
        unproject_points(xy, depth, np.zeros((4, 4)))


def test_falloff_weights_and_drag_path():
    w = falloff_weights(np.arange(-10, 11), radius=8)
    assert w[10] == 1.0 and w[0] == w[1] == w[-1] == w[-2] == 0.0  # +-9, +-10: beyond the radius
    assert np.all(w[2:10] > 0) and np.all(np.diff(w[:11]) >= 0) and np.all(np.diff(w[10:]) <= 0)
    np.testing.assert_allclose(w, w[::-1])
    assert falloff_weights([0, 1], 0).tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="falloff radius"):
        falloff_weights([0], -1)

    frames = np.arange(5, 30)
    pts = np.zeros((len(frames), 3))
    moved = drag_path(pts, frames, 12, [0.0, 0.1, 0.0], radius=4)
    assert moved[frames == 12, 1] == pytest.approx(0.1)
    np.testing.assert_allclose(moved[:, 1], 0.1 * falloff_weights(frames - 12, 4))
    assert np.all(moved[np.abs(frames - 12) > 4] == 0.0) and np.all(moved[:, [0, 2]] == 0.0)


def test_resample_polyline_by_arc_length():
    stroke = np.array([[0, 0, 0], [0.1, 0, 0], [0.1, 0, 0], [0.1, 0.2, 0]], float)  # 30 cm, a repeat
    out = resample_polyline(stroke, 4)
    np.testing.assert_allclose(out, [[0, 0, 0], [0.1, 0, 0], [0.1, 0.1, 0], [0.1, 0.2, 0]], atol=1e-12)
    steps = np.linalg.norm(np.diff(resample_polyline(stroke, 31), axis=0), axis=1)
    np.testing.assert_allclose(steps, 0.01, atol=1e-12)
    assert resample_polyline(stroke, 1).tolist() == [[0, 0, 0]]
    with pytest.raises(ValueError, match="no length"):
        resample_polyline(np.ones((3, 3)), 5)


def test_wrist_path_drags_merge_into_one_undo_step(small_clip):
    doc = Document(small_clip)
    history = C.UndoHistory()
    drag = C.new_drag_id()
    for dy in (0.01, 0.02, 0.03):
        history.push(C.SetWristPath(doc, "right", [(f, (0.0, dy, 0.0)) for f in range(3)], drag_id=drag))
    history.push(C.SetWristPath(doc, "left", [(0, (1.0, 0.0, 0.0))], drag_id=drag))  # other hand: its own
    assert len(history) == 2 and doc.wrist_path("right")[2] == (2, (0.0, 0.03, 0.0))
    history.undo()
    history.undo()
    assert doc.wrist_path("right") == () and doc.wrist_path("left") == ()
    history.redo()
    assert doc.wrist_path("right")[0] == (0, (0.0, 0.03, 0.0)) and history.undo_text == "Drag right wrist path"


# --- in a window ----------------------------------------------------------------------------
T = 30


@pytest.fixture
def sweep_clip():
    """30 frames: the right wrist sweeps 16 cm left to right along an arch, the left hand still."""
    from engine.motion.clip import Clip
    from hand_studio.model.poses import presentation_placement

    orient, transl = presentation_placement()
    s = np.linspace(0.0, 1.0, T)
    transl = np.repeat(transl[None], T, 0).astype(np.float32)  # (T, 2, 3)
    transl[:, 1, 0] += (0.16 * s - 0.08).astype(np.float32)
    transl[:, 1, 1] += (0.05 * np.sin(np.pi * s)).astype(np.float32)
    return Clip(transl, np.repeat(orient[None], T, 0), np.zeros((T, 2, 45), np.float32), fps=30.0)


@pytest.fixture
def editor(qtbot, studio, sweep_clip):
    """A viewport with its own undo history, framed so the whole right wrist path is on screen."""
    import torch

    from hand_studio._qt.viewport import QtViewport

    torch.set_num_threads(1)
    history = C.UndoHistory()

    def push(make):
        history.push(make())
        return True

    vp = QtViewport(Document(sweep_clip), studio.hands, size=(640, 480), push=push)
    vp.history = history
    qtbot.addWidget(vp)
    vp.resize(640, 480)
    vp.show()
    qtbot.waitExposed(vp)
    vp.stage.visible = False
    vp.set_camera_preset("front")
    vp.camera.scale_factor *= 1.8
    vp.document.frame = T // 2
    yield vp
    vp.close_visuals()


def camera_state(vp):
    c = vp.camera
    return (c.azimuth, c.elevation, c.roll, tuple(c.center), c.scale_factor, c.distance)


def screen_of(vp, points):
    return project_points(np.asarray(points, float).reshape(-1, 3), vp.path_matrix())[0]


MOVE_DELAY_MS = 15  # vispy drops mouse moves less than 10 ms apart


def stroke(qtbot, widget, points, modifier=None) -> np.ndarray:
    """A real left-button drag through ``points`` (M, 2) pixels: press at the first, a move to
    each of the others, release at the last. Returns the integer pixels used (M, 2)."""
    from PySide6.QtCore import QPoint, Qt

    mod = Qt.KeyboardModifier.NoModifier if modifier is None else modifier
    px = np.round(np.asarray(points, float)).astype(int)
    qtbot.mousePress(widget, Qt.LeftButton, mod, QPoint(*px[0]))
    for p in px[1:]:
        qtbot.wait(MOVE_DELAY_MS)  # real time: QTest's delay only stamps the event
        qtbot.mouseMove(widget, QPoint(*p))
    qtbot.mouseRelease(widget, Qt.LeftButton, mod, QPoint(*px[-1]))
    return px.astype(float)


def drag(qtbot, widget, start, end, steps: int = 4, modifier=None):
    """A real left-button drag from ``start`` to ``end`` (pixels) in ``steps`` moves."""
    start = np.round(np.asarray(start, float))
    end = np.round(np.asarray(end, float))
    px = stroke(qtbot, widget, start + np.linspace(0, 1, steps + 1)[:, None] * (end - start), modifier)
    return px[0], px[-1]


@pytest.mark.gui
def test_dragging_a_path_point_moves_it_in_the_view_plane_with_falloff(editor, qtbot):
    vp, doc = editor, editor.document
    canvas = vp.canvas.native
    take = doc.clip.joints[:, 1, 0].astype(np.float64)  # (T, 3) the right wrist
    xy = screen_of(vp, take)
    assert ((xy > 10) & (xy < [630, 470])).all(), xy  # the whole path is on screen

    # outside path edit mode the same drag orbits the camera (what the mode must stop)
    before = camera_state(vp)
    f0 = 12
    drag(qtbot, canvas, xy[f0], xy[f0] + (30, -20))
    assert camera_state(vp) != before and doc.wrist_path("right") == ()
    vp.set_camera_preset("front")
    vp.camera.scale_factor *= 1.8
    xy = screen_of(vp, take)

    with qtbot.waitSignal(vp.sig_path_edit_changed) as sig:
        vp.set_path_edit("right")
    assert sig.args == ["right"] and vp.path_edit == "right" and vp.wrist_paths_visible
    assert vp.path_point_at(xy[f0]) == f0
    before = camera_state(vp)
    m = vp.path_matrix()
    with qtbot.waitSignal(vp.sig_wrist_path_edited) as sig:
        p0, p1 = drag(qtbot, canvas, xy[f0], xy[f0] + (30, -20), steps=5)
    assert sig.args == ["right"]
    assert camera_state(vp) == before and vp.camera.interactive  # no orbit; the camera is given back
    assert vp.path_gesture is None and not vp.wrist_paths.dragged_marker.visible

    # no path was pinned: the drag started from the take's wrist over every frame
    path = doc.wrist_path("right")
    assert [f for f, _ in path] == list(range(T))
    moved = np.array([p for _, p in path])  # (T, 3)
    depth = project_points(take[f0:f0 + 1], m)[1][0]
    ends = unproject_points(np.stack([p0, p1]), depth, m)
    delta = ends[1] - ends[0]
    np.testing.assert_allclose(moved[f0] - take[f0], delta, atol=1e-9)
    forward = vp.camera_axes()[0]
    assert abs(delta @ forward) < 1e-9 and np.linalg.norm(delta) > 0.01  # in the view plane
    np.testing.assert_allclose(screen_of(vp, moved[f0]) - screen_of(vp, take[f0]), [[30, -20]], atol=1e-3)
    shift = np.linalg.norm(moved - take, axis=1)  # (T,)
    R = vp.path_falloff
    assert R == 8
    for k in range(1, R + 1):  # neighbours follow less the farther they are
        assert 0 < shift[f0 + k] < shift[f0 + k - 1] and 0 < shift[f0 - k] < shift[f0 - k + 1]
        np.testing.assert_allclose(moved[f0 + k] - take[f0 + k], falloff_weights([k], R)[0] * delta, atol=1e-9)
    far = np.abs(np.arange(T) - f0) > R
    np.testing.assert_array_equal(moved[far], take[far])

    # one drag = one undo step; undo restores exactly, redo re-applies
    assert len(vp.history) == 1 and vp.history.undo_text == "Drag right wrist path"
    vp.history.undo()
    assert doc.wrist_path("right") == ()
    vp.history.redo()
    assert doc.wrist_path("right") == path

    # a second drag moves the pinned path (not the take's) and is its own undo step
    assert vp.path_point_at(screen_of(vp, moved[f0])[0]) == f0
    drag(qtbot, canvas, screen_of(vp, moved[f0])[0], screen_of(vp, moved[f0])[0] + (0, 25))
    assert len(vp.history) == 2
    again = np.array([p for _, p in doc.wrist_path("right")])
    assert again[f0, 1] < moved[f0, 1] - 0.005  # down the screen: down in the world
    vp.history.undo()
    assert doc.wrist_path("right") == path

    # pressing off the path still orbits while editing
    drag(qtbot, canvas, (20, 20), (60, 40))
    assert camera_state(vp) != before and doc.wrist_path("right") == path


@pytest.mark.gui
def test_drag_starts_from_the_take_over_the_interval_and_updates_live(editor, qtbot):
    from PySide6.QtCore import QPoint, Qt

    vp, doc = editor, editor.document
    C.SetInterval(doc, (6, 20)).do()
    vp.set_path_edit("right")
    take = doc.clip.joints[:, 1, 0].astype(np.float64)
    xy = screen_of(vp, take)
    assert vp.path_point_at(xy[3]) is None  # outside the interval: not editable
    f0 = 10
    canvas = vp.canvas.native
    qtbot.mousePress(canvas, Qt.LeftButton, pos=QPoint(*np.round(xy[f0]).astype(int)))
    assert vp.path_gesture == "drag" and not vp.camera.interactive
    assert vp.wrist_paths.dragged == (1, f0) and vp.wrist_paths.dragged_marker.visible
    qtbot.wait(MOVE_DELAY_MS)
    qtbot.mouseMove(canvas, QPoint(*np.round(xy[f0] + (0, -30)).astype(int)))
    live = doc.wrist_path("right")  # pinned while the button is still down, drawn at once
    assert [f for f, _ in live] == list(range(6, 21))
    marker = vp.wrist_paths.dragged_marker._data["a_position"][0, :3]
    np.testing.assert_allclose(marker, dict(live)[f0], atol=1e-6)
    assert len(vp.wrist_paths.pinned_points._data) == 15
    qtbot.mouseRelease(canvas, Qt.LeftButton, pos=QPoint(*np.round(xy[f0] + (0, -30)).astype(int)))
    assert vp.camera.interactive and len(vp.history) == 1


@pytest.mark.gui
def test_shift_drag_draws_a_path_with_one_point_per_frame(editor, qtbot):
    from PySide6.QtCore import Qt

    vp, doc = editor, editor.document
    vp.set_path_edit("left")
    before = camera_state(vp)
    wrist = doc.clip.joints[doc.frame, 0, 0].astype(np.float64)
    m = vp.path_matrix()
    start = np.round(screen_of(vp, wrist)[0])
    r = 60.0  # an arch over the screen, from the wrist 120 px to the right
    a = np.linspace(0.0, np.pi, 13)
    arch = start + np.stack([r - r * np.cos(a), -r * np.sin(a)], axis=1)  # (13, 2)
    with qtbot.waitSignal(vp.sig_wrist_path_edited) as sig:
        px_used = stroke(qtbot, vp.canvas.native, arch, modifier=Qt.ShiftModifier)
    assert sig.args == ["left"] and camera_state(vp) == before
    path = doc.wrist_path("left")
    assert [f for f, _ in path] == list(range(T))  # no interval: the whole clip
    xyz = np.array([p for _, p in path])
    depth = project_points(wrist[None], m)[1][0]
    assert np.ptp(project_points(xyz, m)[1]) < 1e-9 and abs(project_points(xyz, m)[1][0] - depth) < 1e-9
    px = screen_of(vp, xyz)
    np.testing.assert_allclose(px[0], px_used[0], atol=1e-3)
    np.testing.assert_allclose(px[-1], px_used[-1], atol=1e-3)
    centre = start + (r, 0.0)
    assert np.abs(np.linalg.norm(px - centre, axis=1) - r).max() < 2.0  # every sample was used: on the arch
    assert (start[1] - px[:, 1]).max() > 0.97 * r
    drawn = unproject_points(px_used, depth, m)  # the stroke on the view plane (13, 3)
    np.testing.assert_allclose(xyz, resample_polyline(drawn, T), atol=1e-9)  # evenly spaced by arc length
    assert len(vp.history) == 1 and not vp.wrist_paths.stroke.visible
    vp.history.undo()
    assert doc.wrist_path("left") == ()

    C.SetInterval(doc, (4, 13)).do()  # with an interval: one point per frame of it
    drag(qtbot, vp.canvas.native, start, start + (-50, 80), steps=3, modifier=Qt.ShiftModifier)
    assert [f for f, _ in doc.wrist_path("left")] == list(range(4, 14))
    assert doc.wrist_path("right") == ()


@pytest.mark.gui
def test_path_edit_mode_shows_paths_and_restores_them(editor):
    vp = editor
    assert not vp.wrist_paths_visible
    vp.set_path_edit("left")
    assert vp.wrist_paths_visible
    vp.set_path_edit("right")
    vp.set_path_edit(None)
    assert not vp.wrist_paths_visible and vp.path_edit is None
    vp.set_path_edit("right")
    vp.set_wrist_paths_visible(False)  # hiding the paths ends the mode
    assert vp.path_edit is None and not vp.wrist_paths_visible
    with pytest.raises(ValueError, match="hand must be"):
        vp.set_path_edit("middle")
    with pytest.raises(ValueError, match="path falloff"):
        vp.path_falloff = -1


@pytest.mark.gui
def test_falloff_radius_is_configurable(editor, qtbot):
    vp, doc = editor, editor.document
    vp.path_falloff = 2
    vp.set_path_edit("right")
    take = doc.clip.joints[:, 1, 0].astype(np.float64)
    f0 = 20
    drag(qtbot, vp.canvas.native, screen_of(vp, take)[f0], screen_of(vp, take)[f0] + (0, -30))
    moved = np.linalg.norm(np.array([p for _, p in doc.wrist_path("right")]) - take, axis=1)
    assert np.flatnonzero(moved > 0).tolist() == [18, 19, 20, 21, 22]


@pytest.mark.gui
def test_main_window_edit_wrist_path_actions(qtbot, studio, sweep_clip, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings, Qt

    from hand_studio._qt.main_window import MainWindow
    from hand_studio.model.generation import pinned_wrist_path, plan_generation

    monkeypatch.setattr(MainWindow, "ask_save_changes", lambda self: "discard")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(studio, Document(sweep_clip), settings=settings, recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)  # window shortcuts need the active window
    vp, doc = w.viewport, w.document
    acts = w.path_edit_actions
    assert acts["left"].shortcut().toString() == "W" and acts["right"].shortcut().toString() == "Shift+W"
    qtbot.keyClick(w, Qt.Key_W, Qt.ShiftModifier)
    assert vp.path_edit == "right" and acts["right"].isChecked() and not acts["left"].isChecked()
    qtbot.keyClick(w, Qt.Key_W)
    assert vp.path_edit == "left" and acts["left"].isChecked() and not acts["right"].isChecked()
    acts["right"].trigger()
    assert vp.path_edit == "right" and vp.wrist_paths_visible and w.action_wrist_paths.isChecked()

    vp.set_camera_preset("front")
    vp.camera.scale_factor *= 1.8
    pp = w.prompt_panel
    pp.pin_checks["right"].setChecked(False)
    f0 = 12
    take = doc.clip.joints[:, 1, 0].astype(np.float64)
    drag(qtbot, vp.canvas.native, screen_of(vp, take)[f0], screen_of(vp, take)[f0] + (20, -25))
    moved = dict(doc.wrist_path("right"))
    assert len(moved) == T and np.linalg.norm(np.subtract(moved[f0], take[f0])) > 0.005
    assert w.undo_stack.count() == 1 and w.undo_stack.undoText() == "Drag right wrist path"
    # the next Generate pins the wrist to the edited path through the existing constraint
    assert pp.pin_checks["right"].isChecked()
    plan = plan_generation(doc, pp.options())
    assert plan.constraints is not None and "right wrist pinned (30 frames)" in plan.description
    frames, xyz = pinned_wrist_path(doc, "right")
    np.testing.assert_array_equal(xyz[frames == f0][0], moved[f0])
    w.action_undo.trigger()
    assert doc.wrist_path("right") == ()
    w.action_redo.trigger()
    assert dict(doc.wrist_path("right")) == moved

    acts["right"].trigger()  # off again
    assert vp.path_edit is None and not acts["right"].isChecked() and not vp.wrist_paths_visible
    w.close()
