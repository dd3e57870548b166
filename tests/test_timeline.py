"""The timeline widget driven with the mouse and keyboard in a real window (Xvfb)."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence

from engine.motion.clip import Clip
from hand_studio._qt.timeline import QtTimelineWidget, TRACK_ROWS
from hand_studio._qt.undo import QtUndoStack
from hand_studio.model import commands as C
from hand_studio.model.document import Document
from hand_studio.model.poses import presentation_placement

pytestmark = pytest.mark.gui
ROW = TRACK_ROWS


@pytest.fixture
def timeline(qtbot, small_clip):
    doc = Document(small_clip)
    stack = QtUndoStack()
    w = QtTimelineWidget(doc, stack)
    undo = stack.createUndoAction(w)
    undo.setShortcut(QKeySequence.Undo)
    w.addAction(undo)
    qtbot.addWidget(w)
    w.resize(700, 260)
    w.show()
    w.activateWindow()
    qtbot.waitActive(w)  # window shortcuts (Del, Ctrl+D, Ctrl+Z) need the active window
    for f in (2, 5):
        stack.push_command(C.AddKeys(doc, ["left_hand", "right_wrist"], frame=f))
    doc.select([])
    yield w
    w.close_listeners()


def vp(w):
    return w.plot.viewport()


def drag(qtbot, w, points, modifier=Qt.NoModifier):
    """Press at the first (frame, row), move through the others, release at the last."""
    pts = [w.view_point(f, r) for f, r in points]
    qtbot.mouseMove(vp(w), pts[0])
    qtbot.mousePress(vp(w), Qt.LeftButton, modifier, pts[0])
    for p in pts[1:]:
        qtbot.wait(20)  # pyqtgraph drops moves closer than ~16 ms (QTest's delay only stamps events)
        qtbot.mouseMove(vp(w), p)
    qtbot.mouseRelease(vp(w), Qt.LeftButton, modifier, pts[-1])


def click(qtbot, w, frame, row, modifier=Qt.NoModifier):
    p = w.view_point(frame, row)
    qtbot.mouseMove(vp(w), p)
    qtbot.mouseClick(vp(w), Qt.LeftButton, modifier, p)


def test_click_selects_and_shift_click_adds(timeline, qtbot):
    doc = timeline.document
    click(qtbot, timeline, 5, ROW["right_wrist"])
    assert doc.selection == {("right_wrist", 5)}
    click(qtbot, timeline, 2, ROW["left_hand"], Qt.ShiftModifier)
    assert doc.selection == {("right_wrist", 5), ("left_hand", 2)}
    click(qtbot, timeline, 7, ROW["left_wrist"])  # empty space: clears and scrubs there
    assert doc.selection == frozenset() and doc.frame == 7


def test_drag_key_snaps_and_one_undo_restores(timeline, qtbot):
    doc = timeline.document
    values = doc.key_values("left_hand", 2)
    drag(qtbot, timeline, [(2, ROW["left_hand"]), (2.6, ROW["left_hand"]), (3.4, ROW["left_hand"]),
                           (4.2, ROW["left_hand"] + 0.2)])
    assert doc.key_frames("left_hand") == [4, 5]  # snapped to 4, the wrist key stayed
    assert doc.key_frames("right_wrist") == [2, 5]
    np.testing.assert_array_equal(doc.key_values("left_hand", 4), values)
    assert timeline.undo_stack.count() == 3  # two AddKeys + one merged move
    timeline.setFocus()
    qtbot.keyClick(timeline, Qt.Key_Z, Qt.ControlModifier)
    assert doc.key_frames("left_hand") == [2, 5]


def test_drag_onto_another_key_stops_before_it(timeline, qtbot):
    doc = timeline.document
    messages = []
    timeline.sig_message.connect(messages.append)
    drag(qtbot, timeline, [(2, ROW["left_hand"]), (3, ROW["left_hand"]), (4, ROW["left_hand"]),
                           (5, ROW["left_hand"])])
    assert doc.key_frames("left_hand") == [4, 5]  # stopped next to the other key
    assert any("a key is already there" in m for m in messages)
    drag(qtbot, timeline, [(5, ROW["right_wrist"]), (30, ROW["right_wrist"])])  # past the end: clamped
    assert doc.key_frames("right_wrist") == [2, 9]


def test_box_select_delete_and_duplicate(timeline, qtbot):
    doc = timeline.document
    drag(qtbot, timeline, [(1.5, ROW["left_hand"] - 0.4), (5.5, ROW["right_hand"] + 0.4)])
    assert doc.selection == {("left_hand", 2), ("left_hand", 5)}
    drag(qtbot, timeline, [(4.5, ROW["right_wrist"] - 0.4), (6.5, ROW["right_wrist"] + 0.4)],
         Qt.ShiftModifier)
    assert doc.selection == {("left_hand", 2), ("left_hand", 5), ("right_wrist", 5)}
    timeline.setFocus()
    qtbot.keyClick(timeline, Qt.Key_Delete)
    assert doc.all_keys() == [("right_wrist", 2)]
    click(qtbot, timeline, 2, ROW["right_wrist"])
    doc.frame = 7
    qtbot.keyClick(timeline, Qt.Key_D, Qt.ControlModifier)
    assert doc.key_frames("right_wrist") == [2, 7] and doc.selection == {("right_wrist", 7)}


def test_region_sets_the_interval(timeline, qtbot):
    doc = timeline.document
    drag(qtbot, timeline, [(3, ROW["right_hand"]), (6, ROW["right_hand"])], Qt.ControlModifier)
    assert doc.interval == (3, 6) and timeline.region.isVisible()
    assert timeline.region.getRegion() == pytest.approx((2.5, 6.5))
    drag(qtbot, timeline, [(6.5, ROW["left_wrist"]), (7.6, ROW["left_wrist"]), (8.1, ROW["left_wrist"])])
    assert doc.interval == (3, 8)
    timeline.undo_stack.undo()
    assert doc.interval == (3, 6)


def test_an_interval_edge_dragged_past_the_other_keeps_the_other(timeline, qtbot):
    """Dragging the first edge through the last one: the edge not touched stays where it was (the
    interval used to collapse onto the cursor once the edges swapped); one undo restores it."""
    doc = timeline.document
    drag(qtbot, timeline, [(3, ROW["right_hand"]), (6, ROW["right_hand"])], Qt.ControlModifier)
    assert doc.interval == (3, 6)
    drag(qtbot, timeline, [(2.5, ROW["left_wrist"]), (4.6, ROW["left_wrist"]), (6.2, ROW["left_wrist"]),
                           (8.1, ROW["left_wrist"]), (9.1, ROW["left_wrist"])])
    assert doc.interval == (6, 9)
    timeline.undo_stack.undo()
    assert doc.interval == (3, 6)


def test_scrub_the_playhead(timeline, qtbot):
    doc = timeline.document
    doc.frame = 1
    drag(qtbot, timeline, [(1, ROW["right_hand"]), (3.7, ROW["right_hand"]), (6.2, ROW["left_wrist"])])
    assert doc.frame == 6 and timeline.playhead.value() == 6
    drag(qtbot, timeline, [(6, 0), (8.4, 0)])  # in the contact row, anywhere scrubs
    assert doc.frame == 8
    doc.frame = 0
    assert timeline.playhead.value() == 0


def test_contact_bar_lights_where_fingertips_touch(timeline, qtbot):
    """Hands 24 cm apart for 4 frames, then the wrists meet for 4 frames."""
    orient, transl = presentation_placement(separation=0.24)
    T = 8
    transl = np.repeat(transl[None], T, 0)
    transl[4:, 0, 0] += 0.10  # left hand moves 10 cm right ...
    transl[4:, 1, 0] -= 0.10  # ... and the right hand 10 cm left: they overlap
    clip = Clip(transl, np.repeat(orient[None], T, 0), np.zeros((T, 2, 45)))
    C.UndoHistory().push(C.SetClip(timeline.document, clip))
    assert timeline.contact.tolist() == [False] * 4 + [True] * 4
    img = timeline.bands.image  # (T, rows, 4)
    assert (img[4:, 0, 0] > 150).all() and (img[:4, 0, 0] < 60).all()
    shot = timeline.plot.grab().toImage()
    red = shot.pixelColor(timeline.view_point(6, 0))
    assert red.red() > 150 and red.green() < 120, red.name()
