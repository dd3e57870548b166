"""Rotation conversions: axis-angle <-> matrix <-> 6D <-> quaternion.

Pure, batched torch functions. Every function accepts any leading batch shape ``(...)``.
Quaternions are ``(w, x, y, z)`` with ``w >= 0`` on output. The 6D representation is the
first two *columns* of the rotation matrix, concatenated ``(c0, c1)`` (Zhou et al. 2019).
"""
from __future__ import annotations

import torch

_EPS = 1e-8


def _skew(v: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 3, 3) cross-product matrix."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues. aa (..., 3) -> R (..., 3, 3). Smooth (and differentiable) at zero angle."""
    theta2 = (aa * aa).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    theta = torch.sqrt(theta2 + _EPS * _EPS)
    small = theta2 < 1e-8
    # sin(t)/t and (1-cos t)/t^2 with Taylor fall-backs near zero
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta * theta))
    K = _skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + a * K + b * (K @ K)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """R (..., 3, 3) -> q (..., 4) wxyz, w >= 0. Numerically stable branch selection."""
    m = R
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # four candidate |components| * 4, pick the largest for stability
    t = torch.stack([
        1 + m00 + m11 + m22,
        1 + m00 - m11 - m22,
        1 - m00 + m11 - m22,
        1 - m00 - m11 + m22,
    ], dim=-1).clamp_min(0)
    r = torch.sqrt(t + 1e-12)  # (..., 4) = 2|q_i|
    qs = torch.stack([
        torch.stack([r[..., 0] ** 2, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], -1) / (2 * r[..., 0:1]),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], r[..., 1] ** 2, m[..., 1, 0] + m[..., 0, 1],
                     m[..., 0, 2] + m[..., 2, 0]], -1) / (2 * r[..., 1:2]),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1], r[..., 2] ** 2,
                     m[..., 2, 1] + m[..., 1, 2]], -1) / (2 * r[..., 2:3]),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                     m[..., 2, 1] + m[..., 1, 2], r[..., 3] ** 2], -1) / (2 * r[..., 3:4]),
    ], dim=-2)  # (..., 4 candidates, 4)
    best = t.argmax(-1)  # (...)
    q = torch.gather(qs, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """q (..., 4) wxyz (need not be unit) -> R (..., 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(*q.shape[:-1], 3, 3)


def axis_angle_to_quaternion(aa: torch.Tensor) -> torch.Tensor:
    """aa (..., 3) -> q (..., 4) wxyz. Angles beyond pi give w < 0 (not canonicalised)."""
    theta2 = (aa * aa).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + _EPS * _EPS)
    small = theta2 < 1e-8
    half_sinc = torch.where(small, 0.5 - theta2 / 48, torch.sin(theta / 2) / theta)
    return torch.cat([torch.cos(theta / 2), aa * half_sinc], dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """q (..., 4) wxyz -> aa (..., 3) with angle in [0, pi]."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    q = torch.where(q[..., :1] < 0, -q, q)
    w, v = q[..., :1], q[..., 1:]
    s = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(s, w)  # [0, pi]
    small = s < 1e-6
    # angle/sin(angle/2) -> 2 (1 + angle^2/24) near 0
    scale = torch.where(small, 2 + (s * s) / 3 * 1.0, angle / s.clamp_min(1e-12))
    return v * scale


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """R (..., 3, 3) -> aa (..., 3), angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """R (..., 3, 3) -> (..., 6): first two columns, (c0, c1)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def rot6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> R (..., 3, 3) by Gram-Schmidt; any non-degenerate input gives a rotation."""
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def axis_angle_to_rot6d(aa: torch.Tensor) -> torch.Tensor:
    """aa (..., 3) -> (..., 6)."""
    return matrix_to_rot6d(axis_angle_to_matrix(aa))


def rot6d_to_axis_angle(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> aa (..., 3)."""
    return matrix_to_axis_angle(rot6d_to_matrix(d6))


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product of wxyz quaternions (..., 4) x (..., 4) -> (..., 4)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)


def mirror_axis_angle(aa: torch.Tensor) -> torch.Tensor:
    """Mirror a rotation through the x = 0 plane: negate y and z. aa (..., 3) -> (..., 3)."""
    return aa * aa.new_tensor([1.0, -1.0, -1.0])


def geodesic_angle(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Angle (radians) of R1^T R2. (..., 3, 3) x (..., 3, 3) -> (...)."""
    tr = (R1.transpose(-1, -2) @ R2).diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.acos(((tr - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7))
