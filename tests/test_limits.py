"""Joint limits on generated takes (engine/diffusion/limits.py): the envelope, the ramp towards kept
frames, the projection on real anatomical frames, and its wiring through the pipeline, the
Studio and the CLI flag (the GUI checkbox: test_generation_gui)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.diffusion.limits import MARGIN, REACH, free_ramp, respect_limits, smooth_envelope
from engine.diffusion.representation import clip_to_tensor, joint_channels, tensor_to_clip
from engine.evaluation.physical import joint_angles, limit_violations
from engine.hands.anatomy import frames_for, from_anatomical, limits_radians
from engine.motion.clip import Clip

T = 60
BEND = 2  # anatomical axis: (twist, spread, bend)


@pytest.fixture(scope="module")
def hands():
    from engine.hands import default_hands_cpu
    return default_hands_cpu()


def bending_clip(hands, over_deg: float = 20.0) -> Clip:
    """Right index MCP (hand_pose joint 0) bends from 0 past its 90 deg limit by ``over_deg`` and back
    (a smooth bump, frames 20-40); right middle PIP sits just inside its limit; everything else
    relaxed and inside. The left hand mirrors nothing: it stays at rest."""
    lo, hi = limits_radians()
    t = np.arange(T)
    bump = np.exp(-0.5 * ((t - 30) / 6.0) ** 2)
    ang = torch.zeros(T, 15, 3)
    ang[:, 0, BEND] = torch.tensor(bump * (float(hi[0, BEND]) + np.radians(over_deg)), dtype=torch.float32)
    ang[:, 4, BEND] = float(hi[4, BEND]) - 0.01  # middle PIP: close to the limit, never past
    hp = np.zeros((T, 2, 45), np.float32)
    hp[:, 1] = from_anatomical(ang, frames_for(hands.hand(1))).numpy()
    tr = np.zeros((T, 2, 3), np.float32)
    tr[:, 0, 0], tr[:, 1, 0] = -0.15, 0.15
    return Clip(tr, np.zeros((T, 2, 3), np.float32), hp)


def test_envelope_covers_the_excess_smoothly_and_nowhere_else():
    e = torch.zeros(3, 80, dtype=torch.float64)
    e[0, 40] = 1.0  # a one-frame spike
    e[1, 20:30] = torch.linspace(0, 0.5, 10, dtype=torch.float64)  # a ramp
    env = smooth_envelope(e)
    assert (env >= e - 1e-3 * e.max()).all()  # covered up to ~5 % ** 3
    assert torch.all(env[2] == 0)  # nothing to cover: nothing moves
    assert env[0, :40 - 3 * REACH].abs().max() == 0 and env[0, 40 + 3 * REACH + 1:].abs().max() == 0
    # smooth: its second difference stays far below the spike's own (2 per unit of excess)
    assert (env[0, 2:] - 2 * env[0, 1:-1] + env[0, :-2]).abs().max() < 0.2
    with pytest.raises(ValueError, match="reach"):
        smooth_envelope(e, reach=0)


def test_ramp_is_zero_on_kept_frames_and_one_away_from_them():
    kept = torch.zeros(20, 2, dtype=torch.bool)
    kept[5, 0] = True
    w = free_ramp(kept)
    assert w[5, 0] == 0 and w[5 + REACH, 0] == 1 and w[5 - REACH, 0] == 1
    assert 0 < w[6, 0] < w[7, 0] < 1
    assert torch.all(w[:, 1] == 1)


def test_a_joint_past_its_limit_eases_back_and_the_rest_is_untouched(hands):
    clip = bending_clip(hands)
    before = limit_violations(clip.hand_pose, clip.betas)
    assert before["limit_frac"] > 0 and before["limit_excess_deg"] > 5
    x = clip_to_tensor(clip)
    y, report = respect_limits(x, clip.betas, hands)
    after = tensor_to_clip(y, clip.betas)
    assert limit_violations(after.hand_pose, after.betas)["limit_frac"] == 0
    assert report["joint_frames"] > 0 and report["max_excess_deg"] == pytest.approx(20.0, abs=0.5)
    assert torch.equal(x, clip_to_tensor(clip))  # the input is not changed
    # only the offending joint moved, and only around the frames where it was past
    moved = (y != x).reshape(T, 2, -1)
    index_mcp = joint_channels(1)
    assert not moved[:, 0].any()  # the left hand
    others = moved[:, 1].clone()
    others[:, index_mcp] = False
    assert not others.any()  # the middle PIP near its limit and every other channel: bit for bit
    frames_moved = moved[:, 1, index_mcp].any(-1).nonzero().flatten()
    past = np.nonzero(joint_angles(clip.hand_pose, clip.betas)[:, 1, 0, BEND] > limits_radians()[1][0, BEND].item())[0]
    assert frames_moved.min() >= past.min() - 3 * REACH and frames_moved.max() <= past.max() + 3 * REACH
    # smoothly: the bend's largest second difference is well below what a per-frame clamp leaves
    lo, hi = limits_radians()
    raw = joint_angles(clip.hand_pose, clip.betas)[:, 1, 0, BEND]
    eased = joint_angles(after.hand_pose, after.betas)[:, 1, 0, BEND]
    clamped = np.minimum(raw, hi[0, BEND].item())
    acc = lambda a: np.abs(a[2:] - 2 * a[1:-1] + a[:-2]).max()  # noqa: E731
    assert acc(eased) < 0.5 * acc(clamped)
    assert eased.max() <= hi[0, BEND].item() - MARGIN / 2


def test_kept_joints_are_not_touched(hands):
    clip = bending_clip(hands)
    x = clip_to_tensor(clip)
    keep = torch.zeros_like(x, dtype=torch.bool)
    keep[28:33, 1, joint_channels(1)] = True  # the peak of the bend is a keyframe
    y, report = respect_limits(x, clip.betas, hands, keep)
    assert torch.equal(y[keep], x[keep])
    free = ~keep[:, 1, joint_channels(1)].any(-1)
    ang = joint_angles(tensor_to_clip(y, clip.betas).hand_pose, clip.betas)[:, 1, 0, BEND]
    assert (ang[free.numpy()] <= limits_radians()[1][0, BEND].item()).all()  # free frames still inside
    keep_all = torch.ones_like(keep)
    y, report = respect_limits(x, clip.betas, hands, keep_all)
    assert torch.equal(y, x) and report["joint_frames"] == 0


def test_bad_shape_is_one_clear_error(hands):
    with pytest.raises(ValueError, match=r"\(T, 2, 99\)"):
        respect_limits(torch.zeros(10, 99), np.zeros((2, 10)), hands)


def test_pipeline_reports_and_the_switch_turns_it_off(hands):
    """A tiny random pipeline bends joints far past their limits: on (the default) the take has
    none past and the result says how many were; off, the sampler's own take."""
    from test_diffusion import random_model
    from engine.diffusion.pipeline import DiffusionPipeline
    from engine.diffusion.text_encoder import shared_text_encoder
    pipe = DiffusionPipeline(random_model(), shared_text_encoder(), hands, steps=3)
    assert pipe.joint_limits
    *_, on = pipe.generate_iter("make a fist", frames=20, seed=1, preview=False, close_pinches=False)
    *_, off = pipe.generate_iter("make a fist", frames=20, seed=1, preview=False, close_pinches=False,
                                 joint_limits=False)
    c_on, c_off = on["clip"], off["clip"]
    assert off["limits"] is None and on["limits"]["joint_frames"] > 0
    assert limit_violations(c_off.hand_pose, c_off.betas)["limit_frac"] > 0.05
    assert limit_violations(c_on.hand_pose, c_on.betas)["limit_frac"] == 0
    np.testing.assert_array_equal(c_on.transl, c_off.transl)  # only finger joints change


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_same_result_on_cuda(hands):
    clip = bending_clip(hands)
    x = clip_to_tensor(clip)
    keep = torch.zeros_like(x, dtype=torch.bool)
    keep[28:33, 1, joint_channels(1)] = True
    y_cpu, rep_cpu = respect_limits(x, clip.betas, hands, keep)
    y_gpu, rep_gpu = respect_limits(x.cuda(), clip.betas, hands, keep.cuda())
    assert y_gpu.device.type == "cuda" and rep_gpu == rep_cpu
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, atol=1e-6, rtol=0)
