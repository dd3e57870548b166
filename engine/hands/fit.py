"""Keypoints -> MANO parameters (inverse kinematics).

Two stages, both batched over every frame of both hands:
1. analytic: the wrist and its five children are rigid in MANO, so Kabsch gives the global
   rotation and translation; each finger bone is then swung (minimal rotation) onto the
   observed bone direction, root to tip. Exact on noise-free data up to twist.
2. refinement through the differentiable hand: joint error + anatomical limits (HANDS.md,
   twist/spread/bend in per-joint anatomical frames) + temporal smoothness, with Adam.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from engine.hands.anatomy import anatomical_angles, anatomical_frames, limits_radians, rest_keypoints
from engine.hands.hand_model import TwoHands
from engine.hands.skeleton import FINGER_JOINTS, HANDS, PARENTS
from engine.motion.clip import Clip, ClipError
from engine.optim import LBFGS
from engine.threads import KINEMATICS_THREADS, torch_threads
from engine.motion.rotations import axis_angle_to_matrix, matrix_to_axis_angle

ROOT_CHILDREN = (0, 1, 4, 7, 10, 13)  # wrist + the joints rigidly attached to it
@dataclass(frozen=True)
class FitConfig:
    """Weights and budget of the refinement. Losses are in cm^2 / rad^2."""

    iterations: int = 15
    prior_weight: float = 1.0
    smooth_weight: float = 0.05
    fit_shape: bool = True
    threads: int | None = KINEMATICS_THREADS  # torch intra-op threads while fitting


def kabsch(src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best rotation and translation with dst ~ R src + t. (B, N, 3) x2 -> (B, 3, 3), (B, 3)."""
    cs, cd = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    H = (src - cs).transpose(1, 2) @ (dst - cd)  # (B, 3, 3)
    U, _, Vt = torch.linalg.svd(H)
    d = torch.sign(torch.det(Vt.transpose(1, 2) @ U.transpose(1, 2)))
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = Vt.transpose(1, 2) @ D @ U.transpose(1, 2)
    return R, (cd - (R @ cs.transpose(1, 2)).transpose(1, 2))[:, 0]


