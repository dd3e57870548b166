"""Constraint and physical-plausibility metrics on hand-made cases with known answers, the
constraint eval through the real constraint path on a tiny untrained model, and the CLI flags."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.evaluation import metrics as M
from engine.evaluation import physical

MM = 1e-3


# --- capsules -----------------------------------------------------------------------------------
def test_segment_distance_known_cases_and_brute_force():
    o, x, y, z = np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
    assert M.segment_distance(o, x, o + 0.02 * y, x + 0.02 * y) == pytest.approx(0.02)  # parallel
    assert M.segment_distance(-x, x, 0.01 * z - y, 0.01 * z + y) == pytest.approx(0.01)  # crossing
    assert M.segment_distance(o, x, 2 * x, 3 * x) == pytest.approx(1.0)  # collinear, apart
    assert M.segment_distance(o, o, y, y) == pytest.approx(1.0)  # two points
    assert M.segment_distance(y, y, -x, x) == pytest.approx(1.0)  # point and segment
    rng = np.random.default_rng(0)
    p0, p1, q0, q1 = rng.normal(size=(4, 100, 3))
    q1[:10] = q0[:10]
    p1[10:20] = p0[10:20] + 0.5 * (q1[10:20] - q0[10:20])  # parallel pairs
    s = np.linspace(0, 1, 101)[None, :, None]
    a, b = p0[:, None] + s * (p1 - p0)[:, None], q0[:, None] + s * (q1 - q0)[:, None]
    brute = np.linalg.norm(a[:, :, None] - b[:, None], axis=-1).min((1, 2))
    d = M.segment_distance(p0, p1, q0, q1)
    assert (d <= brute + 1e-9).all() and (brute - d).max() < 0.03


def test_two_capsules_overlapping_by_5mm():
    x, y = np.array([0.04, 0, 0]), np.array([0, 1.0, 0])
    # parallel bones 20 mm apart, radii 10 + 15 mm -> 5 mm deep
    assert M.capsule_penetration(0 * x, x, 10 * MM, 20 * MM * y, x + 20 * MM * y, 15 * MM) == pytest.approx(5 * MM)
    # apart: no penetration
    assert M.capsule_penetration(0 * x, x, 10 * MM, 30 * MM * y, x + 30 * MM * y, 15 * MM) == 0.0
    # two hands, one bone each: the right bone 15 mm above the left one, radii 10 mm -> 5 mm
    J = np.zeros((3, 2, 21, 3))
    J[:, 0, 1] = x
    J[:, 1, :, 1] = 15 * MM
    J[:, 1, 1] += x
    J[2, 1, :, 1] = 1.0  # last frame: apart
    depth = M.hand_penetration_depth(J, np.array([[0, 1]]), 10 * MM)
    assert depth == pytest.approx([5 * MM, 5 * MM, 0.0])
    s = M.penetration_summary(depth)
    assert s["pen_max_mm"] == pytest.approx(5.0) and s["pen_mean_mm"] == pytest.approx(10 / 3)
    assert s["pen_frac"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"\(T, 2, 21, 3\)"):
        M.hand_penetration_depth(J[:, 0], np.array([[0, 1]]), 0.01)


def test_bone_radii_from_the_default_hand_and_rest_clips():
    from engine.motion.clip import Clip
    r = physical.bone_radii() / MM
    assert r.shape == (20,) and (r > 3).all() and (r < 20).all()
    bone = {tuple(b): k for k, b in enumerate(physical.BONES)}
    for a, b, c in ((1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9)):  # fingers thin toward the tip
        assert r[bone[(a, b)]] > r[bone[(b, c)]]
    assert r[bone[(0, 4)]] > r[bone[(4, 5)]]  # palm thicker than a finger
    apart = Clip.rest(5, separation=0.3)
    assert physical.physical_metrics([apart])["pen_max_mm"] == 0.0
    same = Clip.rest(5, separation=0.0)  # both hands in one place
    m = physical.physical_metrics([same])
    assert m["pen_frac"] == 1.0 and m["pen_max_mm"] > 20


# --- joint limits -------------------------------------------------------------------------------
def test_limit_violations_known_excess():
    from engine.hands import default_hands_cpu
    from engine.hands.anatomy import frames_for, from_anatomical, limits_radians
    lo, hi = limits_radians()
    ang = torch.zeros(4, 2, 15, 3)  # (T, 2, 15, 3): rest pose, inside every limit
    ang[1, 1, 1, 2] = hi[1, 2] + np.radians(20)  # right index PIP bent 20 deg past its limit
    ang[3, 0, 12, 1] = lo[12, 1] - np.radians(10)  # left thumb CMC spread 10 deg past
    r = M.limit_violations(ang.numpy(), lo.numpy(), hi.numpy())
    assert r["limit_frac"] == pytest.approx(2 / (4 * 2 * 15)) and r["limit_excess_deg"] == pytest.approx(15, abs=1e-4)
    assert M.limit_violations(ang.numpy(), lo.numpy(), hi.numpy(), tol_deg=12)["limit_frac"] == pytest.approx(1 / 120)
    # the same through hand_pose (axis-angle) and the default hand's anatomical frames
    hands = default_hands_cpu()
    hp = np.stack([from_anatomical(ang[:, h], frames_for(hands.hand(h))).numpy() for h in range(2)], 1)
    r2 = physical.limit_violations(hp, np.zeros((2, 10)))
    assert r2["limit_frac"] == pytest.approx(r["limit_frac"]) and r2["limit_excess_deg"] == pytest.approx(15, abs=1e-3)


# --- constraint metrics -------------------------------------------------------------------------
def test_wrist_path_offset_by_3mm():
    T = 12
    path = np.zeros((T, 2, 3))
    path[:, 1, 0] = np.linspace(0, 0.2, T)
    wrists = path.copy()
    wrists[:, 1, 2] += 3 * MM
    wrists[:, 0] += 1.0  # left hand far away, but not pinned
    pinned = np.zeros((T, 2), bool)
    pinned[:, 1] = True
    r = M.wrist_path_error_mm(wrists, path, pinned)
    assert list(r) == ["right"] and r["right"]["frames"] == T
    assert r["right"]["mean_mm"] == pytest.approx(3.0) and r["right"]["max_mm"] == pytest.approx(3.0)
    wrists[5, 1, 2] += 7 * MM  # one frame off by 10 mm
    assert M.wrist_path_error_mm(wrists, path, pinned)["right"]["max_mm"] == pytest.approx(10.0)


def test_locked_channels_and_keyed_joints():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 2, 99))
    keep = np.zeros(x.shape, bool)
    keep[2, 0] = True
    target = np.where(keep, x + 1e-7, 5.0)
    assert M.locked_channel_error(x, target, keep) == pytest.approx(1e-7)
    assert M.locked_channel_error(x, target, np.zeros_like(keep)) == 0.0
    J = rng.normal(size=(6, 2, 21, 3))
    ref = J.copy()
    ref[2, 0] += [0.002, 0, 0]
    r = M.keyed_joint_error_mm(J, ref, keep.all(-1))
    assert r["mean_mm"] == pytest.approx(2.0) and r["max_mm"] == pytest.approx(2.0)
    assert np.isnan(M.keyed_joint_error_mm(J, ref, np.zeros((6, 2), bool))["mean_mm"])


def test_seam_spike_detected_at_boundaries_only():
    T = 60
    t = np.arange(T, dtype=float)[:, None, None]
    smooth = np.concatenate([1e-3 * np.sin(t / 5), 1e-3 * np.cos(t / 7), 5e-5 * t ** 2], -1) * np.ones((1, 21, 1))
    keep = np.zeros((T, 2, 99), bool)
    keep[:20] = True  # continue-style context: one boundary at frame 20
    keep[40:, 1, 96:] = True  # a wrist pin from frame 40
    assert M.keep_boundaries(keep) == [20, 40]
    assert M.keep_boundaries(np.ones((T, 2, 99), bool)) == []
    assert M.seam_spike_ratio(smooth, [20, 40]) < 2
    spiky = smooth.copy()
    spiky[21] += 0.01  # a 10 mm pop one frame after the seam
    assert M.seam_spike_ratio(spiky, [20]) > 10
    far = smooth.copy()
    far[30] += 0.01  # away from every boundary: not a seam spike
    assert M.seam_spike_ratio(far, [20, 40]) < 2
    assert np.isnan(M.seam_spike_ratio(smooth, []))
    assert M.seam_ratio(smooth, []) == 1.0  # the older helper keeps its meaning
    for b in ("frame", "window"):
        assert M.seam_spike_ratio(spiky, [20], baseline=b) > 10 and M.seam_spike_ratio(far, [20, 40], baseline=b) < 2
    # noisy motion with no seam at all: a 5-frame peak over the one-frame median is well above 1,
    # over the median 5-frame peak it is about 1
    noisy = np.cumsum(np.random.default_rng(0).normal(0, 1e-3, (T, 21, 3)), 0)
    assert M.seam_spike_ratio(noisy, [30]) > M.seam_spike_ratio(noisy, [30], baseline="window")
    assert 0.5 < M.seam_spike_ratio(noisy, [30], baseline="window") < 1.6
    with pytest.raises(ValueError, match="baseline"):
        M.seam_spike_ratio(noisy, [30], baseline="clip")
    # the absolute peak at the seam: the pop shows against the smooth clip's own peak there; a
    # calmer clip elsewhere does not change it (unlike the ratios, whose median it moves)
    assert M.seam_peak(spiky, [20]) > 10 * M.seam_peak(smooth, [20])
    calm_after = spiky.copy()
    calm_after[30:] = calm_after[29]
    assert M.seam_peak(calm_after, [20]) == M.seam_peak(spiky, [20])
    assert M.seam_spike_ratio(calm_after, [20], baseline="window") > M.seam_spike_ratio(spiky, [20], baseline="window")
    assert np.isnan(M.seam_peak(smooth, []))


# --- the constraint eval through the pipeline --------------------------------------------------
TINY = dict(frames=20, patch=2, d_model=32, layers=1, heads=2, ffn=64, dropout=0.0)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    from engine.data.corpus_build import build_corpus
    return build_corpus(20, 3, tmp_path_factory.mktemp("corpus") / "c", workers=1, shard_size=8)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """An untrained tiny denoiser (output layer not zero, so it moves) saved as a checkpoint."""
    from engine.diffusion.checkpoint import save_model
    from engine.diffusion.denoiser import Denoiser, DenoiserConfig
    torch.manual_seed(0)
    m = Denoiser(DenoiserConfig(**TINY))
    torch.nn.init.normal_(m.motion_out.weight, std=0.2)
    folder = tmp_path_factory.mktemp("model") / "tiny"
    save_model(folder, m.eval(), {"sampler_steps": 2})
    return folder


def test_constraint_eval_exact_on_an_untrained_model(corpus_dir, tiny_checkpoint):
    from engine.diffusion.pipeline import load_pipeline
    from engine.evaluation.constraint_eval import GROUND_TRUTH, KINDS, UNCONSTRAINED, evaluate_constraints_iter
    pipe = load_pipeline(tiny_checkpoint)
    items = list(evaluate_constraints_iter(corpus_dir, pipe, n=2, steps=2))
    progress, last = items[:-1], items[-1]
    assert last["done"] is True and last["n"] == 2 and len(progress) == 2 * (len(KINDS) + 1)
    rows = last["rows"]
    assert list(rows) == [*KINDS, UNCONSTRAINED, GROUND_TRUTH]
    for kind in KINDS:
        r = rows[kind]
        assert r["locked_max"] <= 1e-5, kind
        assert r["targets"]["locked"], kind
        for k in ("pen_mean_mm", "pen_max_mm", "pen_frac", "limit_frac", "limit_excess_deg"):
            assert np.isfinite(r[k]), (kind, k)
    for kind in ("keyframes", "inbetween", "lock_left", "continue"):
        assert rows[kind]["keyed_max_mm"] < 0.01, kind  # kept poses give the same joints (float32 FK)
    w = rows["wrist_path"]
    assert np.isfinite(w["wrist_mean_mm"]) and w["wrist_max_mm"] <= 5.0 and list(w["wrist"]) == ["right"]
    assert w["wrist"]["right"]["frames"] == 2 * 60 and "keyed_mean_mm" not in w
    assert "seam_ratio" not in rows["lock_left"]  # locked on every frame: no boundary in time
    assert np.isfinite(rows["inbetween"]["seam_ratio"]) and "seam" in rows["continue"]["targets"]
    assert np.isfinite(rows["continue"]["seam_ratio_gt"])  # the data's own ratio at the same frames
    assert np.isfinite(rows["continue"]["seam_w_ratio"]) and np.isfinite(rows["continue"]["seam_w_ratio_gt"])
    assert rows["continue"]["seam_vs_gt"] > 0 and 0 <= rows["continue"]["seam_vs_gt_over_1_5"] <= 1
    assert "locked_max" not in rows[GROUND_TRUTH] and rows[GROUND_TRUTH]["limit_frac"] >= 0
    for kind in (*KINDS, UNCONSTRAINED, GROUND_TRUTH):
        assert f"| {kind} |" in last["table"]
    json.dumps(rows)  # plain JSON for --json


def test_constraint_eval_bad_inputs(corpus_dir, tiny_checkpoint):
    from engine.diffusion.pipeline import load_pipeline
    from engine.evaluation.constraint_eval import constraints_for, evaluate_constraints_iter
    pipe = load_pipeline(tiny_checkpoint)
    with pytest.raises(ValueError, match="kind must be one of"):
        next(evaluate_constraints_iter(corpus_dir, pipe, n=1, kinds=("teleport",)))
    with pytest.raises(ValueError, match="needs more than 70"):
        next(evaluate_constraints_iter(corpus_dir, pipe, n=1, context=70))
    with pytest.raises(ValueError, match="kind must be one of"):
        constraints_for("teleport", None)


def test_cli_constraints_table_and_json(corpus_dir, tiny_checkpoint, tmp_path, capsys):
    from engine.cli import main
    out = tmp_path / "eval.json"
    assert main(["eval", "diffusion", "--data", str(corpus_dir), "--checkpoint", str(tiny_checkpoint), "--skip-main",
                 "--constraints", "--constraints-n", "1", "--steps", "1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| keyframes |" in text and "| Ground truth |" in text and "targets" in text
    data = json.loads(out.read_text())
    assert list(data) == ["constraints"] and data["constraints"]["keyframes"]["locked_max"] <= 1e-5
    assert main(["eval", "diffusion", "--data", str(corpus_dir), "--skip-main"]) == 2
    assert "--skip-main leaves nothing to do" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "diffusion", "--data", str(corpus_dir), "--steps-curve", "5,x"])
    assert "comma-separated step counts" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "diffusion", "--data", str(corpus_dir), "--guidance-curve", "2,-1"])
    assert "comma-separated guidance scales" in capsys.readouterr().err


def test_steps_curve_rows(tiny_checkpoint, monkeypatch):
    """Same prompts at each step count; R-precision needs 32 prompts, so the eval set is made here."""
    from engine.evaluation import run
    from engine.evaluation.evaluator import Evaluator, EvaluatorConfig
    from engine.motion.clip import Prompt
    torch.manual_seed(0)
    ev = Evaluator(EvaluatorConfig(d_model=32, layers=1, heads=2, emb=16)).eval()
    prompts = [Prompt(f"the {('left', 'right')[i % 2]} hand {('opens', 'closes', 'waves', 'taps')[i % 4]}")
               for i in range(32)]
    gt = np.random.default_rng(0).normal(0, 0.05, (32, 20, 2, 21, 3)).astype(np.float32)
    monkeypatch.setattr(run, "load_eval_set",
                        lambda data, n, evaluator=None, split="test", whole_only=False: (prompts, gt, ev))
    assert run.step_counts("1, 2") == [1, 2]
    items = list(run.steps_curve_iter("unused", [1, 2], model=tiny_checkpoint))
    last = items[-1]
    assert list(last["rows"]) == ["1", "2"] and len(items) == 2 * 32 + 1
    for r in last["rows"].values():
        assert set(r) == {"R@1", "R@2", "R@3", "FID", "MM-Dist", "Hand acc", "Speed", "s/clip"} and r["s/clip"] > 0
        assert 0 <= r["R@1"] <= r["R@2"] <= r["R@3"] <= 1
    assert last["table"].startswith("| steps | R@1")
    # the guidance sweep: same prompts, steps at the default; guidance 1 (conditional only) and
    # 3 give different motions, so their rows differ; the split reaches load_eval_set
    seen = []
    monkeypatch.setattr(run, "load_eval_set",
                        lambda data, n, evaluator=None, split="test", whole_only=False:
                        seen.append((split, whole_only)) or (prompts, gt, ev))
    last = list(run.sweep_iter("unused", "guidance", [1.0, 3.0], model=tiny_checkpoint, split="val",
                               whole_only=True))[-1]
    assert seen == [("val", True)] and list(last["rows"]) == ["1", "3"] and last["param"] == "guidance"
    assert last["rows"]["1"]["FID"] != last["rows"]["3"]["FID"]
    assert last["table"].startswith("| guidance | R@1")
    assert run.guidance_scales("1.5, 4") == [1.5, 4.0]
    with pytest.raises(ValueError, match="guidance-curve"):
        next(run.sweep_iter("unused", "guidance", [-1.0], model=tiny_checkpoint))
    with pytest.raises(ValueError, match="param must be"):
        next(run.sweep_iter("unused", "temperature", [1.0], model=tiny_checkpoint))
