"""The Clip type: validation that names the field, npz files that are never unpickled."""
import json
import os

import numpy as np
import pytest

from engine.hands.skeleton import MANO_RIGHT_REST_JOINTS
from engine.motion.clip import Clip, ClipError, Prompt


def make_clip(T=12, seed=0) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip(transl=rng.normal(0, 0.1, (T, 2, 3)), global_orient=rng.normal(0, 0.5, (T, 2, 3)),
                hand_pose=rng.normal(0, 0.2, (T, 2, 45)), betas=np.zeros((2, 10)), fps=30,
                prompt=Prompt("clap", "left waits", "right claps"))


def test_fields_are_float32_and_joints_derived():
    c = make_clip()
    assert c.transl.dtype == np.float32 and c.hand_pose.shape == (12, 2, 45)
    j = c.joints
    assert j.shape == (12, 2, 21, 3) and j.dtype == np.float32
    rest_wrist = np.stack([MANO_RIGHT_REST_JOINTS[0] * [-1, 1, 1], MANO_RIGHT_REST_JOINTS[0]])
    assert np.allclose(j[:, :, 0], c.transl + rest_wrist, atol=1e-6)  # rotation is about the rest wrist
    rest = Clip.rest(1, separation=0.0)
    assert np.allclose(rest.joints[0, 1, :16], MANO_RIGHT_REST_JOINTS, atol=1e-6)
    assert np.allclose(rest.joints[0, 0, :16, 0], -MANO_RIGHT_REST_JOINTS[:, 0], atol=1e-6)


@pytest.mark.parametrize("field,value,needle", [
    ("transl", np.zeros((5, 3)), "transl must have shape (T, 2, 3)"),
    ("global_orient", np.zeros((12, 2, 4)), "global_orient must have shape (12, 2, 3)"),
    ("hand_pose", np.zeros((11, 2, 45)), "hand_pose must have shape (12, 2, 45)"),
    ("betas", np.zeros((10,)), "betas must have shape (2, 10)"),
    ("hand_pose", np.full((12, 2, 45), np.nan), "hand_pose must be finite"),
    ("fps", 0, "fps must be in"),
    ("fps", "fast", "fps must be a number"),
    ("transl", [["a"]], "transl must be a float array"),
])
def test_validation_names_the_field(field, value, needle):
    c = make_clip()
    kwargs = dict(transl=c.transl, global_orient=c.global_orient, hand_pose=c.hand_pose, betas=c.betas, fps=30)
    kwargs[field] = value
    with pytest.raises(ClipError) as e:
        Clip(**kwargs)
    assert needle in str(e.value)


def test_npz_round_trip_is_exact(tmp_path):
    c = make_clip()
    p = c.save(tmp_path / "a.npz")
    back = Clip.load(p)
    for k in ("transl", "global_orient", "hand_pose", "betas"):
        assert np.array_equal(getattr(back, k), getattr(c, k))
    assert back.fps == 30 and back.prompt == c.prompt
    with np.load(p, allow_pickle=False) as z:
        assert int(z["format_version"]) == 1
        assert z["joints"].shape == (12, 2, 21, 3)
        assert json.loads(str(z["text"])) == {"text": "clap", "left": "left waits", "right": "right claps"}
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []  # atomic: no temp left


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch):
    p = tmp_path / "keep.npz"
    make_clip(seed=1).save(p)
    before = p.read_bytes()
    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError):
        make_clip(seed=2).save(p)
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.npz"]


def test_slice_copy_and_rest():
    c = make_clip(T=20)
    s = c.slice(5, 9)
    assert s.num_frames == 4 and np.array_equal(s.hand_pose, c.hand_pose[5:9])
    with pytest.raises(ClipError, match="frame range"):
        c.slice(5, 50)
    d = c.copy(fps=60)
    assert d.fps == 60 and c.fps == 30 and d.hand_pose is not c.hand_pose
    assert Clip.rest(3).num_frames == 3


@pytest.mark.parametrize("bad", ["truncated", "notzip", "missing", "pickled", "shape", "version", "text"])
def test_malformed_files_give_one_clear_error(tmp_path, bad):
    good = tmp_path / "good.npz"
    make_clip().save(good)
    p = tmp_path / f"{bad}.npz"
    arrays = dict(np.load(good, allow_pickle=False))
    if bad == "truncated":
        p.write_bytes(good.read_bytes()[:200])
    elif bad == "notzip":
        p.write_bytes(b"hello, not a clip")
    else:
        if bad == "missing":
            del arrays["hand_pose"]
        elif bad == "pickled":
            arrays["text"] = np.array([{"evil": 1}], dtype=object)
        elif bad == "shape":
            arrays["hand_pose"] = arrays["hand_pose"][:, :, :44]
        elif bad == "version":
            arrays["format_version"] = np.array(7)
        elif bad == "text":
            arrays["text"] = np.array("{not json")
        np.savez(p, **arrays)
    with pytest.raises(ClipError) as e:
        Clip.load(p)
    assert str(p) in str(e.value)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        Clip.load(tmp_path / "nope.npz")
    with pytest.raises(ClipError, match="cannot write .xyz"):
        make_clip().save(tmp_path / "a.xyz")
