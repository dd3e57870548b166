"""The embedded CC0 hand: its asset contract, the MANO rest skeleton, mirroring, shape and skinning quality."""
import numpy as np
import pytest
import torch

from engine.hands import load_hands
from engine.hands.anatomy import frames_for
from engine.hands.default_hand import DefaultHand, load_default_hand_asset
from engine.hands.skeleton import DISTAL_LENGTHS, FINGER_JOINTS, MANO_RIGHT_REST_JOINTS, TIP_PARENTS
from engine.resources import resource_path


@pytest.fixture(scope="module")
def hands():
    return load_hands("default")


def pose(hands, hand_pose, h=1, go=None, betas=None):
    B = hand_pose.shape[0]
    hp = torch.zeros(B, 2, 45)
    hp[:, h] = hand_pose
    g = torch.zeros(B, 2, 3) if go is None else go
    with torch.no_grad():
        verts, joints = hands(torch.zeros(2, 10) if betas is None else betas, g, hp, torch.zeros(B, 2, 3))
    return verts[h], joints[:, h]


def signed_volume(v: np.ndarray, f: np.ndarray) -> float:
    return float(np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6)


def test_asset_loads_without_pickle_and_has_the_contracted_arrays():
    a = load_default_hand_asset()
    V = a["vertices"].shape[0]
    assert 1000 < V < 5000 and a["faces"].shape[1] == 3
    assert np.allclose(a["weights"].sum(1), 1, atol=1e-5) and (a["weights"] >= 0).all()
    with np.load(resource_path("hands/default_hand.npz"), allow_pickle=False) as z:
        assert "source" in z.files and "CC0" in str(z["source"])
    assert resource_path("hands/LICENSE-default-hand.md").is_file()


def test_zero_pose_joints_match_mano_rest_within_2mm(hands):
    _, j = pose(hands, torch.zeros(1, 45))
    err = np.linalg.norm(j[0, :16].numpy() - MANO_RIGHT_REST_JOINTS, axis=-1)
    assert err.max() < 2e-3
    distal = np.linalg.norm(j[0, 16:].numpy() - j[0, list(TIP_PARENTS)].numpy(), axis=-1)
    assert np.allclose(distal, DISTAL_LENGTHS, atol=2e-3)


@pytest.mark.parametrize("side", ["left", "right"])
def test_mesh_is_closed_and_outward(hands, side):
    m = hands.hand(side)
    f = m.faces
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all(), "every edge is shared by exactly two triangles (wrist capped)"
    assert signed_volume(m.v_template.numpy(), f) > 1e-4  # > 100 cm^3, outward winding


def test_left_is_the_mirror_of_right(hands):
    g = torch.Generator().manual_seed(0)
    hp_r = 0.3 * torch.randn(3, 45, generator=g)
    go_r = torch.randn(3, 3, generator=g)
    mirror = torch.tensor([1.0, -1.0, -1.0])
    hp = torch.stack([(hp_r.reshape(3, 15, 3) * mirror).reshape(3, 45), hp_r], 1)
    go = torch.stack([go_r * mirror, go_r], 1)
    with torch.no_grad():
        verts, joints = hands(torch.zeros(2, 10), go, hp, torch.zeros(3, 2, 3))
    flip = torch.tensor([-1.0, 1.0, 1.0])
    assert torch.allclose(joints[:, 0] * flip, joints[:, 1], atol=1e-6)
    assert torch.allclose(verts[0] * flip, verts[1], atol=1e-6)


def test_betas_change_size_and_finger_length(hands):
    base = pose(hands, torch.zeros(1, 45))[1][0]
    betas = torch.zeros(2, 10)
    betas[1, 0] = 2.0  # +10 % size
    big = pose(hands, torch.zeros(1, 45), betas=betas)[1][0]
    wrist = base[0]
    assert torch.allclose(big - wrist, 1.1 * (base - wrist), atol=1e-6)
    betas = torch.zeros(2, 10)
    betas[1, 1] = 2.0  # +10 % finger length
    long = pose(hands, torch.zeros(1, 45), betas=betas)[1][0]
    for j1, j2, j3, tip in FINGER_JOINTS.values():
        assert torch.allclose(long[j1], base[j1], atol=1e-6)  # knuckles stay
        assert torch.isclose((long[j3] - long[j1]).norm(), 1.1 * (base[j3] - base[j1]).norm(), rtol=1e-3)


def test_flexing_each_finger_joint_90_degrees_keeps_the_finger(hands):
    """No collapse or candy wrapper: volume barely changes, the tip goes toward the palm."""
    m = hands.right
    frames = frames_for(m)
    v0, j0 = pose(hands, torch.zeros(1, 45))
    vol0 = signed_volume(v0[0].numpy(), m.faces)
    palm_normal = torch.tensor([0.0, -1.0, 0.0])
    for finger, (j1, j2, j3, tip) in FINGER_JOINTS.items():
        for j in (j1, j2, j3):
            angle = 45.0 if (finger == "thumb" and j == j1) else 90.0
            hp = torch.zeros(1, 15, 3)
            hp[0, j - 1] = frames[j - 1][:, 2] * np.radians(angle)
            v, jt = pose(hands, hp.reshape(1, 45))
            vol = signed_volume(v[0].numpy(), m.faces)
            assert abs(vol / vol0 - 1) < 0.05, (finger, j, vol / vol0)
            moved = (jt[0, tip] - j0[0, tip]) @ palm_normal
            assert moved > 0.005, (finger, j, float(moved))  # curls toward the palm side


def test_keypoints_fast_path_matches_full_skinning(hands):
    g = torch.Generator().manual_seed(4)
    go, hp, tr = torch.randn(6, 2, 3, generator=g), 0.4 * torch.randn(6, 2, 45, generator=g), torch.randn(6, 2, 3, generator=g)
    betas = torch.randn(2, 10, generator=g)
    with torch.no_grad():
        _, full = hands(betas, go, hp, tr)
        fast = hands.joints(betas, go, hp, tr)
    assert torch.allclose(full, fast, atol=1e-6)


def test_bad_asset_and_bad_shapes_are_refused(tmp_path, hands):
    bad = tmp_path / "hand.npz"
    np.savez(bad, vertices=np.zeros((10, 3)), faces=np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError, match="missing arrays"):
        load_default_hand_asset(bad)
    with pytest.raises(FileNotFoundError, match="build_default_hand.py"):
        load_default_hand_asset(tmp_path / "none.npz")
    with pytest.raises(ValueError, match=r"hand_pose must have shape \(B, 45\)"):
        hands.right(torch.zeros(2, 10), torch.zeros(2, 3), torch.zeros(2, 44), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="side must be"):
        DefaultHand("middle")
