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


def test_r_precision_ties_count_against_the_match():
    """A constant model (every embedding equal) is the worst case, not a perfect score."""
    const = np.ones((64, 8)) / np.sqrt(8)
    assert M.r_precision(const, const) == [0.0, 0.0, 0.0]
    assert M.r_precision(const[:8], const[:8], pool=4, top=4) == [0.0, 0.0, 0.0, 1.0]  # k = pool: always in
    rng = np.random.default_rng(5)
    m = unit(rng.normal(size=(32, 16)))
    dup = m.copy()
    dup[1::2] = dup[0::2]  # pairs of identical motions (and texts): one distractor ties with each match
    assert M.r_precision(dup, dup) == [0.0, 1.0, 1.0]
    nan = m.copy()
    nan[:8] = np.nan
    assert M.r_precision(nan, m) == [0.75, 0.75, 0.75]  # a NaN distance is a miss, never a hit
    with pytest.raises(ValueError, match="pool must be an int >= 2"):
        M.r_precision(m, m, pool=1)


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
    J[..., 1] = np.arange(21) * 0.03  # keypoints of a hand 3 cm apart: no contact within a hand
    ref = J.copy()
    ref[:, 1:3, 1, 17] = ref[:, 1:3, 0, 17]  # right index tip on the left index tip in frames 1-2
    assert M.contact_prf(ref, ref)["inter_f1"] == 1.0
    r = M.contact_prf(J, ref)
    assert r["inter_recall"] == 0.0 and r["inter_f1"] == 0.0
    # HandX's sequence-level labels (appendix E.1): a contact anywhere in the clip counts, so a
    # contact one frame late is still a hit there, but a miss frame by frame
    late = J.copy()
    late[:, 2:4, 1, 17] = late[:, 2:4, 0, 17]  # the same touch, one frame later
    assert M.contact_prf(late, ref)["inter_precision"] == 0.5  # frame 2 overlaps, frame 3 does not
    seq = M.contact_prf_sequences(late, ref)
    assert seq["inter_f1"] == 1.0 and seq["inter_ref_rate"] == 1.0
    assert M.contact_prf_sequences(J, ref)["inter_recall"] == 0.0
    pinch = J.copy()
    tips = M.TIPS
    pinch[:, 3, 0, tips[2]] = pinch[:, 3, 0, tips[0]] + [0.01, 0, 0]  # left thumb-middle pinch at frame 3 (1 cm)
    intra, inter = M.contact_labels(pinch)
    assert intra.shape == (1, 2, 4) and intra[0, 0].tolist() == [False, True, False, False] and not intra[0, 1].any()
    assert inter.tolist() == [False]
    r = M.contact_prf_sequences(J, pinch)
    assert r["intra_recall"] == 0.0 and r["intra_ref_rate"] == 1 / 8
    with pytest.raises(ValueError, match="joints must be"):
        M.contact_labels(J[0])
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


# --- evaluate_diffusion_iter on a small held-out split ------------------------------------------------
FRAMES = 20


def _small_corpus(folder, n_test: int):
    """A corpus of 20-frame procedural clips with ``n_test`` test clips, via the public writer."""
    from engine.data.corpus_build import _clip_arrays, _stack, write_corpus
    from engine.data.synth import generate_clip
    verbs = ("opens", "closes", "waves", "taps", "claps", "points", "shakes", "spreads")
    splits = ["train"] * 4 + ["test"] * n_test
    arrays = _stack([_clip_arrays(generate_clip(k, frames=FRAMES)[0]) for k in range(len(splits))])
    recs = [{"split": sp, "texts": [{"level": lv, "text": f"the right hand {verbs[k % 8]}", "left": "", "right": ""}
                                    for lv in (1, 2, 3, 4, 5)],
             "action": "", "actions": [], "events": {}, "event_types": [], "source": f"take{k}"}
            for k, sp in enumerate(splits)]
    return write_corpus(folder, [(arrays, recs)], {"frames": FRAMES, "fps": 30.0, "source": "import"})


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """An untrained tiny denoiser and evaluator, saved the way real ones are."""
    from engine.diffusion.checkpoint import save_model
    from engine.diffusion.denoiser import Denoiser, DenoiserConfig
    from engine.evaluation.evaluator import Evaluator, save_evaluator
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    m = Denoiser(DenoiserConfig(frames=FRAMES, patch=2, d_model=32, layers=1, heads=2, ffn=64, dropout=0.0))
    torch.nn.init.normal_(m.motion_out.weight, std=0.2)
    save_model(root / "diffusion", m.eval(), {"sampler_steps": 1})
    save_evaluator(root / "evaluator", Evaluator(EvaluatorConfig(d_model=32, layers=1, heads=2, emb=16)).eval())
    return root / "diffusion", root / "evaluator"


