"""Forward kinematics and skinning against a plain 4x4 reference, and their invariants."""
import numpy as np
import torch

from engine.hands.lbs import forward_kinematics, rigid_transforms, skin, tree_levels
from engine.hands.skeleton import MANO_RIGHT_REST_JOINTS, PARENTS
from engine.motion.rotations import axis_angle_to_matrix

REST = torch.tensor(MANO_RIGHT_REST_JOINTS, dtype=torch.float64)


def reference_fk(aa: np.ndarray, rest: np.ndarray, transl: np.ndarray) -> np.ndarray:
    """One frame, textbook homogeneous chain: G_j = G_parent [R_j | J_j - J_parent]."""
    R = axis_angle_to_matrix(torch.from_numpy(aa)).numpy()
    G = []
    for j, p in enumerate(PARENTS):
        local = np.eye(4)
        local[:3, :3] = R[j]
        local[:3, 3] = rest[j] - (rest[p] if p >= 0 else 0)
        G.append(local if p < 0 else G[p] @ local)
    return np.stack([g[:3, 3] for g in G]) + transl


def test_fk_matches_reference():
    g = torch.Generator().manual_seed(1)
    go, hp, tr = (torch.randn(5, 3, generator=g, dtype=torch.float64),
                  0.5 * torch.randn(5, 45, generator=g, dtype=torch.float64),
                  torch.randn(5, 3, generator=g, dtype=torch.float64))
    joints, _ = forward_kinematics(go, hp, tr, REST, PARENTS)
    for b in range(5):
        aa = torch.cat([go[b][None], hp[b].reshape(15, 3)]).numpy()
        ref = reference_fk(aa, REST.numpy(), tr[b].numpy())
        assert np.allclose(joints[b].numpy(), ref, atol=1e-12)


def test_zero_pose_is_rest_plus_translation():
    tr = torch.tensor([[0.1, -0.2, 0.3]], dtype=torch.float64)
    joints, A = forward_kinematics(torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 45, dtype=torch.float64),
                                   tr, REST, PARENTS)
    assert torch.allclose(joints[0], REST + tr, atol=1e-12)
    assert torch.allclose(A[0, :, :3, :3], torch.eye(3, dtype=torch.float64).expand(16, 3, 3))


def test_global_orient_rotates_about_the_wrist():
    go = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)
    joints, _ = forward_kinematics(go, torch.zeros(1, 45, dtype=torch.float64), torch.zeros(1, 3, dtype=torch.float64),
                                   REST, PARENTS)
    assert torch.allclose(joints[0, 0], REST[0])  # wrist stays
    R = axis_angle_to_matrix(go[0])
    assert torch.allclose(joints[0], (REST - REST[0]) @ R.T + REST[0], atol=1e-12)


def test_skinning_transforms_move_rest_joints_to_posed_joints():
    g = torch.Generator().manual_seed(2)
    R = axis_angle_to_matrix(0.4 * torch.randn(3, 16, 3, generator=g, dtype=torch.float64))
    posed, A = rigid_transforms(R, REST, PARENTS)
    homog = torch.cat([REST, torch.ones(16, 1, dtype=torch.float64)], -1)
    assert torch.allclose((A @ homog[None, :, :, None])[..., :3, 0], posed, atol=1e-12)


def test_skin_with_one_bone_is_rigid_and_weights_blend_linearly():
    g = torch.Generator().manual_seed(3)
    verts = torch.randn(50, 3, generator=g, dtype=torch.float64) * 0.05
    go, hp, tr = (torch.randn(2, 3, generator=g, dtype=torch.float64), 0.3 * torch.randn(2, 45, generator=g, dtype=torch.float64),
                  torch.randn(2, 3, generator=g, dtype=torch.float64))
    _, A = forward_kinematics(go, hp, tr, REST, PARENTS)
    w_a = torch.zeros(50, 16, dtype=torch.float64)
    w_a[:, 5] = 1
    out = skin(verts, w_a, A)
    expected = verts @ A[:, 5, :3, :3].transpose(-1, -2) + A[:, 5, None, :3, 3]
    assert torch.allclose(out, expected, atol=1e-12)
    w_b = torch.zeros(50, 16, dtype=torch.float64)
    w_b[:, 9] = 1
    mix = skin(verts, 0.3 * w_a + 0.7 * w_b, A)
    assert torch.allclose(mix, 0.3 * out + 0.7 * skin(verts, w_b, A), atol=1e-12)


def test_tree_levels_and_gradients():
    assert tree_levels(tuple(PARENTS)) == ((0,), (1, 4, 7, 10, 13), (2, 5, 8, 11, 14), (3, 6, 9, 12, 15))
    hp = torch.zeros(1, 45, requires_grad=True)
    joints, _ = forward_kinematics(torch.zeros(1, 3), hp, torch.zeros(1, 3), REST.float(), PARENTS)
    joints[0, 3].sum().backward()
    assert hp.grad[0, :3].abs().sum() > 0  # index1 moves index3
    assert hp.grad[0, 12:].abs().sum() == 0  # nothing else does
