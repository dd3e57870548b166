"""Exported files checked by real readers: Blender 3.4 (FBX, BVH, glTF), ufbx (FBX, strict) and
bvhio (BVH). Each compares WORLD joint positions at several frames with our own FK (<= 1 mm),
plus fps, frame count and bone names. One Blender process validates every file of this module."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.export import ExportOptions, export_clip
from engine.export.rig import bone_names, prepare, reference_positions
from readers.clips import motion_clip

READERS = Path(__file__).parent / "readers"
TOL_M = 1e-3  # 1 mm
FRAMES = [0, 1, 17, 42, 59]
ALL_BONES = bone_names(0) + bone_names(1)


def to_ours_from_blender(p) -> np.ndarray:
    """Blender is Z up; its importers map our (x, y, z) to (x, -z, y)."""
    p = np.asarray(p, np.float64)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], -1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    clip = motion_clip(60)
    resampled = ExportOptions(frame_range=(10, 50), fps=24.0)
    f = {
        "clip": clip,
        "fbx": export_clip(clip, out / "hands.fbx")[0],
        "glb": export_clip(clip, out / "hands.glb")[0],
        "bvh": export_clip(clip, out / "hands.bvh"),  # per hand
        "bvh_one": export_clip(clip, out / "both.bvh", bvh_layout="one_root")[0],
        "fbx24": export_clip(clip, out / "hands24.fbx", resampled)[0],
        "clip24": prepare(clip, resampled),
    }
    assert [p.name for p in f["bvh"]] == ["hands_left.bvh", "hands_right.bvh"]
    return f


@pytest.fixture(scope="module")
def blender(files, tmp_path_factory):
    exe = shutil.which("blender")
    if exe is None:
        if os.environ.get("HAND_STUDIO_NO_BLENDER") == "1":
            pytest.skip("Blender not installed (HAND_STUDIO_NO_BLENDER=1)")
        pytest.fail("Blender is not installed: run packaging/setup.sh test (Debian package 'blender')")
    work = tmp_path_factory.mktemp("blender")
    entries = [
        {"key": "fbx", "path": str(files["fbx"]), "format": "fbx", "frames": FRAMES, "fps": 30.0},
        {"key": "glb", "path": str(files["glb"]), "format": "glb", "frames": FRAMES, "fps": 30.0},
        {"key": "bvh_left", "path": str(files["bvh"][0]), "format": "bvh", "frames": [f + 1 for f in FRAMES], "fps": 30.0},
        {"key": "bvh_right", "path": str(files["bvh"][1]), "format": "bvh", "frames": [f + 1 for f in FRAMES], "fps": 30.0},
        {"key": "bvh_one", "path": str(files["bvh_one"]), "format": "bvh", "frames": [f + 1 for f in FRAMES], "fps": 30.0},
        {"key": "fbx24", "path": str(files["fbx24"]), "format": "fbx", "frames": [0, 7, 31], "fps": 24.0},
    ]
    (work / "manifest.json").write_text(json.dumps(entries))
    env = {**os.environ, "HOME": str(work), "TMPDIR": str(work)}
    r = subprocess.run([exe, "-b", "-noaudio", "--factory-startup", "--python-exit-code", "1",
                        "--python", str(READERS / "blender_read.py"), "--", str(work / "manifest.json"),
                        str(work / "out.json")], capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = json.loads((work / "out.json").read_text())
    return {e["key"]: res for e, res in zip(entries, results)}


def _max_err(reader_frames: dict, ref: dict, frame_of, get) -> tuple[float, int]:
    err, n = 0.0, 0
    for f, data in reader_frames.items():
        k = frame_of(int(f))
        for name, value in get(data).items():
            if name in ref:
                err = max(err, float(np.abs(value - ref[name][k]).max()))
                n += 1
    return err, n


def _blender_heads(data) -> dict:
    return {name: to_ours_from_blender(b["head"]) for name, b in data["bones"].items()}


def _blender_bvh_points(data) -> dict:
    """BVH in Blender: joints are bone heads; fingertips (End Sites) are the distal bones' tails."""
    out = _blender_heads(data)
    for name, b in data["bones"].items():
        if name[2:] in ("index3", "middle3", "ring3", "pinky3", "thumb3"):
            out[name[:2] + name[2:-1] + "_tip"] = to_ours_from_blender(b["tail"])
    return out