def swing(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Minimal rotation (axis-angle) turning direction a onto direction b. (B, 3) x2 -> (B, 3)."""
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    axis = torch.cross(a, b, dim=-1)
    s = axis.norm(dim=-1, keepdim=True)
    c = (a * b).sum(-1, keepdim=True)
    angle = torch.atan2(s, c)
    return axis / s.clamp_min(1e-9) * angle


def estimate_shape(keypoints: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Default-hand betas (size, finger length) from median bone lengths. (B,21,3), (16,3) -> (10,)."""
    palm = [j for j in ROOT_CHILDREN[1:]]
    fingers = [j for j in range(16) if PARENTS[j] > 0]
    def ratio(idx):
        obs = (keypoints[:, idx] - keypoints[:, [PARENTS[j] for j in idx]]).norm(dim=-1)
        ref = (rest_joints[idx] - rest_joints[[PARENTS[j] for j in idx]]).norm(dim=-1)
        return (obs / ref).median()
    s = ratio(palm)
    f = ratio(fingers) / s
    betas = torch.zeros(10)
    betas[0] = ((s - 1) / 0.05).clamp(-6, 6)
    betas[1] = ((f - 1) / 0.05).clamp(-6, 6)
    return betas


def _signed_angle(a: torch.Tensor, b: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Angle from a to b about a unit axis, both projected onto the plane normal to it. (B,3) x3 -> (B,)."""
    a = a - (a * axis).sum(-1, keepdim=True) * axis
    b = b - (b * axis).sum(-1, keepdim=True) * axis
    return torch.atan2((torch.cross(a, b, dim=-1) * axis).sum(-1), (a * b).sum(-1))


@torch.no_grad()
def analytic_init(keypoints: torch.Tensor, rest_joints: torch.Tensor, tips_rest: torch.Tensor,
                  frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Closed-form pose of one hand. keypoints (B,21,3), rest (16,3), tips (5,3), anatomical
    frames (15,3,3) -> global_orient (B,3), hand_pose (B,45), transl (B,3).

    Each finger's base joint is swung onto its bone, then twisted about it (within the twist
    limit) so the next joints' hinge axis lies on the observed finger plane; the two distal
    joints are swung. Exact on noise-free FK poses; keeps noise out of hinge-joint spread.
    """
    B = keypoints.shape[0]
    idx = list(ROOT_CHILDREN)
    R0, t = kabsch(rest_joints[idx].expand(B, -1, -1), keypoints[:, idx])
    transl = t + (R0 @ rest_joints[0]) - rest_joints[0]
    lo, hi = limits_radians()
    pose = torch.zeros(B, 15, 3, dtype=keypoints.dtype)
    min_sin = np.sin(np.radians(20))
    for finger, (j1, j2, j3, tip) in FINGER_JOINTS.items():
        pts = [keypoints[:, j] for j in (j1, j2, j3, tip)]
        rest_pts = [rest_joints[j1], rest_joints[j2], rest_joints[j3], tips_rest[tip - 16]]
        W = R0
        for k, j in enumerate((j1, j2, j3)):
            d0 = (rest_pts[k + 1] - rest_pts[k]).expand(B, 3)
            R = axis_angle_to_matrix(swing(d0, (W.transpose(1, 2) @ (pts[k + 1] - pts[k])[..., None])[..., 0]))
            if k == 0:
                # twist about the observed bone so the next hinge axis matches the finger plane
                u = [pts[i + 1] - pts[i] for i in range(3)]
                n = torch.cross(u[0], u[1], dim=-1) + torch.cross(u[1], u[2], dim=-1)
                conf = (n.norm(dim=-1) / (u[0].norm(dim=-1) * u[1].norm(dim=-1) + 1e-12) / min_sin).clamp(0, 1)
                bone = u[0] / u[0].norm(dim=-1, keepdim=True).clamp_min(1e-9)
                hinge = (W @ R @ frames[j2 - 1][:, 2].expand(B, 3)[..., None])[..., 0]
                tau = (_signed_angle(hinge, n, bone) * conf).clamp(float(lo[j - 1, 0]), float(hi[j - 1, 0]))
                R = W.transpose(1, 2) @ axis_angle_to_matrix(bone * tau[:, None]) @ W @ R
            # keep the joint inside its anatomical range; later joints take up what is left
            F = frames[j - 1]
            ang = (F.T @ matrix_to_axis_angle(R)[..., None])[..., 0]
            ang = torch.maximum(torch.minimum(ang, hi[j - 1]), lo[j - 1])
            pose[:, j - 1] = (F @ ang[..., None])[..., 0]
            W = W @ axis_angle_to_matrix(pose[:, j - 1])
    return matrix_to_axis_angle(R0), pose.reshape(B, 45), transl


def _accel(x: torch.Tensor) -> torch.Tensor:
    """Second difference along time (dim 0)."""
    return x[2:] - 2 * x[1:-1] + x[:-2]


def _check_keypoints(keypoints) -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float32)
    if kp.ndim != 4 or kp.shape[1:] != (2, 21, 3):
        raise ClipError(f"keypoints must have shape (T, 2, 21, 3) in metres; got {kp.shape}")
    if kp.shape[0] < 1:
        raise ClipError("keypoints must have at least one frame")
    if not np.isfinite(kp).all():
        raise ClipError("keypoints must be finite; found NaN or inf")
    return kp


def _initial_fit(kp: torch.Tensor, hands: TwoHands, config: FitConfig):
    """Shape, anatomical frames and the closed-form pose of both hands. kp (T, 2, 21, 3)
    -> betas (2, 10), frames (2, 15, 3, 3), leaf tensors go (T,2,3), hp (T,2,45), tr (T,2,3)."""
    dev = kp.device
    inits, betas_all, frames_all = [], [], []
    for h, model in enumerate((hands.left, hands.right)):
        rest0 = torch.from_numpy(model.rest_joints_np).to(dev)
        betas = estimate_shape(kp[:, h], rest0).to(dev) if config.fit_shape and model.backend == "default" \
            else torch.zeros(10, device=dev)
        kp_rest = rest_keypoints(model, betas)
        rest, tips_rest = kp_rest[:16], kp_rest[16:]
        frames_h = anatomical_frames(rest, tips_rest, HANDS[h])
        inits.append(analytic_init(kp[:, h], rest, tips_rest, frames_h))
        betas_all.append(betas)
        frames_all.append(frames_h)
    params = tuple(torch.stack([i[k] for i in inits], 1).clone().requires_grad_(True) for k in range(3))
    return torch.stack(betas_all), torch.stack(frames_all), params


def fit_keypoints_iter(keypoints, hands: TwoHands, fps: float = 30.0, config: FitConfig = FitConfig()
                       ) -> Iterator[dict]:
    """Generator: yields ``{"step", "of", "loss"}`` per refinement step, then
    ``{"done": True, "clip": Clip, "error_mm": mean joint error, "seconds": ...}``."""
    start = time.perf_counter()
    kp_np = _check_keypoints(keypoints)
    T = kp_np.shape[0]
    dev = hands.device
    kp = torch.from_numpy(kp_np).to(dev)  # (T, 2, 21, 3)
    with torch_threads(config.threads):
        betas, frames, (go, hp, tr) = _initial_fit(kp, hands, config)
    lo, hi = (x.to(dev) for x in limits_radians())
    opt = LBFGS([go, hp, tr])
    smooth = T > 2 and config.smooth_weight > 0

    def closure():
        pred = hands.joints(betas, go, hp, tr)  # (T, 2, 21, 3)
        d2 = ((pred - kp) * 100).pow(2).sum(-1)  # cm^2, (T, 2, 21)
        ang = anatomical_angles(hp, frames[None])  # (T, 2, 15, 3)
        viol = (lo - ang).clamp_min(0) + (ang - hi).clamp_min(0)
        loss = d2.sum(-1).mean() + config.prior_weight * viol.pow(2).sum((-1, -2)).mean()
        if smooth:
            loss = loss + config.smooth_weight * (_accel(hp).pow(2).sum(-1).mean() + _accel(go).pow(2).sum(-1).mean()
                                                  + _accel(tr * 100).pow(2).sum(-1).mean())
        loss.backward()
        return loss

    for step in range(config.iterations):
        with torch_threads(config.threads):
            loss = opt.step(closure)
        yield {"step": step + 1, "of": config.iterations, "loss": loss}
    with torch.no_grad(), torch_threads(config.threads):
        pred = hands.joints(betas, go, hp, tr)
        err = float((pred - kp).norm(dim=-1).mean()) * 1000
    clip = Clip(tr.detach().cpu().numpy(), go.detach().cpu().numpy(), hp.detach().cpu().numpy(),
                betas.cpu().numpy(), fps=fps)
    yield {"done": True, "clip": clip, "error_mm": err, "seconds": time.perf_counter() - start}


def fit_keypoints(keypoints, hands: TwoHands, fps: float = 30.0, config: FitConfig = FitConfig()) -> Clip:
    """Keypoints (T, 2, 21, 3) metres -> Clip. See ``fit_keypoints_iter`` for progress."""
    for item in fit_keypoints_iter(keypoints, hands, fps, config):
        if item.get("done"):
            return item["clip"]
    raise RuntimeError("fit ended without a result")  # unreachable
