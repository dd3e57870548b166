"""Importers: MANO parameter layouts, keypoints (orders, units, npy/npz/json), BVH skeletons from
other tools (Mixamo / Unreal / R_Index1 naming) retargeted through world positions + IK."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from engine.data.importers import import_clip
from engine.data.importers.skeleton import classify_bone
from engine.export import ExportOptions, export_clip
from engine.hands.skeleton import OPENPOSE_FROM_OURS
from engine.io import FileFormatError
from readers.clips import motion_clip
from test_export_roundtrip import assert_same, rot_err


@pytest.fixture(scope="module")
def clip():
    return motion_clip(30)


def _per_hand(clip, h):
    return clip.global_orient[:, h], clip.hand_pose[:, h], clip.transl[:, h], clip.betas[h]


def test_mano_stacked_layout(clip, tmp_path):
    np.savez(tmp_path / "m.npz", global_orient=clip.global_orient, hand_pose=clip.hand_pose,
             transl=clip.transl, betas=clip.betas, fps=np.array(30.0))
    back, notes = import_clip(tmp_path / "m.npz", format="mano")
    assert_same(back, clip, rad=1e-6, metres=1e-7)


def test_mano_per_hand_pose48_and_arctic_and_json(clip, tmp_path):
    d = {}
    for h, side in enumerate(("left", "right")):
        g, p, t, b = _per_hand(clip, h)
        d[f"{side}_pose"], d[f"{side}_trans"], d[f"{side}_betas"] = np.concatenate([g, p], 1), t, b
    np.savez(tmp_path / "p48.npz", **d)
    back, _ = import_clip(tmp_path / "p48.npz")
    assert_same(back, clip, rad=1e-6, metres=1e-7)
    arctic = {"rot_r": clip.global_orient[:, 1], "pose_r": clip.hand_pose[:, 1], "trans_r": clip.transl[:, 1],
              "shape_r": clip.betas[1], "rot_l": clip.global_orient[:, 0], "pose_l": clip.hand_pose[:, 0],
              "trans_l": clip.transl[:, 0], "shape_l": clip.betas[0]}
    np.savez(tmp_path / "arctic.npz", **arctic)
    back, _ = import_clip(tmp_path / "arctic.npz")
    assert_same(back, clip, rad=1e-6, metres=1e-7)
    js = {"fps": 30, "left": {"global_orient": clip.global_orient[:, 0].tolist(), "hand_pose": clip.hand_pose[:, 0].tolist(),
                              "transl": clip.transl[:, 0].tolist(), "betas": clip.betas[0].tolist()},
          "right": {"global_orient": clip.global_orient[:, 1].tolist(), "hand_pose": clip.hand_pose[:, 1].tolist(),
                    "transl": clip.transl[:, 1].tolist(), "betas": clip.betas[1].tolist()}}
    (tmp_path / "m.json").write_text(json.dumps(js))
    back, _ = import_clip(tmp_path / "m.json")
    assert_same(back, clip, rad=1e-6, metres=1e-7)


def test_mano_pca_with_basis_and_single_hand(clip, tmp_path):
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    comps = basis.T  # rows are components
    mean = rng.normal(size=45) * 0.1
    coeffs = (clip.hand_pose[:, 1] - mean) @ comps.T  # all 45 coefficients reproduce the pose
    np.savez(tmp_path / "pca.npz", hand_pose=coeffs[:, :12], global_orient=clip.global_orient[:, 1],
             transl=clip.transl[:, 1], hands_components=comps, hands_mean=mean, side=np.array("right"))
    back, notes = import_clip(tmp_path / "pca.npz")
    want = coeffs[:, :12] @ comps[:12] + mean
    assert np.abs(back.hand_pose[:, 1] - want).max() < 1e-5
    assert any("no left hand" in n for n in notes)
    np.savez(tmp_path / "pca_nobasis.npz", hand_pose=coeffs[:, :12], global_orient=clip.global_orient[:, 1],
             side=np.array("right"))
    with pytest.raises(FileFormatError, match="hands_components"):
        import_clip(tmp_path / "pca_nobasis.npz")
    np.savez(tmp_path / "noside.npz", hand_pose=clip.hand_pose[:, 1], global_orient=clip.global_orient[:, 1])
    with pytest.raises(FileFormatError, match="side"):
        import_clip(tmp_path / "noside.npz")
    back, _ = import_clip(tmp_path / "noside.npz", hands="right")
    assert rot_err(back.hand_pose[:, 1], clip.hand_pose[:, 1]) < 1e-6


@pytest.mark.parametrize("order,scale,ext", [("ours", 1.0, "npy"), ("openpose", 1000.0, "npz"), ("mediapipe", 100.0, "json")])
def test_keypoints_orders_and_units_are_detected_and_fitted(clip, tmp_path, order, scale, ext):
    kp = clip.joints.astype(np.float64)
    if order != "ours":
        kp = kp[:, :, list(OPENPOSE_FROM_OURS)]
    kp = kp * scale
    path = tmp_path / f"kp.{ext}"
    if ext == "npy":
        np.save(path, kp)
    elif ext == "npz":
        np.savez(path, keypoints=kp, fps=np.array(30.0))
    else:
        path.write_text(json.dumps({"keypoints": kp.tolist(), "fps": 30}))
    back, notes = import_clip(path)
    unit = {1.0: "metres", 1000.0: "millimetres", 100.0: "centimetres"}[scale]
    assert any(unit in n for n in notes), notes
    assert any(("OpenPose" in n) == (order != "ours") for n in notes if "order" in n)
    err = np.linalg.norm(back.joints - clip.joints, axis=-1)
    assert err.mean() < 1e-3 and err.max() < 5e-3  # IK fit of noise-free keypoints
    back2, notes2 = import_clip(path, order=order, units={1.0: "m", 1000.0: "mm", 100.0: "cm"}[scale])
    assert any("(given)" in n for n in notes2)


MIXAMO = {"wrist": "Hand", "index": "HandIndex", "middle": "HandMiddle", "ring": "HandRing", "pinky": "HandPinky",
          "thumb": "HandThumb"}


def _rename(text: str, style: str) -> str:
    def mixamo(m):
        side = "Left" if m.group(1) == "L" else "Right"
        part, seg = m.group(2), m.group(3)
        return f"mixamorig:{side}{MIXAMO[part]}{seg}"

    def unreal(m):
        side = m.group(1).lower()
        part, seg = m.group(2), m.group(3)
        return f"hand_{side}" if part == "wrist" else f"{part}_0{seg}_{side}"

    def capital(m):
        return f"{m.group(1)}_{m.group(2).capitalize()}{m.group(3)}"
    fn = {"mixamo": mixamo, "unreal": unreal, "capital": capital}[style]
    return re.sub(r"\b([LR])_(wrist|index|middle|ring|pinky|thumb)(\d?)\b", fn, text)


@pytest.mark.parametrize("style", ["mixamo", "unreal", "capital"])
def test_foreign_bvh_is_retargeted_by_names(clip, tmp_path, style):
    (path,) = export_clip(clip, tmp_path / "a.bvh", bvh_layout="one_root")
    text = _rename(path.read_text(), style)
    foreign = tmp_path / f"{style}.bvh"
    foreign.write_text(text)
    back, notes = import_clip(foreign)
    assert any("another tool" in n for n in notes) and any("centimetres" in n for n in notes)
    err = np.linalg.norm(back.joints - clip.joints, axis=-1)
    assert err.mean() < 1.5e-3 and err.max() < 6e-3
    assert back.num_frames == clip.num_frames and back.fps == clip.fps


def test_foreign_bvh_missing_joints_is_an_error(clip, tmp_path):
    (path,) = export_clip(clip, tmp_path / "a.bvh", ExportOptions(hands=("right",)))
    text = _rename(path.read_text(), "mixamo").replace("RightHandPinky2", "RightHandPinkyX")
    (tmp_path / "m.bvh").write_text(text)
    with pytest.raises(FileFormatError, match=r"m\.bvh.*right hand lacks joints \['pinky2'\]"):
        import_clip(tmp_path / "m.bvh")


@pytest.mark.parametrize("name,want", [
    ("mixamorig:RightHandIndex1", (1, "index", 1)), ("LeftHand", (0, "wrist", 0)),
    ("RightHandThumb4", (1, "thumb", 4)), ("hand_r", (1, "wrist", 0)), ("index_01_l", (0, "index", 1)),
    ("pinky_03_r", (1, "pinky", 3)), ("R_Index1", (1, "index", 1)), ("L_Wrist", (0, "wrist", 0)),
    ("R_index_tip", (1, "index", 99)), ("f_ring.02.L", (0, "ring", 2)), ("rMid2", (1, "middle", 2)),
    ("Spine", None), ("index_metacarpal_r", None), ("ring1", None),
])
def test_bone_names_are_classified(name, want):
    assert classify_bone(name) == want
