"""The shared evaluator and the metrics: known values on constructed inputs, a tiny training run."""
import numpy as np
import pytest
import torch

from engine.evaluation import metrics as M
from engine.evaluation.evaluator import (EvalTrainConfig, EvaluatorConfig, load_evaluator, motion_features,
                                         train_evaluator_iter)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_r_precision_perfect_and_chance():
    rng = np.random.default_rng(0)
    m = unit(rng.normal(size=(320, 16)))
    assert M.r_precision(m, m) == [1.0, 1.0, 1.0]
    chance = M.r_precision(unit(rng.normal(size=(3200, 16))), unit(rng.normal(size=(3200, 16))))
    assert abs(chance[0] - 1 / 32) < 0.02 and abs(chance[2] - 3 / 32) < 0.03
    with pytest.raises(ValueError, match="at least 32"):
        M.r_precision(m[:10], m[:10])


def test_fid_kid_zero_for_same_distribution_and_grow_with_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    assert M.fid(a, b) < 0.05 and abs(M.kid(a, b)) < 0.01
    assert M.fid(a, b + 1.0) > 7.0 and M.kid(a, b + 1.0) > 0.1


def test_diversity_multimodality_mm_dist():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 4))
    assert abs(M.diversity(x) - np.sqrt(2 * 4) * 0.94) < 0.4  # E|x-y| for N(0, I_4) ~ 2.66
    groups = np.repeat(x[:20, None], 5, 1)
    assert M.multimodality(groups) == 0.0
    assert M.mm_dist(x, x) == 0.0


def test_contact_prf_and_reconstruction_metrics():
    J = np.zeros((1, 4, 2, 21, 3))
    J[..., 0, :, 0] = -0.5  # hands far apart
    J[..., 1, :, 0] = 0.5
    ref = J.copy()
    ref[:, 1:3, 1, 17] = ref[:, 1:3, 0, 17]  # right index tip on the left index tip in frames 1-2
    assert M.contact_prf(ref, ref)["inter_f1"] == 1.0
    r = M.contact_prf(J, ref)
    assert r["inter_recall"] == 0.0 and r["inter_f1"] == 0.0
    rng = np.random.default_rng(3)
    P = rng.normal(size=(5, 21, 3))
    assert M.mpjpe(P, P + [0.01, 0, 0]) == pytest.approx(0.01)
    Rz = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    assert M.pa_mpjpe(2 * P @ Rz.T + 3, P) < 1e-9  # similarity-invariant
    seq = np.cumsum(rng.normal(size=(1, 30, 21, 3)), 1)
    assert M.accel_error(seq, seq) == 0.0


def test_seam_ratio_sees_a_jump():
    t = np.linspace(0, 1, 60)[:, None, None] * np.ones((60, 21, 3))
    assert M.seam_ratio(t + 0.01 * np.sin(8 * t), [30]) < 2
    jump = t.copy()
    jump[30:] += 0.05
    assert M.seam_ratio(jump, [30]) > 10


def test_motion_features_are_translation_invariant():
    j = torch.randn(2, 10, 2, 21, 3)
    assert torch.allclose(motion_features(j), motion_features(j + 5.0), atol=1e-4)


def test_evaluator_trains_and_separates_two_motions(tmp_path):
    """Two motion kinds with two captions: after a short training the matching pairs are closer."""
    from engine.data.synth import make_action
    clips, prompts = [], []
    for i in range(24):
        name = ("fist", "wave")[i % 2]
        clip, _ = make_action(name, seed=i, hand="right")
        clips.append(clip.joints)
        prompts.append([{"text": f"the right hand makes a {name}", "left": "", "right": ""}])
    J = np.stack(clips)
    cfg = EvaluatorConfig(d_model=32, layers=1, heads=2, emb=16)
    items = list(train_evaluator_iter(J, prompts, tmp_path / "ev", cfg, EvalTrainConfig(steps=60, batch=12, lr=2e-3)))
    assert items[-1]["loss"] < items[0]["loss"]
    ev = load_evaluator(items[-1]["checkpoint"])
    m = ev.embed_motion(J)
    t = ev.embed_prompts([p[0] for p in prompts])
    d = np.linalg.norm(t[:, None] - m[None], axis=-1)
    same = np.equal.outer(np.arange(24) % 2, np.arange(24) % 2)
    assert d[same].mean() < d[~same].mean()
    assert np.allclose(np.linalg.norm(m, axis=-1), 1, atol=1e-5)
