"""Round trips and properties of the rotation conversions (hypothesis)."""
import math

import numpy as np
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from engine.motion import rotations as rot

finite = st.floats(-1.0, 1.0, allow_nan=False, width=32)
axis_angles = arrays(np.float32, (8, 3), elements=st.floats(-3.0, 3.0, allow_nan=False, width=32))


def _aa_small_angle(a: np.ndarray) -> torch.Tensor:
    """Axis-angles with angle < pi - 0.05 (the axis-angle range where the inverse is unique)."""
    t = torch.from_numpy(a).double()
    n = t.norm(dim=-1, keepdim=True)
    return torch.where(n > math.pi - 0.05, t / n * (math.pi - 0.05), t)


@settings(max_examples=60, deadline=None)
@given(axis_angles)
def test_axis_angle_matrix_round_trip(a):
    aa = _aa_small_angle(a)
    back = rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(aa))
    assert torch.allclose(back, aa, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(axis_angles)
def test_matrix_is_rotation(a):
    R = rot.axis_angle_to_matrix(torch.from_numpy(a).double())
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    assert torch.allclose(R @ R.transpose(-1, -2), eye, atol=1e-9)
    assert torch.allclose(torch.det(R), torch.ones(8, dtype=R.dtype), atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(axis_angles)
def test_quaternion_round_trips(a):
    aa = _aa_small_angle(a)
    q = rot.axis_angle_to_quaternion(aa)
    assert torch.allclose(q.norm(dim=-1), torch.ones(8, dtype=q.dtype), atol=1e-9)
    assert torch.allclose(rot.quaternion_to_axis_angle(q), aa, atol=1e-6)
    R = rot.axis_angle_to_matrix(aa)
    assert torch.allclose(rot.quaternion_to_matrix(q), R, atol=1e-9)
    q2 = rot.matrix_to_quaternion(R)
    assert torch.allclose(q2, q * torch.sign(q[..., :1]), atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(axis_angles)
def test_rot6d_round_trip(a):
    R = rot.axis_angle_to_matrix(torch.from_numpy(a).double())
    assert torch.allclose(rot.rot6d_to_matrix(rot.matrix_to_rot6d(R)), R, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(arrays(np.float32, (5, 6), elements=finite))
def test_rot6d_of_any_input_is_a_rotation(d6):
    t = torch.from_numpy(d6).double()
    a, b = t[:, :3], t[:, 3:]
    ok = (a.norm(dim=-1) > 1e-2) & (torch.cross(a, b, dim=-1).norm(dim=-1) > 1e-2)
    R = rot.rot6d_to_matrix(t[ok])
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=R.dtype).expand_as(R), atol=1e-9)
    assert torch.allclose(torch.det(R), torch.ones(len(R), dtype=R.dtype), atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(axis_angles, axis_angles)
def test_quaternion_product_composes_rotations(a, b):
    qa = rot.axis_angle_to_quaternion(torch.from_numpy(a).double())
    qb = rot.axis_angle_to_quaternion(torch.from_numpy(b).double())
    assert torch.allclose(rot.quaternion_to_matrix(rot.quaternion_multiply(qa, qb)),
                          rot.quaternion_to_matrix(qa) @ rot.quaternion_to_matrix(qb), atol=1e-9)


def test_known_values_and_batch_shapes():
    R = rot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    assert torch.allclose(R @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6)
    x = torch.randn(2, 3, 4, 3)
    assert rot.axis_angle_to_matrix(x).shape == (2, 3, 4, 3, 3)
    assert rot.axis_angle_to_rot6d(x).shape == (2, 3, 4, 6)
    assert rot.axis_angle_to_quaternion(x).shape == (2, 3, 4, 4)
    assert rot.rot6d_to_axis_angle(rot.axis_angle_to_rot6d(x)).shape == (2, 3, 4, 3)


def test_near_pi_and_zero_are_handled():
    aa = torch.tensor([[math.pi - 1e-4, 0, 0], [0, 0, 0], [1e-7, 0, 0], [0, 3.14159, 0]], dtype=torch.float64)
    R = rot.axis_angle_to_matrix(aa)
    back = rot.axis_angle_to_matrix(rot.matrix_to_axis_angle(R))
    assert torch.allclose(back, R, atol=1e-6)


def test_gradients_are_finite_at_zero():
    aa = torch.zeros(4, 3, requires_grad=True)
    rot.axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()


def test_mirror_axis_angle_mirrors_the_rotation():
    aa = torch.randn(10, 3, dtype=torch.float64)
    M = torch.diag(torch.tensor([-1.0, 1, 1], dtype=torch.float64))
    expected = M @ rot.axis_angle_to_matrix(aa) @ M
    assert torch.allclose(rot.axis_angle_to_matrix(rot.mirror_axis_angle(aa)), expected, atol=1e-9)


def test_geodesic_angle():
    aa = torch.tensor([[0.3, 0.0, 0.0]], dtype=torch.float64)
    R = rot.axis_angle_to_matrix(aa)
    assert torch.allclose(rot.geodesic_angle(torch.eye(3, dtype=R.dtype)[None], R), torch.tensor([0.3], dtype=R.dtype))
