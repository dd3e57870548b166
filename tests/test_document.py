"""The GUI's model layer without Qt: events, the playhead, pose presets."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from engine.motion.clip import Clip
from hand_studio.model import poses
from hand_studio.model.document import Document
from hand_studio.model.events import EmitterGroup, Event, EventEmitter


def test_emitter_connect_emit_disconnect():
    em = EventEmitter(source="src", type="thing")
    seen = []
    cb = em.connect(seen.append)
    em.connect(seen.append)  # connecting twice is a no-op
    event = em.emit(3)
    assert seen == [Event("thing", "src", 3)] and event.value == 3
    with em.blocker():
        em.emit(4)
    assert len(seen) == 1
    em.disconnect(cb)
    em.emit(5)
    assert len(seen) == 1
    with pytest.raises(ValueError, match="not connected"):
        em.disconnect(cb)
    with pytest.raises(TypeError, match="callable"):
        em.connect(42)


def test_emitter_group_names_and_disconnect_everywhere():
    group = EmitterGroup(None, "a", "b")
    assert group.names == ("a", "b")
    seen = []
    group.a.connect(seen.append)
    group.b.connect(seen.append)
    group.disconnect(seen.append)
    group.a.emit(1)
    group.b.emit(2)
    assert seen == []
    with pytest.raises(ValueError, match="identifier"):
        EmitterGroup(None, "not a name")


def test_frame_events_and_range(small_clip):
    doc = Document(small_clip)
    frames = []
    doc.events.frame.connect(lambda e: frames.append(e.value))
    doc.frame = 4
    doc.frame = 4  # unchanged: no event
    doc.frame = np.int64(9)
    assert frames == [4, 9] and doc.frame == 9
    with pytest.raises(ValueError, match=r"0\.\.9; got 10"):
        doc.frame = 10
    with pytest.raises(ValueError, match=r"0\.\.9; got -1"):
        doc.frame = -1
    with pytest.raises(TypeError, match="integer"):
        doc.frame = 2.5
    with pytest.raises(TypeError, match="integer"):
        doc.frame = True
    assert doc.frame == 9


def test_step_loops_or_stops(small_clip):
    doc = Document(small_clip)
    doc.frame = 9
    assert doc.step(1) == 0
    assert doc.step(-1) == 9
    assert doc.step(5, loop=False) == 9
    doc.frame = 0
    assert doc.step(-3, loop=False) == 0


def test_new_clip_clamps_playhead_and_emits(small_clip):
    doc = Document(small_clip)
    doc.frame = 8
    order = []
    doc.events.clip.connect(lambda e: order.append(("clip", e.value.num_frames)))
    doc.events.frame.connect(lambda e: order.append(("frame", e.value)))
    doc.set_clip(Clip.rest(3), path="x.npz")
    assert order == [("clip", 3), ("frame", 2)]
    assert doc.frame == 2 and doc.num_frames == 3 and doc.path.name == "x.npz"
    with pytest.raises(TypeError, match="Clip"):
        doc.clip = "not a clip"
    assert doc.num_frames == 3


def test_default_document_is_one_rest_frame():
    doc = Document()
    assert doc.num_frames == 1 and doc.frame == 0 and doc.fps == 30.0


def test_model_layer_imports_no_qt():
    code = ("import sys, pkgutil, importlib, hand_studio.model as m; "
            "[importlib.import_module(f'hand_studio.model.{i.name}') for i in pkgutil.iter_modules(m.__path__)]; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'vispy', 'pyqtgraph')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", sorted(poses.POSES))
def test_pose_presets_shape_and_mirror(name):
    p = poses.pose(name)
    assert p.shape == (2, 45) and p.dtype == np.float32 and np.isfinite(p).all()
    np.testing.assert_allclose(p[0], poses.mirror_pose(p[1]), atol=1e-7)
    np.testing.assert_allclose(poses.mirror_pose(poses.mirror_pose(p)), p, atol=1e-7)


def test_pose_semantics():
    rows = lambda p: p[1].reshape(15, 3)  # noqa: E731  right hand, one row per joint
    fist, point, spread = poses.fist_pose(), poses.point_pose(), poses.spread_pose()
    for r in (0, 1, 2, 3, 4, 5):  # index and middle curl toward the palm (+z for the right hand)
        assert rows(fist)[r, 2] > 0.5
    assert np.abs(rows(point)[0:3]).max() < 0.1  # the pointing index finger stays straight
    assert rows(spread)[0, 1] > 0.2 > -0.2 > rows(spread)[6, 1]  # index and pinky fan apart about y
    with pytest.raises(ValueError, match="pose must be one of"):
        poses.pose("wave")


def test_presentation_placement_points_fingers_forward(studio):
    import torch

    orient, transl = poses.presentation_placement(separation=0.3)
    with torch.no_grad():
        _, joints = studio.hands(torch.zeros(2, 10), torch.from_numpy(orient)[None],
                                 torch.zeros(1, 2, 45), torch.from_numpy(transl)[None])
    j = joints[0].numpy()  # (2, 21, 3)
    np.testing.assert_allclose(j[:, 0], [[-0.15, 0, 0], [0.15, 0, 0]], atol=1e-5)  # wrists placed
    middle_tip = j[:, 18]
    assert (middle_tip[:, 2] < -0.12).all()  # fingers along -Z, away from the performer
    thumb_tip = j[:, 16]
    assert thumb_tip[1, 0] < j[1, 0, 0] and thumb_tip[0, 0] > j[0, 0, 0]  # thumbs point inward


def test_rotation_to_axis_angle_roundtrip():
    rng = np.random.default_rng(0)
    for aa in list(rng.normal(size=(20, 3))) + [np.array([np.pi - 1e-6, 0, 0]), np.zeros(3)]:
        aa = aa if np.linalg.norm(aa) <= np.pi else aa / np.linalg.norm(aa) * 2.0
        R = poses._rotation(aa, np.linalg.norm(aa)) if np.linalg.norm(aa) > 0 else np.eye(3)
        back = poses.rotation_to_axis_angle(R)
        np.testing.assert_allclose(poses._rotation(back, np.linalg.norm(back)) if np.linalg.norm(back) > 0
                                   else np.eye(3), R, atol=1e-5)
