"""The seam fill (inpaint.seam_blend): exact kept values without a step or a kink beside them.

An untrained model says nothing about smoothness, so the fill is tested as a function (steps,
isolated keys, slopes, partial and two-hand masks, normalisation) and the pipeline only for
exactness and for using it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.diffusion import inpaint, pipeline
from engine.diffusion.constraints import Constraints
from engine.diffusion.pipeline import DiffusionPipeline
from engine.diffusion.representation import CHANNELS, HAND_CHANNELS, clip_to_tensor, denormalize, normalize

FILLS = [(1, 4.0), (2, 6.0), (3, 2.0), inpaint.SEAM_ORIENT, inpaint.SEAM_POSE, inpaint.SEAM_TRANSL]


def acc(y: torch.Tensor) -> torch.Tensor:
    return y.diff(n=2, dim=0).abs()


@pytest.mark.parametrize("fill", FILLS)
def test_a_step_at_a_boundary_becomes_smooth(fill):
    T = 40
    x, target = torch.zeros(T, 1), torch.ones(T, 1)
    keep = torch.zeros(T, 1, dtype=torch.bool)
    keep[:10] = True
    hard = inpaint.impose(x, target, keep)
    y = inpaint.seam_blend(x, target, keep, fill=fill)
    assert torch.equal(y[keep], target[keep])  # bit-identical
    assert acc(hard).max() == 1.0  # imposing alone: a unit step, a unit acceleration spike
    assert acc(y).max() <= 0.25 and y.diff(dim=0).abs().max() <= 0.25
    if fill[0] > 1:
        assert acc(y).max() <= 0.06  # value and slope continue: no kink at the boundary either
    free = y[10:, 0]
    assert (free.diff() <= 1e-7).all() and free.min() >= 0 and free.max() <= 1  # fades, never overshoots
    assert y[-1, 0] < 0.3 * y[10, 0]


@pytest.mark.parametrize("fill", FILLS)
def test_an_isolated_keyframe_is_a_smooth_bump(fill):
    T = 41
    x, target = torch.zeros(T, 1), torch.ones(T, 1)
    keep = torch.zeros(T, 1, dtype=torch.bool)
    keep[20] = True
    y = inpaint.seam_blend(x, target, keep, fill=fill)[:, 0]
    assert y[20] == 1 and y.argmax() == 20 and y.min() >= 0  # no opposite swing far from the key
    assert torch.allclose(y, y.flip(0), atol=1e-6)
    assert acc(y).max() <= (0.45 if fill[0] == 1 else 0.1)  # imposing alone: 2


def test_the_slope_of_the_residual_carries_over():
    T = 40
    x = torch.zeros(T, 1)
    target = 0.1 * torch.arange(T, dtype=torch.float32)[:, None]  # kept part moves at 0.1 / frame
    keep = torch.zeros(T, 1, dtype=torch.bool)
    keep[:10] = True
    v1 = inpaint.seam_blend(x, target, keep, fill=(1, 4.0)).diff(dim=0)[9, 0]  # first free step
    v2 = inpaint.seam_blend(x, target, keep, fill=(2, 6.0)).diff(dim=0)[9, 0]
    assert v1 < 0 < v2  # order 1 turns back at once; order 2 keeps going the same way first


@pytest.mark.parametrize("fill", [inpaint.SEAM_ORIENT, inpaint.SEAM_POSE])
def test_the_fill_stays_within_the_residual(fill):
    g = torch.Generator().manual_seed(0)
    T, C = 60, 8
    f = torch.arange(T, dtype=torch.float32)[:, None]
    keep = torch.zeros(T, C, dtype=torch.bool)
    keep[:20], keep[45] = True, True
    for _ in range(20):  # smooth residuals: no extrapolated drift beyond what is kept
        a, ph, fr = (torch.rand(1, C, generator=g), torch.rand(1, C, generator=g) * 6.3,
                     torch.rand(1, C, generator=g) * 0.3)
        r = a * torch.sin(fr * f + ph)
        y = inpaint.seam_blend(torch.zeros(T, C), r, keep, fill=fill)
        assert ((y.abs() * ~keep).amax(0) <= 1.1 * (r.abs() * keep).amax(0)).all()


def test_partial_masks_on_both_hands():
    g = torch.Generator().manual_seed(1)
    T = 30
    x, target = torch.randn(T, 2, HAND_CHANNELS, generator=g), torch.randn(T, 2, HAND_CHANNELS, generator=g)
    keep = torch.zeros(T, 2, HAND_CHANNELS, dtype=torch.bool)
    keep[[0, 15], 0] = True  # left hand: full keyframes
    tr = CHANNELS["transl"]
    keep[:10, 1, tr], keep[20:, 1, tr] = True, True  # right hand: wrist only, with a gap
    y = inpaint.seam_blend(x, target, keep)
    assert torch.equal(y[keep], target[keep])
    assert torch.equal(y[:, 1, :tr.start], x[:, 1, :tr.start])  # channels never kept: untouched
    assert (y[1:15, 0] != x[1:15, 0]).all() and (y[10:20, 1, tr] != x[10:20, 1, tr]).all()
    # channels are filled independently: each hand alone gives the same values
    for h in range(2):
        alone = inpaint.seam_blend(x[:, h:h + 1], target[:, h:h + 1], keep[:, h:h + 1])
        assert torch.allclose(alone[:, 0], y[:, h], atol=1e-6)
    # the representation's channel groups: short fade for fingers, long for the wrist
    fill = inpaint.default_fill(HAND_CHANNELS)
    assert fill[CHANNELS["global_orient"].start] == inpaint.SEAM_ORIENT and fill[tr.start] == inpaint.SEAM_TRANSL
    assert fill[CHANNELS["hand_pose"].start] == fill[CHANNELS["hand_pose"].stop - 1] == inpaint.SEAM_POSE
    # one matrix per (frame pattern, fill): left orient + transl (same fill), left pose, right transl
    assert sorted(len(cols) for cols, _ in inpaint.seam_plan(keep)) == [3, 9, 90]


def test_normalisation_plans_and_trivial_masks():
    g = torch.Generator().manual_seed(2)
    T = 20
    x, target = torch.randn(T, 2, HAND_CHANNELS, generator=g), torch.randn(T, 2, HAND_CHANNELS, generator=g)
    mean, std = torch.randn(2, HAND_CHANNELS, generator=g), torch.rand(2, HAND_CHANNELS, generator=g) + 0.1
    keep = torch.zeros(T, 2, HAND_CHANNELS, dtype=torch.bool)
    keep[:5], keep[12] = True, True
    raw = inpaint.seam_blend(x, target, keep)
    normed = denormalize(inpaint.seam_blend(normalize(x, mean, std), normalize(target, mean, std), keep), mean, std)
    assert torch.allclose(raw, normed, atol=1e-5)  # linear per channel: either space
    plan = inpaint.seam_plan(keep)
    assert torch.equal(inpaint.seam_blend(x, target, keep, plan=plan), raw)
    none = torch.zeros_like(keep)
    assert inpaint.seam_plan(none) == [] and torch.equal(inpaint.seam_blend(x, target, none), x)
    assert torch.equal(inpaint.seam_blend(x, target, ~none), target)
    with pytest.raises(ValueError, match="one shape"):
        inpaint.seam_blend(x, target[:-1], keep)
    with pytest.raises(ValueError, match="fill"):
        inpaint.seam_plan(keep, fill=[(2, 6.0)] * 3)
    with pytest.raises(ValueError, match="1-D"):
        inpaint.seam_fill_matrix(keep[:, 0, :2], 6.0, 2)


# --- through the pipeline ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def pipe():
    from engine.diffusion.text_encoder import shared_text_encoder
    from engine.hands import default_hands_cpu
    from test_diffusion import random_model
    return DiffusionPipeline(random_model(), shared_text_encoder(), default_hands_cpu(), steps=3)


def test_pipeline_stays_exact_with_the_seam_fill(pipe, monkeypatch):
    from test_diffusion import random_clip
    calls = []
    blend = inpaint.seam_blend
    monkeypatch.setattr(inpaint, "seam_blend", lambda *a, **k: (calls.append(1), blend(*a, **k))[1])
    ref = random_clip(50, seed=3)
    cases = [(Constraints.keyframes(ref, [0, 7, 19], hands=("right",)), 20, 1),
             (Constraints.inbetween(ref.slice(0, 4), ref.slice(46, 50)), 50, 4),  # windows of 20, overlap 10
             (Constraints.continue_from(ref.slice(0, 12), 6)
              & Constraints.wrist_path("left", ref.joints[10:40, 0, 0], frames=list(range(10, 40))), 50, 4)]
    for c, frames, windows in cases:
        calls.clear()
        clip = pipe.generate("the right hand waves", frames=frames, seed=0, constraints=c)
        keep, target = c.build(frames, pipe.rest_wrists(c.betas()))
        err = (clip_to_tensor(clip) - target).abs()[keep]
        assert err.max() <= 1e-5, c
        assert len(calls) == pipeline.SEAM_STEPS * windows
    kf = Constraints.keyframes(ref, [0, 7, 19], hands=("right",))
    clip = pipe.generate("the right hand waves", frames=20, seed=0, constraints=kf)
    for f in (0, 7, 19):
        assert np.abs(clip.hand_pose[f, 1] - ref.hand_pose[f, 1]).max() <= 1e-5
        assert np.abs(clip.transl[f, 1] - ref.transl[f, 1]).max() <= 1e-5
