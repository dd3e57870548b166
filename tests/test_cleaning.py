"""Cleaning real mocap: each step on noisy synthetic input, and the report of what it removed."""
import numpy as np
import pytest

from engine.data.cleaning import (CleaningConfig, clean_sequence, defective_frames, extract_windows,
                                  hand_intensity, jitter_score, smooth_clip, valid_intervals)
from engine.data.synth import generate_clip
from engine.motion.clip import Clip


def long_take(seed=1, frames=300) -> Clip:
    """A continuous generated take, longer than one training window."""
    return generate_clip(seed, frames=frames)[0]


def test_valid_intervals_and_windows_skip_defective_frames():
    bad = np.zeros(200, bool)
    bad[[70, 71, 150]] = True
    assert valid_intervals(bad) == [(0, 70), (72, 150), (151, 200)]
    assert extract_windows(bad, 60) == [(0, 60), (72, 132)]  # never across a bad frame, never overlapping


def test_defective_frames_catch_nan_and_teleports():
    c = generate_clip(0)[0]
    kp = c.joints.copy()
    kp[10, 0, 5] = np.nan
    kp[40:, 1] += 0.3  # the right hand jumps 30 cm between two frames
    bad = defective_frames(kp, 30.0)
    assert bad[10] and bad[11] and bad[40]
    assert bad.sum() == 3


def test_smoothing_removes_noise_and_keeps_motion():
    c = generate_clip(7)[0]
    rng = np.random.default_rng(0)
    noisy = c.copy(transl=c.transl + rng.normal(0, 0.006, c.transl.shape),
                   hand_pose=c.hand_pose + rng.normal(0, np.radians(4), c.hand_pose.shape))
    s = smooth_clip(noisy)
    err_noisy = np.linalg.norm(noisy.joints - c.joints, axis=-1).mean()
    err_smooth = np.linalg.norm(s.joints - c.joints, axis=-1).mean()
    assert err_smooth < 0.7 * err_noisy
    assert np.linalg.norm(smooth_clip(c).joints - c.joints, axis=-1).mean() < 2.5e-3  # clean motion barely moves


def test_jitter_score_flags_glitches_not_motion():
    c = generate_clip(3)[0]
    clean = jitter_score(c, smooth_clip(c))
    tr = c.transl.copy()
    tr[30, 1, 1] += 0.03  # a 3 cm one-frame glitch
    g = c.copy(transl=tr)
    glitch = jitter_score(g, smooth_clip(g))
    cfg = CleaningConfig()
    assert clean[0] < cfg.max_transl_accel < glitch[0]
    go = c.global_orient.copy()
    go[30, 0, 2] += np.radians(40)
    g = c.copy(global_orient=go)
    assert jitter_score(g, smooth_clip(g))[1] > cfg.max_rot_accel > clean[1]


def test_intensity_is_zero_for_static_hands_and_high_for_finger_motion():
    still = Clip.rest(60)
    assert np.allclose(hand_intensity(still.joints, 30.0), 0, atol=1e-3)
    moving = still.copy(hand_pose=np.repeat(np.sin(np.linspace(0, 6 * np.pi, 60))[:, None, None], 2, 1)
                        * np.full((60, 2, 45), 0.4, np.float32))
    assert (hand_intensity(moving.joints, 30.0) > 30).all()


def test_clean_sequence_reports_each_step():
    take = long_take()
    tr = take.transl.copy()
    tr[95, 0, 0] += 0.03  # glitch inside the second minute... second window
    hp = take.hand_pose.copy()
    hp[200:, :] = hp[199]  # the last 100 frames freeze: static, low intensity
    tr[200:] = tr[199]
    ga = take.global_orient.copy()
    ga[200:] = ga[199]
    take = take.copy(transl=tr, hand_pose=hp, global_orient=ga)
    bad = np.zeros(take.num_frames, bool)
    bad[250] = True  # an importer-flagged frame
    kept, rep = clean_sequence(take, bad=bad)
    assert rep.frames_in == 300 and rep.defective_frames == 1, rep
    assert rep.clips_extracted == 4  # 0..250 -> 4 windows, 251..300 -> too short
    assert rep.frames_outside_clips == 300 - 1 - 240
    assert rep.rejected_jitter >= 1 and rep.rejected_intensity >= 1
    assert rep.kept == len(kept) == rep.clips_extracted - rep.rejected_jitter - rep.rejected_intensity
    assert all(c.num_frames == 60 for c in kept)
    assert set(rep.to_dict()) >= {"defective_frames", "rejected_jitter", "rejected_intensity", "kept"}


@pytest.mark.parametrize("field,value", [("min_hand_intensity", 0.0), ("max_transl_accel", 1e9)])
def test_thresholds_are_configurable(field, value):
    take = long_take(8, 180)
    base = clean_sequence(take)[1]
    loose = clean_sequence(take, CleaningConfig(**{field: value, "min_avg_intensity": 0.0}))[1]
    assert loose.kept >= base.kept


@pytest.mark.parametrize("field,value,message", [
    ("max_speed", 0.0, r"max_speed must be > 0 \(a finite number, m/s\); got 0.0"),
    ("max_speed", float("inf"), r"max_speed must be > 0 \(a finite number"),
    ("savgol_window", 8, r"savgol_window must be 0 or an odd number above savgol_order \(3\)"),
    ("savgol_window", 3, r"savgol_window must be 0 or an odd number above savgol_order \(3\)"),
    ("savgol_window", -1, r"savgol_window must be >= 0 \(an integer"),
    ("savgol_order", 2.5, r"savgol_order must be >= 0 \(an integer"),
    ("gauss_sigma", -0.1, r"gauss_sigma must be >= 0 \(a finite number, frames"),
    ("clip_length", 7, r"clip_length must be >= 8 \(an integer, frames\); got 7"),
    ("clip_length", 60.0, r"clip_length must be >= 8 \(an integer"),
    ("max_transl_accel", float("nan"), r"max_transl_accel must be >= 0"),
    ("max_rot_accel", -1.0, r"max_rot_accel must be >= 0 \(a finite number, deg/s\^2\)"),
    ("min_hand_intensity", -1, r"min_hand_intensity must be >= 0"),
    ("min_avg_intensity", True, r"min_avg_intensity must be >= 0"),
    ("min_avg_intensity", "30", r"min_avg_intensity must be >= 0"),
])
def test_config_rejects_out_of_range_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        CleaningConfig(**{field: value})
    from dataclasses import replace
    with pytest.raises(ValueError, match=message):  # replace() checks too
        replace(CleaningConfig(), **{field: value})


def test_config_accepts_its_bounds_and_checks_every_field():
    from dataclasses import fields

    from engine.data.cleaning import _CLEANING_RANGES
    assert [f.name for f in fields(CleaningConfig)] == list(_CLEANING_RANGES)  # a new field needs a range
    CleaningConfig(savgol_window=0, savgol_order=0, gauss_sigma=0.0, clip_length=8, max_transl_accel=0.0,
                   max_rot_accel=0, min_hand_intensity=0, min_avg_intensity=0.0, max_speed=1e-3)
    CleaningConfig(savgol_window=5, savgol_order=4, max_transl_accel=1e9, clip_length=np.int64(60))
