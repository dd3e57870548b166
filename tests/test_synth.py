"""The procedural generator: valid clips, joint limits, determinism, and each action's kinematic
signature measured on ``clip.joints`` with plain geometry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.data.actions import ACTIONS
from engine.data.synth import generate_clip, make_action
from engine.hands import two_hand_keypoints
from engine.hands.anatomy import anatomical_angles, limits_radians
from engine.data.synth_kin import kin

TOL = np.radians(1.0)
MAX_SPEED = 3.0  # m/s, any keypoint, one action alone
MAX_SPEED_COMPOSED = 5.0  # m/s: squeezing three actions into 2 s makes some transitions brisk (p99 ~3.4)
PALM_SKIN = 0.015  # m from the palm's joint plane to its skin (synth_kin.PALM_HALF_THICKNESS)


def right_canonical_angles(clip) -> np.ndarray:
    """(T, 2, 15, 3) anatomical angles in the right hand's frames; the left hand is mirrored to a right
    one first (a mirrored pose negates y and z of each axis-angle)."""
    hp = clip.hand_pose.reshape(-1, 2, 15, 3).copy()
    hp[:, 0] *= np.array([1, -1, -1], np.float32)
    frames = torch.from_numpy(kin().frames)
    return anatomical_angles(torch.from_numpy(hp.reshape(-1, 2, 45)), frames).numpy()


def within_limits(clip) -> bool:
    lo, hi = (x.numpy() for x in limits_radians())
    a = right_canonical_angles(clip)
    return bool((a >= lo - TOL).all() and (a <= hi + TOL).all())


def max_speed(clip) -> float:
    return float(np.linalg.norm(np.diff(clip.joints, axis=0), axis=-1).max() * clip.fps)


def palm(kp: np.ndarray, right: bool):
    """Palm centre, outward normal (..., 3) from keypoints (..., 21, 3)."""
    c = kp[..., [0, 1, 4, 7, 10], :].mean(-2)
    n = np.cross(kp[..., 4, :] - kp[..., 0, :], kp[..., 10, :] - kp[..., 0, :]) * (1 if right else -1)
    return c, n / np.linalg.norm(n, axis=-1, keepdims=True)


def bends(kp: np.ndarray) -> np.ndarray:
    """Flexion (deg) at the PIP of index, middle, ring, pinky: angle between successive bones. (..., 4)."""
    out = []
    for a, b, c in ((1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9)):
        u, v = kp[..., b, :] - kp[..., a, :], kp[..., c, :] - kp[..., b, :]
        cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
        out.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.stack(out, -1)


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_action_is_valid(name):
    for hand in ("left", "right"):
        clip, labels = make_action(name, hand=hand, seed=3)
        assert clip.num_frames == 60 and np.isfinite(clip.joints).all()
        assert within_limits(clip), name
        assert max_speed(clip) < MAX_SPEED, (name, max_speed(clip))
        assert labels[0]["action"] == name
        assert labels[0]["hands"] == (hand if ACTIONS[name].hands == "one" else "both")


def test_stored_joints_match_the_default_hand():
    clip, _ = generate_clip(11)
    np.testing.assert_allclose(clip.joints, two_hand_keypoints(clip), atol=1e-5)


def test_deterministic_and_seeds_differ():
    a, la = generate_clip(7)
    b, lb = generate_clip(7)
    c, _ = generate_clip(8)
    np.testing.assert_array_equal(a.hand_pose, b.hand_pose)
    np.testing.assert_array_equal(a.transl, b.transl)
    assert la == lb
    assert np.abs(a.joints - c.joints).max() > 0.01


def test_composition_labels_are_inside_and_ordered():
    seen = set()
    for seed in range(40):
        n = 1 + seed % 3
        clip, labels = generate_clip(seed, frames=60 + 30 * (seed % 2), n_actions=n)
        T = clip.num_frames
        assert 1 <= len(labels) <= 3 and len(labels) == n
        starts = [l["start_frame"] for l in labels]
        assert starts == sorted(starts)
        for l in labels:
            assert 0 <= l["start_frame"] < l["end_frame"] <= T
            assert l["hands"] in ("left", "right", "both")
            seen.add(l["hands"])
        assert within_limits(clip) and max_speed(clip) < MAX_SPEED_COMPOSED and np.isfinite(clip.joints).all()
    assert seen == {"left", "right", "both"}


def test_any_length_and_fps():
    clip, labels = generate_clip(3, frames=200, fps=60)
    assert clip.num_frames == 200 and clip.fps == 60 and labels[-1]["end_frame"] <= 200
    with pytest.raises(ValueError, match="frames"):
        generate_clip(0, frames=2)


def test_fist_bends_every_finger():
    for hand in ("left", "right"):
        clip, _ = make_action("fist", hand=hand, seed=1)
        h = ("left", "right").index(hand)
        kp = clip.joints[-1, h]
        assert (bends(kp) > 60).all(), bends(kp)
        c, _ = palm(kp, hand == "right")
        assert (np.linalg.norm(kp[17:21] - c, axis=-1) < 0.07).all()  # fingertips near the palm


@pytest.mark.parametrize("finger", ["index", "middle", "ring", "pinky"])
def test_pinch_reaches_the_fingertip(finger):
    tip = {"index": 17, "middle": 18, "ring": 19, "pinky": 20}[finger]
    for seed, hand in ((0, "right"), (1, "left")):
        clip, _ = make_action(f"pinch_{finger}", hand=hand, seed=seed)
        h = ("left", "right").index(hand)
        d = np.linalg.norm(clip.joints[:, h, 16] - clip.joints[:, h, tip], axis=-1)
        assert d.min() < 0.01 and d[-1] < 0.01, d.min()


def test_ok_sign_ring():
    clip, _ = make_action("ok_sign", hand="right", seed=2)
    assert np.linalg.norm(clip.joints[-1, 1, 16] - clip.joints[-1, 1, 17]) < 0.01


def test_clap_palms_meet_and_face():
    for seed in range(3):
        clip, labels = make_action("clap", seed=seed, params=None)
        (l,) = labels
        kp = clip.joints
        cl, nl = palm(kp[:, 0], False)
        cr, nr = palm(kp[:, 1], True)
        gap = np.linalg.norm(cr - cl, axis=-1) - 2 * PALM_SKIN  # skin-to-skin along the centres
        contact = [f for s, e in l["contact_frames"] for f in range(s, e)]
        assert contact
        assert (np.abs(gap[contact]) < 0.01).all(), gap[contact]
        assert ((nl * nr).sum(-1)[contact] < -0.8).all()  # facing each other
        assert gap.max() > 0.05  # and they part between claps
        # the meshes touch without sinking into each other
        with torch.no_grad():
            from engine.hands import default_hands_cpu
            f = contact[0]
            v, _ = default_hands_cpu()(torch.from_numpy(clip.betas), torch.from_numpy(clip.global_orient[f:f + 1]),
                                       torch.from_numpy(clip.hand_pose[f:f + 1]), torch.from_numpy(clip.transl[f:f + 1]))
            d = torch.cdist(v[0][0], v[1][0]).min()
        assert d < 0.01


def test_tap_palm_touches_the_other_palm():
    clip, labels = make_action("tap_palm", hand="right", seed=4)
    kp = clip.joints
    c, n = palm(kp[:, 0], False)  # the left hand is tapped
    height = ((kp[:, 1, 17] - c) * n).sum(-1) - PALM_SKIN
    assert height.min() < 0.012 and height.max() > 0.02


def test_steeple_fingertips_touch():
    clip, _ = make_action("steeple", seed=5, params=None)
    d = np.linalg.norm(clip.joints[-1, 0, 17:21] - clip.joints[-1, 1, 17:21], axis=-1)
    assert np.median(d) < 0.02 and d.min() < 0.012, d


def test_wave_oscillates_laterally():
    for hand in ("left", "right"):
        p = ACTIONS["wave"].sample(np.random.default_rng(0))
        clip, _ = make_action("wave", hand=hand, seed=0, params={**p, "style": "wrist", "cycles": 3.0})
        h = ("left", "right").index(hand)
        x = clip.joints[20:, h, 18, 0]  # middle fingertip, left-right, after the hand is up
        t = np.arange(len(x))
        x = x - np.polyval(np.polyfit(t, x, 2), t)
        crossings = int((np.diff(np.sign(x)) != 0).sum())
        assert crossings >= 3 and np.ptp(x) > 0.03, (crossings, np.ptp(x))
        assert clip.joints[-1, h, 0, 1] > clip.joints[0, h, 0, 1] + 0.05  # raised


def test_one_hand_action_moves_only_that_hand():
    for hand in ("left", "right"):
        clip, _ = make_action("fist", hand=hand, seed=9)
        h = ("left", "right").index(hand)
        a = right_canonical_angles(clip)[..., 2]  # bends
        change = np.abs(a[-1] - a[0]).max(-1)  # per hand, radians
        assert change[h] > np.radians(40)
        assert change[1 - h] < np.radians(12)


def test_concurrent_program_makes_two_one_hand_actions_at_once():
    """``program="concurrent"`` (the training supplement for "the right hand waves while the left makes
    a fist"): two different one-hand actions, one per hand, overlapping as the captions' test for
    "together" reads it; valid clips, deterministic; the default program is unchanged by it."""
    from engine.data.captions import concurrent, normalise_actions

    sides = set()
    for seed in range(24):
        clip, labels = generate_clip(seed, program="concurrent")
        assert len(labels) == 2, labels
        a, b = labels
        assert ACTIONS[a["action"]].hands == ACTIONS[b["action"]].hands == "one"
        assert a["action"] != b["action"] and {a["hands"], b["hands"]} == {"left", "right"}
        assert concurrent(*normalise_actions(labels)), labels
        assert within_limits(clip) and max_speed(clip) < MAX_SPEED_COMPOSED and np.isfinite(clip.joints).all()
        sides.add(a["hands"])
    assert sides == {"left", "right"}
    again, _ = generate_clip(5, program="concurrent")
    np.testing.assert_array_equal(again.hand_pose, generate_clip(5, program="concurrent")[0].hand_pose)
    mixed, _ = generate_clip(5)
    np.testing.assert_array_equal(mixed.hand_pose, generate_clip(5, program="mixed")[0].hand_pose)
    with pytest.raises(ValueError, match="program must be one of"):
        generate_clip(5, program="sequential")
