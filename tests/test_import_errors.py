"""Malformed input: every importer answers with one typed error (FileFormatError, a ClipError)
naming the file and what was expected — never a crash, a hang, a huge allocation or an unpickle."""
from __future__ import annotations

import io
import json
import pickle
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from engine.data.importers import import_clip
from engine.export import export_clip
from engine.io import FileFormatError
from engine.motion.clip import ClipError
from readers.clips import motion_clip


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    clip = motion_clip(8)
    files = {
        "fbx": export_clip(clip, d / "g.fbx")[0],
        "bvh": export_clip(clip, d / "g.bvh", bvh_layout="one_root")[0],
        "npz": export_clip(clip, d / "g.npz")[0],
    }
    np.save(d / "kp.npy", clip.joints)
    files["npy"] = d / "kp.npy"
    (d / "kp.json").write_text(json.dumps({"keypoints": clip.joints.tolist()}))
    files["json"] = d / "kp.json"
    return {k: p.read_bytes() for k, p in files.items()}


def expect_error(path, match: str | None = None, **kw):
    with pytest.raises(FileFormatError) as e:
        import_clip(path, **kw)
    assert str(path) in str(e.value)
    if match:
        assert match in str(e.value), str(e.value)
    return e.value


@pytest.mark.parametrize("ext", ["fbx", "bvh", "npz", "npy", "json"])
def test_truncated_and_garbage(good, tmp_path, ext):
    data = good[ext]
    for cut in (len(data) // 3, len(data) - 20):
        p = tmp_path / f"cut{cut}.{ext}"
        p.write_bytes(data[:cut])
        expect_error(p)
    p = tmp_path / f"garbage.{ext}"
    p.write_bytes(np.random.default_rng(0).bytes(5000))
    expect_error(p)
    p = tmp_path / f"empty.{ext}"
    p.write_bytes(b"")
    expect_error(p, "empty")


def test_nan_wrong_shape_and_missing(tmp_path, good):
    clip = motion_clip(8)
    kp = clip.joints.copy()
    kp[3, 1, 5, 0] = np.nan
    np.save(tmp_path / "nan.npy", kp)
    expect_error(tmp_path / "nan.npy", "finite")
    np.save(tmp_path / "shape.npy", np.zeros((8, 2, 20, 3)))
    expect_error(tmp_path / "shape.npy")
    np.savez(tmp_path / "shape.npz", keypoints=np.zeros((8, 21, 3)))
    expect_error(tmp_path / "shape.npz", "(T, 2, 21, 3)")
    np.savez(tmp_path / "nothing.npz", foo=np.zeros(3))
    expect_error(tmp_path / "nothing.npz", "neither")
    np.savez(tmp_path / "inf.npz", left_pose=np.full((8, 48), np.inf), left_trans=np.zeros((8, 3)))
    expect_error(tmp_path / "inf.npz", "finite")
    np.savez(tmp_path / "tiny.npz", keypoints=clip.joints * 1e-6)
    expect_error(tmp_path / "tiny.npz", "units")
    text = good["bvh"].decode().replace("Frames: 8", "Frames: 9")
    (tmp_path / "frames.bvh").write_text(text)
    expect_error(tmp_path / "frames.bvh", "truncated")
    text = good["bvh"].decode().replace("JOINT R_pinky2", "JOINT R_pinkyX").replace("JOINT L_pinky2", "JOINT L_pinkyX")
    (tmp_path / "missing.bvh").write_text(text)
    expect_error(tmp_path / "missing.bvh", "lacks joints ['pinky2']")
    text = good["bvh"].decode().replace("Frame Time: 0.0333333333", "Frame Time: nan")
    (tmp_path / "ft.bvh").write_text(text)
    expect_error(tmp_path / "ft.bvh", "Frame Time")


def test_absurd_sizes_are_refused_before_allocating(tmp_path, good):
    # an .npy header claiming 10^12 floats with no data behind it
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 2, 21, 3 * 10**4)})
    (tmp_path / "huge.npy").write_bytes(buf.getvalue() + b"\x00" * 64)
    expect_error(tmp_path / "huge.npy", "elements")
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("keypoints.npy", buf.getvalue() + b"\x00" * 64)
    expect_error(tmp_path / "huge.npz", "elements")
    text = good["bvh"].decode().replace("Frames: 8", "Frames: 999999999")
    (tmp_path / "frames.bvh").write_text(text)
    expect_error(tmp_path / "frames.bvh", "Frames must be")
    data = bytearray(good["fbx"])
    i = data.find(b"KeyTime")  # the array count field right after the name and type code
    data[i + 8:i + 12] = (2**31).to_bytes(4, "little")
    (tmp_path / "count.fbx").write_bytes(bytes(data))
    expect_error(tmp_path / "count.fbx")


def test_pickles_are_never_loaded(tmp_path):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))
    arr = np.array([Boom()], dtype=object)
    np.savez(tmp_path / "obj.npz", keypoints=arr)
    expect_error(tmp_path / "obj.npz", "objects")
    (tmp_path / "p.npy").write_bytes(pickle.dumps(Boom()))
    expect_error(tmp_path / "p.npy")


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bvh"):
        import_clip(tmp_path / "nope.bvh")
    (tmp_path / "a.txt").write_text("x")
    expect_error(tmp_path / "a.txt", "expected .npz")


def _mutations():
    return st.tuples(st.sampled_from(["fbx", "bvh", "npz", "npy", "json"]),
                     st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), min_size=1, max_size=8),
                     st.one_of(st.none(), st.floats(0, 1)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=_mutations())
def test_fuzz_mutated_files_give_only_typed_errors(good, tmp_path, case):
    """Random byte flips and truncations of valid files: a clip or our typed error, fast."""
    ext, flips, cut = case
    data = bytearray(good[ext])
    for pos, val in flips:
        data[int(pos * (len(data) - 1))] = val
    if cut is not None:
        data = data[:max(1, int(cut * len(data)))]
    p = tmp_path / f"fuzz.{ext}"
    p.write_bytes(bytes(data))
    t = time.perf_counter()
    try:
        import_clip(p)
    except ClipError as e:
        assert str(p) in str(e)
    assert time.perf_counter() - t < 10