@pytest.mark.parametrize("key", ["fbx", "glb"])
def test_blender_imports_skinned_meshes_with_exact_joints(blender, files, key, record_property):
    res = blender[key]
    assert res["ok"], res.get("trace")
    clip = files["clip"]
    ref = reference_positions(clip)
    err, n = _max_err(res["frames"], ref, lambda f: f, _blender_heads)
    record_property(f"blender_{key}_max_joint_error_mm", err * 1000)
    print(f"Blender {key}: max joint error {err * 1000:.5f} mm over {n} joint-frames")
    assert n == len(FRAMES) * 42 and err <= TOL_M
    assert res["fps"] == pytest.approx(30.0, abs=1e-9)
    (action_range,) = res["actions"].values() if key == "glb" else [res["actions"][res["armatures"]["Armature"]["action"]]]
    assert action_range[1] - action_range[0] + 1 == clip.num_frames
    bones = sorted(b for a in res["armatures"].values() for b in a["bones"])
    assert bones == sorted(ALL_BONES)
    # the skinned meshes follow our linear blend skinning
    from engine.hands import default_hands_cpu
    with torch.no_grad():
        verts, _ = default_hands_cpu()(torch.from_numpy(clip.betas), torch.from_numpy(clip.global_orient),
                                       torch.from_numpy(clip.hand_pose), torch.from_numpy(clip.transl))
    assert sorted(res["meshes"]) == ["L_hand_mesh", "R_hand_mesh"]
    for f, data in res["frames"].items():
        for mesh, co in data["skinned"].items():
            h = 0 if mesh.startswith("L_") else 1
            assert np.abs(to_ours_from_blender(co) - verts[h][int(f)].numpy()).max() <= TOL_M


@pytest.mark.parametrize("key", ["bvh_left", "bvh_right", "bvh_one"])
def test_blender_imports_bvh_with_exact_joints(blender, files, key, record_property):
    res = blender[key]
    assert res["ok"], res.get("trace")
    clip = files["clip"]
    ref = reference_positions(clip)
    err, n = _max_err(res["frames"], ref, lambda f: f - 1, _blender_bvh_points)  # BVH frames start at 1
    record_property(f"blender_{key}_max_joint_error_mm", err * 1000)
    print(f"Blender {key}: max joint error {err * 1000:.5f} mm over {n} joint-frames")
    hands = 2 if key == "bvh_one" else 1
    assert n == len(FRAMES) * 21 * hands and err <= TOL_M
    assert res["fps"] == pytest.approx(30.0, abs=1e-6)
    (rng,) = res["actions"].values()
    assert rng[1] - rng[0] + 1 == clip.num_frames
    (arm,) = res["armatures"].values()
    want = {"bvh_left": bone_names(0)[:16], "bvh_right": bone_names(1)[:16],
            "bvh_one": ["hands"] + bone_names(0)[:16] + bone_names(1)[:16]}[key]
    assert sorted(arm["bones"]) == sorted(want)


def test_blender_fbx_resampled_range(blender, files):
    res = blender["fbx24"]
    assert res["ok"], res.get("trace")
    clip = files["clip24"]
    assert clip.num_frames == 32 and clip.fps == 24.0  # frames 10..49 at 30 fps -> 24 fps
    err, n = _max_err(res["frames"], reference_positions(clip), lambda f: f, _blender_heads)
    assert n == 3 * 42 and err <= TOL_M
    assert res["fps"] == pytest.approx(24.0, abs=1e-9)
    (rng,) = res["actions"].values()
    assert rng[1] - rng[0] + 1 == 32


