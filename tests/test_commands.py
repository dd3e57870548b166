"""Document edits as undoable commands, without Qt."""
from __future__ import annotations

import numpy as np
import pytest

from engine.motion.clip import Clip
from hand_studio.model import commands as C
from hand_studio.model.contact import contact_frames
from hand_studio.model.document import Document
from hand_studio.model.tracks import TRACKS, track_values


@pytest.fixture
def doc(small_clip):
    return Document(small_clip)


def keyed(doc, history, *frames, tracks=("left_hand", "right_wrist")):
    for f in frames:
        history.push(C.AddKeys(doc, tracks, frame=f))


def test_add_key_from_current_pose_undo_redo(doc):
    h = C.UndoHistory()
    doc.frame = 4
    changed = []
    doc.events.changed.connect(lambda e: changed.append(e.value))
    h.push(C.AddKeys(doc))  # all four tracks at the playhead
    assert doc.all_keys() == [(t, 4) for t in TRACKS]
    np.testing.assert_array_equal(doc.key_values("right_hand", 4), doc.clip.hand_pose[4, 1])
    np.testing.assert_array_equal(doc.key_values("left_wrist", 4),
                                  np.r_[doc.clip.transl[4, 0], doc.clip.global_orient[4, 0]])
    assert doc.selection == {(t, 4) for t in TRACKS}
    h.undo()
    assert doc.num_keys == 0 and doc.selection == frozenset()
    h.redo()
    assert doc.num_keys == 4 and h.undo_text == "Add key at frame 4"
    assert changed == [1, 2, 3] and not h.is_clean
    with pytest.raises(ValueError, match=r"frame must be in 0\.\.9; got 12"):
        C.AddKeys(doc, frame=12)
    with pytest.raises(ValueError, match="track must be one of"):
        C.AddKeys(doc, ["left_foot"])


def test_move_snaps_refuses_collisions_and_the_clip_end(doc):
    h = C.UndoHistory()
    keyed(doc, h, 2, 5)
    before = doc.key_values("left_hand", 2)
    h.push(C.MoveKeys(doc, [("left_hand", 2)], 1))
    assert doc.key_frames("left_hand") == [3, 5]
    np.testing.assert_array_equal(doc.key_values("left_hand", 3), before)  # the pose moves in time
    with pytest.raises(ValueError, match="onto frame 5 of left hand: a key is already there"):
        C.MoveKeys(doc, [("left_hand", 3)], 2)
    with pytest.raises(ValueError, match=r"past the clip end: .* at frame 5 would land on frame 11; "
                                         r"the clip has frames 0\.\.9"):
        C.MoveKeys(doc, [("right_wrist", 5)], 6)
    with pytest.raises(ValueError, match="whole number of frames"):
        C.MoveKeys(doc, [("right_wrist", 5)], 1.5)
    assert doc.key_frames("left_hand") == [3, 5] and len(h) == 3  # refused edits changed nothing
    # a block may move over its own frames
    h.push(C.MoveKeys(doc, [("right_wrist", 2), ("right_wrist", 5)], 3))
    assert doc.key_frames("right_wrist") == [5, 8]
    h.undo()
    h.undo()
    assert doc.key_frames("left_hand") == [2, 5] and doc.key_frames("right_wrist") == [2, 5]


def test_drag_moves_merge_into_one_undo(doc):
    h = C.UndoHistory()
    keyed(doc, h, 1)
    n = len(h)
    drag = C.new_drag_id()
    for _ in range(4):  # four mouse moves of one drag: +1 each
        keys = sorted(doc.selection)
        h.push(C.MoveKeys(doc, keys, 1, drag_id=drag))
    h.push(C.MoveKeys(doc, sorted(doc.selection), -1, drag_id=drag))
    assert doc.key_frames("left_hand") == [4] and len(h) == n + 1
    assert h.undo_text == "Move 2 keys by +3 frames"
    h.push(C.MoveKeys(doc, sorted(doc.selection), 1, drag_id=C.new_drag_id()))  # a new drag
    assert len(h) == n + 2
    h.undo()
    h.undo()
    assert doc.key_frames("left_hand") == [1] and doc.key_frames("right_wrist") == [1]
    h.redo()
    assert doc.key_frames("left_hand") == [4] and doc.selection == {("left_hand", 4), ("right_wrist", 4)}


def test_delete_and_duplicate(doc):
    h = C.UndoHistory()
    keyed(doc, h, 1, 2)
    doc.select([("left_hand", 1), ("left_hand", 2)])
    doc.frame = 6
    offset = C.duplicate_offset(doc, doc.selection)
    assert offset == 5  # copies start at the playhead
    h.push(C.DuplicateKeys(doc, doc.selection, offset))
    assert doc.key_frames("left_hand") == [1, 2, 6, 7] and doc.selection == {("left_hand", 6), ("left_hand", 7)}
    np.testing.assert_array_equal(doc.key_values("left_hand", 7), doc.key_values("left_hand", 2))
    doc.frame = 6
    assert C.duplicate_offset(doc, doc.selection) == 2  # playhead on the first key: right after
    with pytest.raises(ValueError, match="past the clip end"):
        C.DuplicateKeys(doc, doc.selection, 4)
    with pytest.raises(ValueError, match="a key is already there"):
        C.DuplicateKeys(doc, [("left_hand", 1)], 1)
    h.push(C.DeleteKeys(doc))  # the selection
    assert doc.key_frames("left_hand") == [1, 2] and doc.selection == frozenset()
    with pytest.raises(ValueError, match="no keys given"):
        C.DeleteKeys(doc)
    h.undo()
    assert doc.key_frames("left_hand") == [1, 2, 6, 7] and doc.selection == {("left_hand", 6), ("left_hand", 7)}