def test_evaluate_diffusion_on_eight_test_prompts(tmp_path, tiny_models):
    """A user's held-out split of 8 clips is scored in one pool of 8 (the default pool is 32)."""
    from engine.evaluation.run import evaluate_diffusion_iter, load_eval_set
    model, evaluator = tiny_models
    data = _small_corpus(tmp_path / "c", 8)
    with pytest.raises(ValueError, match="has 8 usable prompts .* needs at least 32"):
        load_eval_set(data, 512, evaluator)  # the steps curve still needs a full pool
    items = list(evaluate_diffusion_iter(data, model, evaluator, n=512, steps=1, mm_prompts=2, mm_repeats=2))
    last = items[-1]
    assert last["done"] is True and last["n"] == 8 and last["pool"] == 8
    assert [i["stage"] for i in items[:-1]] == ["generate"] * 8 + ["multimodality"] * 2
    for name in ("Ground truth", "Diffusion"):
        row = last["rows"][name]
        assert 0.0 <= row["R@1"] <= row["R@2"] <= row["R@3"] <= 1.0, row
        assert np.isfinite(row["MM-Dist"]) and np.isfinite(row["FID"]), row
    assert np.isfinite(last["rows"]["Diffusion"]["KID"]) and "| Diffusion |" in last["table"]
    assert last["rows"]["Ground truth"]["Speed"] == 1.0 and last["rows"]["Diffusion"]["Speed"] > 0
    assert "| Hand acc | Speed |" in last["table"]
    # test clips 8-11 share their text with training clips 0-3: the data-resample contact row
    assert "| Data resample, same-text subset |" in last["table"]
    assert 0.0 <= last["rows"]["Diffusion, same-text subset (n=4)"]["C-F1 intra"] <= 1.0
    smaller = list(evaluate_diffusion_iter(data, model, evaluator, n=8, steps=1, mm_prompts=1, mm_repeats=2, pool=4))
    assert smaller[-1]["pool"] == 4 and smaller[-1]["n"] == 8
    with pytest.raises(ValueError, match="pool must be an int >= 2"):
        next(evaluate_diffusion_iter(data, model, evaluator, pool=1))


def test_evaluate_diffusion_needs_four_test_prompts(tmp_path, tiny_models):
    from engine.evaluation.run import evaluate_diffusion_iter
    data = _small_corpus(tmp_path / "c", 3)
    with pytest.raises(ValueError, match="has 3 usable prompts .* needs at least 4"):
        next(evaluate_diffusion_iter(data, *tiny_models))


def test_handedness_accuracy_counts_the_busy_hand():
    from engine.evaluation.metrics import hand_activity, handedness_accuracy
    rng = np.random.default_rng(0)
    T = 20
    still = np.zeros((T, 21, 3))
    moving = np.cumsum(rng.normal(0, 0.01, (T, 21, 3)), axis=0)
    left_busy = np.stack([moving, still], 1)  # (T, 2, 21, 3)
    right_busy = np.stack([still, moving], 1)
    both = np.stack([moving, moving * 0.9], 1)  # not one-handed: left out of the count
    ref = np.stack([left_busy, right_busy, both])
    assert hand_activity(ref).shape == (3, 2) and hand_activity(ref)[0, 1] == 0
    assert handedness_accuracy(ref, ref) == {"acc": 1.0, "n": 2}
    swapped = np.stack([right_busy, right_busy, both])
    assert handedness_accuracy(swapped, ref) == {"acc": 0.5, "n": 2}
    r = handedness_accuracy(np.stack([both]), np.stack([both]))
    assert r["n"] == 0 and np.isnan(r["acc"])


def test_speed_ratio_sees_a_calmer_take():
    """The same motion at a third of its amplitude (right shape, right timing) reads 1/3; a frozen
    reference is refused by name rather than dividing by zero."""
    from engine.evaluation.metrics import speed_ratio
    rng = np.random.default_rng(1)
    ref = np.cumsum(rng.normal(0, 0.01, (4, 20, 2, 21, 3)), axis=1)
    assert speed_ratio(ref, ref) == pytest.approx(1.0)
    calm = ref[:, :1] + (ref - ref[:, :1]) / 3
    assert speed_ratio(calm, ref) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="do not move"):
        speed_ratio(ref, np.zeros_like(ref))


def test_same_text_resample_scores_data_clips_with_the_prompt_text(tmp_path):
    """Test clips that copy the training clip with their text score F1 1 by resampling; a test
    text no training clip has is left out; the model row is the plain contact F1 on the subset."""
    from engine.data.corpus_build import _clip_arrays, _stack, write_corpus
    from engine.data.synth import generate_clip
    from engine.evaluation.run import load_eval_set, same_text_resample
    clips = [generate_clip(k, frames=FRAMES)[0] for k in range(4)]
    texts = ["the right hand opens", "the left hand closes", "both hands clap", "the hands rub"]
    splits = ["train"] * 4 + ["test"] * 4
    arrays = _stack([_clip_arrays(clips[k % 4]) for k in range(8)])
    test_texts = texts[:3] + ["nobody trained on this"]
    recs = [{"split": sp, "texts": [{"level": lv, "text": (texts if sp == "train" else test_texts)[k % 4],
                                     "left": "", "right": ""} for lv in (1, 2, 3, 4, 5)],
             "action": "", "actions": [], "events": {}, "event_types": [], "source": f"take{k}"}
            for k, sp in enumerate(splits)]
    data = write_corpus(tmp_path / "c", [(arrays, recs)], {"frames": FRAMES, "fps": 30.0, "source": "import"})
    prompts, gt, _ = load_eval_set(data, 8, min_prompts=4)
    gen = gt[::-1].copy()  # the wrong clip for every prompt
    r = same_text_resample(data, prompts, gt, gen, draws=5)
    assert r["n"] == 3 and r["draws"] == 5
    assert all(v == 1.0 for v in r["data"].values()) and all(v == 0.0 for v in r["data_sd"].values())
    want = M.contact_prf_sequences(gen[:3], gt[:3])
    assert r["model"]["C-F1 intra"] == pytest.approx(want["intra_f1"])
    assert r["model"]["C-F1 inter"] == pytest.approx(want["inter_f1"])
    assert same_text_resample(data, prompts[3:], gt[3:], gen[3:]) is None
    with pytest.raises(ValueError, match="draws must be >= 1"):
        same_text_resample(data, prompts, gt, gen, draws=0)