def _ufbx(path: Path, frames: list[int], tmp_path: Path) -> dict:
    out = tmp_path / f"{path.stem}_ufbx.json"
    r = subprocess.run([sys.executable, str(READERS / "ufbx_read.py"), str(path), str(out), *map(str, frames)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("key,clip_key,frames", [("fbx", "clip", FRAMES), ("fbx24", "clip24", [0, 7, 31])])
def test_ufbx_strict_loads_and_evaluates(files, tmp_path, key, clip_key, frames, record_property):
    res = _ufbx(files[key], frames, tmp_path)
    clip = files[clip_key]
    assert res["axes"] == ["0", "2", "4"]  # +X right, +Y up, +Z front
    assert res["unit_meters"] == pytest.approx(0.01)  # centimetres
    assert res["fps"] == clip.fps
    assert res["stacks"] == ["Take 001"]
    assert res["time_end"] - res["time_begin"] == pytest.approx((clip.num_frames - 1) / clip.fps, abs=1e-9)
    bones = [n for n in res["nodes"] if n["bone"]]
    assert sorted(n["name"] for n in bones) == sorted(ALL_BONES)
    parents = {n["name"]: n["parent"] for n in res["nodes"]}
    assert parents["R_index2"] == "R_index1" and parents["R_index_tip"] == "R_index3" and parents["L_wrist"] is None
    assert sorted(n["name"] for n in res["nodes"] if n["mesh"]) == ["L_hand_mesh", "R_hand_mesh"]
    assert res["skin_clusters"] == 32 and res["poses"] == [{"bind": True, "bones": 44}]
    ref = reference_positions(clip)
    err, n = _max_err(res["frames"], ref, lambda f: f,
                      lambda d: {k: np.asarray(v) / 100.0 for k, v in d["positions"].items()})
    record_property(f"ufbx_{key}_max_joint_error_mm", err * 1000)
    print(f"ufbx {key}: max joint error {err * 1000:.5f} mm over {n} joint-frames")
    assert n == len(frames) * 42 and err <= TOL_M
    from engine.hands import default_hands_cpu
    with torch.no_grad():
        verts, _ = default_hands_cpu()(torch.from_numpy(clip.betas), torch.from_numpy(clip.global_orient),
                                       torch.from_numpy(clip.hand_pose), torch.from_numpy(clip.transl))
    for f, data in res["frames"].items():
        for mesh, co in data["skinned"].items():
            h = 0 if mesh.startswith("L_") else 1
            assert np.abs(np.asarray(co) / 100 - verts[h][int(f)].numpy()).max() <= TOL_M


def _bvhio_points(path: Path, frames: list[int]) -> tuple[dict, object]:
    """World joint and End Site positions (metres) from bvhio's own FK."""
    import bvhio
    import glm
    container = bvhio.readAsBvh(str(path))
    ends = {}

    def walk(j):
        if j.Children == [] or not j.Children:
            ends[j.Name] = (j.EndSite, j.getRotation())
        for c in j.Children:
            walk(c)
    walk(container.Root)
    root = bvhio.readAsHierarchy(str(path))
    out = {}
    for f in frames:
        root.loadPose(f)
        pts = {}
        for joint, _, _ in root.layout():
            pts[joint.Name] = np.array(joint.PositionWorld) / 100.0
            if joint.Name in ends:  # bvhio re-orients bones: undo its rest rotation for the End Site
                site, rest_rot = ends[joint.Name]
                tip = joint.Name[:-1] + "_tip"
                pts[tip] = np.array(joint.PositionWorld + joint.RotationWorld * (glm.inverse(rest_rot) * site)) / 100.0
        out[str(f)] = pts
    return out, container


@pytest.mark.parametrize("which", ["left", "right", "one_root"])
def test_bvhio_reads_world_positions(files, which, record_property):
    path = {"left": files["bvh"][0], "right": files["bvh"][1], "one_root": files["bvh_one"]}[which]
    frames, container = _bvhio_points(path, FRAMES)
    clip = files["clip"]
    assert container.FrameCount == clip.num_frames
    assert round(1.0 / container.FrameTime, 6) == clip.fps  # Frame Time has 10 decimals
    err, n = _max_err(frames, reference_positions(clip), lambda f: f, lambda d: d)
    record_property(f"bvhio_{which}_max_joint_error_mm", err * 1000)
    print(f"bvhio {which}: max joint error {err * 1000:.5f} mm over {n} joint-frames")
    assert n == len(FRAMES) * 21 * (2 if which == "one_root" else 1) and err <= TOL_M


def test_bvh_text_conventions(files):
    text = files["bvh"][1].read_text()
    assert text.startswith("HIERARCHY\nROOT R_wrist\n") and text.count("ROOT") == 1
    assert "Frame Time: 0.0333333333\n" in text  # >= 8 decimals: 30 fps reads back as 30
    assert text.count("End Site") == 5
    for path in files["bvh"]:
        text = path.read_text()
        motion = np.array([l.split() for l in text.split("Frame Time:")[1].splitlines()[1:]], float)
        rot = motion[:, 3:]
        assert np.abs(np.diff(rot, axis=0)).max() < 60  # continuous Euler angles: no 360 degree flips
    assert np.abs(rot).max() < 180 < np.abs(np.array([l.split() for l in files["bvh"][0].read_text().split(
        "Frame Time:")[1].splitlines()[1:]], float)[:, 3:6]).max()  # the left wrist spins past 180, unwrapped


def test_glb_structure_with_pygltflib(files):
    import pygltflib
    g = pygltflib.GLTF2().load_binary(str(files["glb"]))
    assert sorted(n.name for n in g.nodes if n.mesh is None) == sorted(ALL_BONES)
    assert len(g.skins) == 2 and all(len(s.joints) == 21 for s in g.skins)
    (anim,) = g.animations
    assert len(anim.channels) == 2 * 17
    times = g.accessors[anim.samplers[0].input]
    assert times.count == 60 and times.max[0] == pytest.approx(59 / 30)