def test_constraint_commands(doc):
    h = C.UndoHistory()
    drag = C.new_drag_id()
    h.push(C.SetInterval(doc, (2, 5), drag_id=drag))
    h.push(C.SetInterval(doc, (2, 7), drag_id=drag))
    assert doc.interval == (2, 7) and len(h) == 1
    with pytest.raises(ValueError, match=r"0 <= first <= last <= 9; got 5\.\.12"):
        C.SetInterval(doc, (5, 12))
    h.push(C.SetHandLocked(doc, "left"))
    assert doc.locked_hands == {"left"}
    with pytest.raises(ValueError, match="cannot lock both hands"):
        C.SetHandLocked(doc, "right")
    path = [(0, (0.1, 0.0, 0.0)), (9, (0.2, 0.1, -0.1))]
    h.push(C.SetWristPath(doc, "right", path[::-1]))
    assert doc.wrist_path("right") == ((0, (0.1, 0.0, 0.0)), (9, (0.2, 0.1, -0.1)))
    with pytest.raises(ValueError, match="frame must be in 0..9; got 10"):
        C.SetWristPath(doc, "left", [(10, (0, 0, 0))])
    h.undo()
    h.undo()
    assert doc.wrist_path("right") == () and doc.locked_hands == frozenset() and doc.interval == (2, 7)
    h.undo()
    assert doc.interval is None


def test_takes_and_set_clip_trim_and_restore(doc, small_clip):
    h = C.UndoHistory()
    keyed(doc, h, 2, 8)
    h.push(C.SetInterval(doc, (4, 9)))
    h.push(C.SetWristPath(doc, "left", [(1, (0, 0, 0)), (9, (0, 0.1, 0))]))
    doc.frame = 9
    short = Clip.rest(5)
    h.push(C.AddTake(doc, short, generated=np.ones((5, 4), bool)))
    assert [t.name for t in doc.takes] == ["Take 1", "Take 2"] and doc.clip is short
    assert doc.frame == 4 and doc.key_frames("left_hand") == [2] and doc.interval == (4, 4)
    assert doc.wrist_path("left") == ((1, (0.0, 0.0, 0.0)),)
    h.push(C.RenameTake(doc, 1, "short"))
    with pytest.raises(ValueError, match="already exists"):
        C.RenameTake(doc, 0, "short")
    with pytest.raises(ValueError, match="take 1 is already named 'short'"):  # no no-op undo step
        C.RenameTake(doc, 1, " short ")
    h.push(C.SwitchTake(doc, 0))
    assert doc.clip is small_clip
    h.push(C.DeleteTake(doc, 0))
    assert [t.name for t in doc.takes] == ["short"] and doc.clip is short
    with pytest.raises(ValueError, match="only take"):
        C.DeleteTake(doc, 0)
    h.push(C.SetClip(doc, Clip.rest(3), source="x.npz"))
    assert doc.num_frames == 3 and doc.path.name == "x.npz" and doc.current_take.name == "short"
    for _ in range(5):
        h.undo()
    assert doc.clip is small_clip and len(doc.takes) == 1 and doc.path is None
    assert doc.key_frames("left_hand") == [2, 8] and doc.interval == (4, 9)
    assert doc.wrist_path("left")[-1][0] == 9
    while h.can_redo:
        h.redo()
    assert doc.num_frames == 3 and [t.name for t in doc.takes] == ["short"]


def test_history_clean_mark(doc):
    h = C.UndoHistory()
    keyed(doc, h, 1)
    h.set_clean()
    keyed(doc, h, 2)
    assert not h.is_clean
    h.undo()
    assert h.is_clean
    h.undo()
    keyed(doc, h, 3)  # the clean state is gone for good
    assert not h.is_clean and not h.can_redo
    with pytest.raises(IndexError, match="nothing to redo"):
        h.redo()


def test_contact_frames():
    rng = np.random.default_rng(0)
    joints = rng.normal(scale=0.01, size=(4, 2, 21, 3)).astype(np.float32)
    joints[:, 0, :, 0] -= 0.3  # hands 30 cm apart
    joints[1, 0, 17] = joints[1, 1, 5] + [0.015, 0, 0]  # left index tip 1.5 cm from a right knuckle
    joints[2, 1, 16] = joints[2, 0, 9] + [0, 0.025, 0]  # right thumb tip 2.5 cm away: not touching
    joints[3, 0] = joints[3, 1] + [0, 0.02, 0]  # palms 2 cm apart (the whole hand above the other)
    assert contact_frames(joints).tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match=r"\(T, 2, 21, 3\)"):
        contact_frames(joints[:, 0])


def test_track_values_shapes(small_clip):
    assert track_values(small_clip, "left_hand", 0).shape == (45,)
    assert track_values(small_clip, "right_wrist", 9).shape == (6,)
