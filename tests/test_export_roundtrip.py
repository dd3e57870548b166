"""Export -> import gives the same clip (npz and BVH exactly, FBX within 1e-4 rad); options;
the CLI; export timings of a 30 s two-hand clip."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from engine.data.importers import import_clip, import_clips
from engine.export import ExportOptions, export_clip
from engine.export.rig import aa_to_matrix, matrix_to_euler, continuous_euler, euler_to_matrix
from engine.motion.clip import Clip, ClipError
from readers.clips import motion_clip


def rot_err(a: np.ndarray, b: np.ndarray) -> float:
    """Max angle (rad) between the rotations of two axis-angle arrays (..., 3)."""
    Ra, Rb = aa_to_matrix(a.reshape(-1, 3)), aa_to_matrix(b.reshape(-1, 3))
    cos = (np.einsum("nij,nij->n", Ra, Rb) - 1) / 2
    return float(np.arccos(np.clip(cos, -1, 1)).max())


def assert_same(a: Clip, b: Clip, rad: float, metres: float, betas: float = 1e-4):
    assert a.num_frames == b.num_frames and a.fps == b.fps
    assert rot_err(a.global_orient, b.global_orient) <= rad
    assert rot_err(a.hand_pose, b.hand_pose) <= rad
    assert np.abs(a.transl - b.transl).max() <= metres
    assert np.abs(a.betas[:, :2] - b.betas[:, :2]).max() <= betas


@pytest.fixture(scope="module")
def clip():
    return motion_clip(60)


def test_npz_round_trip_is_exact(clip, tmp_path):
    export_clip(clip, tmp_path / "a.npz")
    back, notes = import_clip(tmp_path / "a.npz")
    assert notes == ["our clip file"]
    for k in ("transl", "global_orient", "hand_pose", "betas"):
        assert np.array_equal(getattr(back, k), getattr(clip, k))
    assert back.fps == clip.fps and back.prompt == clip.prompt


@pytest.mark.parametrize("layout", ["per_hand", "one_root"])
def test_bvh_round_trip_is_exact(clip, tmp_path, layout):
    paths = export_clip(clip, tmp_path / "a.bvh", bvh_layout=layout)
    back, notes = import_clips(paths)
    assert all("read back exactly" in n for n in notes)
    assert_same(back, clip, rad=1e-6, metres=1e-7, betas=1e-4)
    # below angle pi the axis-angle values themselves come back
    ok = np.linalg.norm(clip.hand_pose.reshape(-1, 3), axis=-1) < 3.1
    assert np.abs(back.hand_pose.reshape(-1, 3)[ok] - clip.hand_pose.reshape(-1, 3)[ok]).max() < 1e-6


def test_fbx_round_trip_within_1e4_rad(clip, tmp_path):
    export_clip(clip, tmp_path / "a.fbx")
    back, notes = import_clip(tmp_path / "a.fbx")
    assert notes == ["our own FBX rig (left and right hand): read back directly"]
    assert_same(back, clip, rad=1e-4, metres=1e-6)
    assert Clip.load(tmp_path / "a.fbx").num_frames == 60  # Clip.load dispatches through engine.io


def test_clip_save_and_load_by_extension(clip, tmp_path):
    for ext in (".bvh", ".fbx", ".glb"):
        path = clip.save(tmp_path / f"c{ext}")
        assert path.is_file() and path.stat().st_size > 1000
    assert_same(Clip.load(tmp_path / "c.bvh"), clip, rad=1e-6, metres=1e-7)
    with pytest.raises(ClipError, match="cannot read .glb"):
        Clip.load(tmp_path / "c.glb")


def test_options_range_fps_hands(clip, tmp_path):
    opts = ExportOptions(frame_range=(10, 50), fps=15.0, hands=("right",))
    (path,) = export_clip(clip, tmp_path / "r.bvh", opts)
    back, notes = import_clip(path)
    assert back.num_frames == 20 and back.fps == 15.0  # 40 frames at 30 -> every other frame
    assert any("no left hand" in n for n in notes)
    assert rot_err(back.hand_pose[:, 1], clip.hand_pose[10:50:2, 1]) < 1e-6
    with pytest.raises(ClipError, match="frame range"):
        export_clip(clip, tmp_path / "x.fbx", ExportOptions(frame_range=(50, 10)))
    with pytest.raises(ClipError, match="both hands"):
        export_clip(clip, tmp_path / "x.npz", ExportOptions(hands=("left",)))
    with pytest.raises(ClipError, match="fps"):
        export_clip(clip, tmp_path / "x.fbx", ExportOptions(fps=0.0))


def test_euler_helpers_are_continuous_and_invertible():
    rng = np.random.default_rng(0)
    R = aa_to_matrix(rng.normal(size=(500, 3)) * 1.5)
    for order in ("XYZ", "ZXY", "ZYX", "YXZ", "XZY", "YZX"):
        assert np.abs(euler_to_matrix(matrix_to_euler(R, order), order) - R).max() < 1e-12
    t = np.linspace(0, 30, 900)
    spin = aa_to_matrix(np.stack([t, 0.3 * np.sin(t), 0.2 * t], -1))[:, None]
    e = continuous_euler(spin, "ZXY")
    assert np.abs(np.diff(e, axis=0)).max() < 1.0 and np.abs(euler_to_matrix(e, "ZXY") - spin).max() < 1e-12


def run_cli(*args):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run([sys.executable, "-m", "hand_studio.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_export_and_import(clip, tmp_path):
    src = clip.save(tmp_path / "in.npz")
    r = run_cli("export", str(src), str(tmp_path / "out.bvh"), "--range", "0:30", "--fps", "30")
    assert r.returncode == 0, r.stderr
    assert "out_left.bvh" in r.stdout and "out_right.bvh" in r.stdout
    r = run_cli("import", str(tmp_path / "out_left.bvh"), str(tmp_path / "out_right.bvh"), str(tmp_path / "back.npz"))
    assert r.returncode == 0, r.stderr
    assert "read back exactly" in r.stdout and "30 frames at 30 fps" in r.stdout
    assert_same(Clip.load(tmp_path / "back.npz"), clip.slice(0, 30), rad=1e-6, metres=1e-7)
    np.save(tmp_path / "kp.npy", clip.joints * 1000.0)
    r = run_cli("import", str(tmp_path / "kp.npy"), str(tmp_path / "kp.npz"))
    assert r.returncode == 0, r.stderr
    assert "millimetres" in r.stdout and "IK" in r.stdout
    r = run_cli("export", str(src), str(tmp_path / "x.fbx"), "--hands", "middle")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "hands must be" in r.stderr
    (tmp_path / "bad.bvh").write_text("HIERARCHY\nROOT a\n{")
    r = run_cli("import", str(tmp_path / "bad.bvh"), str(tmp_path / "o.npz"))
    assert r.returncode == 2 and "bad.bvh" in r.stderr and not (tmp_path / "o.npz").exists()
