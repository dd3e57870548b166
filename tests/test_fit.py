"""Keypoints -> MANO parameters: exact on FK-made poses, robust to noise, clear on bad input."""
import numpy as np
import pytest
import torch

from engine.hands import load_hands
from engine.hands.anatomy import anatomical_angles, frames_for, limits_radians
from engine.hands.fit import FitConfig, fit_keypoints, fit_keypoints_iter, kabsch
from engine.hands.ik_bench import plausible_motion, run_ik_bench
from engine.motion.clip import ClipError
from engine.motion.rotations import axis_angle_to_matrix


@pytest.fixture(scope="module")
def hands():
    return load_hands("default")


def test_kabsch_recovers_a_rigid_motion():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(4, 6, 3, generator=g)
    R = axis_angle_to_matrix(torch.randn(4, 3, generator=g))
    t = torch.randn(4, 3, generator=g)
    dst = src @ R.transpose(1, 2) + t[:, None]
    R2, t2 = kabsch(src, dst)
    assert torch.allclose(R2, R, atol=1e-5) and torch.allclose(t2, t, atol=1e-5)


def test_plausible_poses_are_inside_the_limits(hands):
    _, params = plausible_motion(hands, 30, seed=3)
    lo, hi = limits_radians()
    for h, model in enumerate((hands.left, hands.right)):
        ang = anatomical_angles(torch.from_numpy(params["hand_pose"][:, h]), frames_for(model))
        assert (ang >= lo - 1e-5).all() and (ang <= hi + 1e-5).all()


def test_fit_is_exact_on_fk_made_poses(hands):
    kp, params = plausible_motion(hands, 60, seed=7)
    clip = fit_keypoints(kp, hands)
    err = np.linalg.norm(clip.joints - kp, axis=-1)
    assert err.mean() < 0.5e-3 and err.max() < 2e-3  # metres
    assert clip.num_frames == 60 and clip.fps == 30
    # the global rotation and translation are identifiable from joints alone
    assert np.abs(clip.global_orient - params["global_orient"]).max() < 0.01
    assert np.abs(clip.transl - params["transl"]).max() < 1e-3


def test_fit_with_noise_stays_near_the_noise_level_and_prior_holds(hands):
    kp, _ = plausible_motion(hands, 40, seed=11)
    noisy = kp + np.random.default_rng(0).normal(0, 0.002, kp.shape).astype(np.float32)
    steps = list(fit_keypoints_iter(noisy, hands, config=FitConfig(iterations=20)))
    assert [s["step"] for s in steps[:-1]] == list(range(1, 21))
    losses = [s["loss"] for s in steps[:-1]]
    assert losses[-1] < losses[0]
    clip = steps[-1]["clip"]
    err = np.linalg.norm(clip.joints - kp, axis=-1).mean()
    assert err < 3.5e-3  # per-point noise is ~3.5 mm; the fit must not add to it
    lo, hi = limits_radians()
    for h, model in enumerate((hands.left, hands.right)):
        ang = anatomical_angles(torch.from_numpy(clip.hand_pose[:, h]), frames_for(model))
        assert ((lo - ang).clamp_min(0) + (ang - hi).clamp_min(0)).max() < np.radians(10)


def test_fit_recovers_hand_size(hands):
    betas = torch.zeros(2, 10)
    betas[:, 0] = 3.0  # 15 % larger
    with torch.no_grad():
        kp = hands.joints(betas, torch.zeros(5, 2, 3), torch.zeros(5, 2, 45), torch.zeros(5, 2, 3)).numpy()
    clip = fit_keypoints(kp, hands)
    assert np.allclose(clip.betas[:, 0], 3.0, atol=0.2)
    assert np.linalg.norm(clip.joints - kp, axis=-1).mean() < 1e-3


@pytest.mark.parametrize("bad,needle", [
    (np.zeros((10, 21, 3)), "(T, 2, 21, 3)"),
    (np.full((3, 2, 21, 3), np.nan), "finite"),
    (np.zeros((0, 2, 21, 3)), "at least one frame"),
])
def test_bad_keypoints_are_refused(hands, bad, needle):
    with pytest.raises(ClipError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        fit_keypoints(bad, hands)


def test_ik_benchmark_reports_its_numbers(hands, capsys):
    """The README's IK target: 60 frames, 2 hands, <= 1 s on 2 cores, <= 3 mm. Printed, not timed."""
    res = run_ik_bench(hands, frames=60, repeats=1)
    print("IK benchmark:", res)
    assert res["mean_joint_error_mm"] <= 3.0


def test_anatomical_angles_are_mirror_invariant(hands):
    g = torch.Generator().manual_seed(5)
    hp_r = 0.5 * torch.randn(20, 45, generator=g)
    hp_l = (hp_r.reshape(20, 15, 3) * torch.tensor([1.0, -1.0, -1.0])).reshape(20, 45)
    a_r = anatomical_angles(hp_r, frames_for(hands.right))
    a_l = anatomical_angles(hp_l, frames_for(hands.left))
    assert torch.allclose(a_r, a_l, atol=1e-5)


def test_positive_bend_flexes_every_finger_on_both_hands(hands):
    """The thumb included: a positive bend moves each tip toward the palm side of the hand."""
    from engine.hands.skeleton import FINGER_JOINTS
    for h, model in enumerate((hands.left, hands.right)):
        F = frames_for(model)
        rest = hands.joints(torch.zeros(2, 10), torch.zeros(1, 2, 3), torch.zeros(1, 2, 45), torch.zeros(1, 2, 3))[0, h]
        for finger, (j1, j2, j3, tip) in FINGER_JOINTS.items():
            ang = torch.zeros(1, 15, 3)
            ang[0, j3 - 1, 2] = 1.0  # distal joint bends 57 degrees
            hp = torch.zeros(1, 2, 45)
            hp[:, h] = (F @ ang[..., None])[..., 0].reshape(1, 45)
            with torch.no_grad():
                kp = hands.joints(torch.zeros(2, 10), torch.zeros(1, 2, 3), hp, torch.zeros(1, 2, 3))[0, h]
            assert (kp[tip] - rest[tip])[1] < -0.005, (h, finger)  # palm faces -y at rest
