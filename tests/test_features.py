"""Kinematic features and events on hand-made clips with known motion (HandX appendix B)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from engine.hands import default_hands_cpu
from engine.hands.anatomy import frames_for, from_anatomical
from engine.hands.skeleton import FINGER_JOINTS, FINGERS
from engine.motion.clip import Clip
from engine.motion.events import events_to_json, runs_of, smooth_runs
from engine.motion.features import (FLEXION_STATES, PALM_ORIENTATION_STATES, TIP_PAIRS, TIP_PALM_STATES, classify,
                                    features_from_joints, kinematic_features)

# --- clip builders (also used by test_captions) ----------------------------------------------------

T = 60
_R_FRAMES = {}


def right_pose(bend_deg: dict[str, float]) -> np.ndarray:
    """A right-hand pose (45,) bending each given finger's three joints by the same angle (deg)."""
    if "f" not in _R_FRAMES:
        _R_FRAMES["f"] = frames_for(default_hands_cpu().right)
    ang = np.zeros((15, 3), np.float32)
    for f, deg in bend_deg.items():
        for j in FINGER_JOINTS[f][:3]:
            ang[j - 1, 2] = np.radians(deg)
    return from_anatomical(torch.from_numpy(ang), _R_FRAMES["f"]).numpy()


def mirror_pose(p: np.ndarray) -> np.ndarray:
    """Right -> left pose: negate y and z of every axis-angle (the contract in DESIGN.md)."""
    return (p.reshape(*p.shape[:-1], 15, 3) * np.array([1, -1, -1], np.float32)).reshape(p.shape)


def ramp(T: int, a: int, b: int) -> np.ndarray:
    """0 before frame a, 1 after frame b, smooth in between. (T,)"""
    x = np.clip((np.arange(T) - a) / max(b - a, 1), 0, 1)
    return x * x * (3 - 2 * x)


def fist_clip(hand: int = 0, deg: float = 80.0) -> Clip:
    """One hand (0 = left) curls all five fingers by ``deg`` at each joint over frames 15..35."""
    pose = right_pose({f: deg for f in FINGERS})
    pose = mirror_pose(pose) if hand == 0 else pose
    hp = np.zeros((T, 2, 45), np.float32)
    hp[:, hand] = ramp(T, 15, 35)[:, None] * pose[None]
    return Clip.rest(T).copy(hand_pose=hp)


def facing_clip(gaps: np.ndarray) -> Clip:
    """Palms facing each other (fingers forward, -Z), palm centres ``gaps`` (T,) metres apart along X."""
    R_r = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], float)  # fingers (-x) -> -z, palm (-y) -> -x
    M = np.diag([-1.0, 1, 1])
    n = len(gaps)
    go = np.zeros((n, 2, 3), np.float32)
    go[:, 0] = Rotation.from_matrix(M @ R_r @ M).as_rotvec()
    go[:, 1] = Rotation.from_matrix(R_r).as_rotvec()
    J = Clip(np.zeros((1, 2, 3)), go[:1], np.zeros((1, 2, 45))).joints[0]
    centre = J[:, [0, 13, 1, 4, 10, 7]].mean(1)  # (2, 3)
    transl = np.zeros((n, 2, 3), np.float32)
    for h, side in ((0, -1), (1, 1)):
        transl[:, h] = np.array([0.0, 0.1, -0.3]) - centre[h]
        transl[:, h, 0] += side * np.asarray(gaps) / 2
    return Clip(transl, go, np.zeros((n, 2, 45)))


def wave_clip(hz: float = 1.5, amp_deg: float = 25.0) -> Clip:
    """The right hand raised (fingers up, palm forward) rocking about the forward axis."""
    R = np.column_stack([[0, -1, 0], [0, 0, 1], [-1, 0, 0]]).astype(float)  # fingers -> +y, palm -> -z
    th = np.radians(amp_deg) * np.sin(2 * np.pi * hz * np.arange(T) / 30.0)
    go = np.zeros((T, 2, 3), np.float32)
    go[:, 1] = (Rotation.from_rotvec(np.outer(th, [0, 0, 1])) * Rotation.from_matrix(R)).as_rotvec()
    transl = np.zeros((T, 2, 3), np.float32)
    transl[:, 0, 0], transl[:, 1, 0] = -0.25, 0.1
    return Clip(transl, go, np.zeros((T, 2, 45)))


def move_right_clip(speed: float = 0.5) -> Clip:
    """The right wrist moves +X at ``speed`` m/s during frames 20..40, still otherwise."""
    c = Clip.rest(T)
    transl = c.transl.copy()
    t = np.clip(np.arange(T) - 20, 0, 20) / 30.0
    transl[:, 1, 0] += speed * t
    return c.copy(transl=transl)


def pinch_joints() -> np.ndarray:
    """Rest keypoints; the right thumb tip sits on the right index tip during frames 20..40. (T, 2, 21, 3)"""
    J = Clip.rest(T).joints.copy()
    J[20:41, 1, 16] = J[20:41, 1, 17] + np.array([0.0, -0.005, 0.0])
    return J


# --- features --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fist_left():
    return fist_clip(0)


def test_rest_fingers_are_fully_extended_and_palms_face_down():
    f = kinematic_features(Clip.rest(3))
    assert (f.flexion_state == FLEXION_STATES.index("extended")).all()
    assert np.abs(f.flexion).max() < 15
    # the palm normal points out of the palm: -y for both hands at rest (MANO's right hand: -y)
    assert np.allclose(f.palm_normal[0, :, 1], -1, atol=0.01)
    assert PALM_ORIENTATION_STATES[f.palm_orientation[0]] == "parallel"


@pytest.mark.parametrize("hand", [0, 1])
@pytest.mark.parametrize("deg,state", [(0, "extended"), (45, "partially_bent"), (80, "fully_bent"),
                                       (-25, "hyperextended")])
def test_flexion_of_an_anatomical_bend(hand, deg, state):
    """Bending each finger joint by ``deg`` reads as about ``deg`` of flexion, on either hand."""
    pose = right_pose({f: deg for f in ("index", "middle", "ring", "pinky")})
    hp = np.zeros((1, 2, 45), np.float32)
    hp[0, hand] = mirror_pose(pose) if hand == 0 else pose
    f = kinematic_features(Clip.rest(1).copy(hand_pose=hp))
    fingers = f.flexion[0, hand, 1:]
    assert np.allclose(fingers, deg, atol=6), fingers
    assert all(FLEXION_STATES[s] == state for s in f.flexion_state[0, hand, 1:])
    other = f.flexion_state[0, 1 - hand]
    assert (other == FLEXION_STATES.index("extended")).all()


def test_thumb_flexion_sign_on_both_hands():
    pose = right_pose({"thumb": 50})
    hp = np.stack([mirror_pose(pose), pose])[None]
    f = kinematic_features(Clip.rest(1).copy(hand_pose=hp))
    assert f.flexion[0, 0, 0] > 35 and f.flexion[0, 1, 0] > 35
    assert abs(f.flexion[0, 0, 0] - f.flexion[0, 1, 0]) < 1e-3


def test_classify_hysteresis_keeps_state_inside_the_band():
    v = np.array([10, 29, 31, 29, 31, 29, 40, 29, 20], float)
    s = classify(v, (30.0,), 4.0)
    assert s.tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 0]


def test_thumb_on_index_tip_is_contact():
    f = features_from_joints(pinch_joints(), 30.0)
    k = TIP_PAIRS.index(("thumb", "index"))
    assert np.allclose(f.tip_within[30, 1, k], 0.005, atol=1e-6)
    assert f.tip_within_state[30, 1, k] == 0 and f.tip_within_state[5, 1, k] == 1
    assert (f.tip_within_state[:, 0, k] == 1).all()  # the left hand never pinches
    doc = events_to_json(f)
    on = [e for e in doc["events"] if e["feature"] == "fingertip_contact" and e["type"] == "change"
          and e["to"] == "contact"]
    off = [e for e in doc["events"] if e["feature"] == "fingertip_contact" and e["type"] == "change"
           and e["from"] == "contact"]
    assert len(on) == 1 and len(off) == 1
    assert on[0]["hand"] == "right" and on[0]["pairs"] == [["thumb", "index"]]
    # an instantaneous step, seen through the 0.05 s smoothing: the change settles within ~5 frames
    assert 13 <= on[0]["start"] <= 20 <= on[0]["end"] <= 26 and 34 <= off[0]["start"] <= 41 <= off[0]["end"]


def test_palms_one_cm_apart_facing_is_palm_contact():
    f = kinematic_features(facing_clip(np.array([0.01, 0.15])))
    n = f.palm_normal[0]
    assert n[0, 0] > 0.95 and n[1, 0] < -0.95  # left palm looks right, right palm looks left
    assert PALM_ORIENTATION_STATES[f.palm_orientation[0]] == "facing"
    assert f.palm_gap[0] < 0.015 and f.palm_gap_state[0] == 0
    assert f.palm_gap[1] > 0.12 and f.palm_gap_state[1] == 2
    assert np.allclose(f.palm_offset[:, 0], [0.01, 0.15], atol=1e-3)


def test_fingertip_to_other_palm_distance():
    f = kinematic_features(facing_clip(np.array([0.10])))
    # fingertips run parallel to the other palm 10 cm away, past its edge: at least 10 cm from it
    assert ((f.tip_palm[0] > 0.095) & (f.tip_palm[0] < 0.16)).all()
    assert np.allclose(f.tip_palm[0, 0], f.tip_palm[0, 1], atol=1e-4)  # mirror-symmetric placement
    assert (f.tip_palm_state[0] == TIP_PALM_STATES.index("far")).all()


def test_wrist_moving_right_at_half_a_metre_per_second():
    c = move_right_clip(0.5)
    f = kinematic_features(c)
    assert np.allclose(f.wrist_velocity[30, 1], [0.5, 0, 0], atol=0.02)
    assert f.wrist_direction[30, 1].tolist() == [1, 0, 0]
    assert (f.wrist_direction[:, 0] == 0).all()
    doc = events_to_json(c)
    moves = [e for e in doc["events"] if e["type"] == "move"]
    assert len(moves) == 1
    m = moves[0]
    assert m["hand"] == "right" and m["directions"] == ["right"] and m["pace"] == "fast"
    assert abs(m["magnitude"] - 0.5 * 20 / 30) < 0.03 and abs(m["speed"] - 0.5) < 0.15
    assert 17 <= m["start"] <= 22 and 38 <= m["end"] <= 43
    still = [e for e in doc["events"] if e["feature"] == "wrist_motion" and e["type"] == "constant"]
    assert [e["hand"] for e in still] == ["left"]


def test_waving_is_a_rotation_oscillation():
    f = kinematic_features(wave_clip(hz=1.5, amp_deg=25))
    osc = [o for o in f.oscillations if o.hand == 1]
    assert osc and all(o.hand == 1 for o in f.oscillations)
    o = max(osc, key=lambda o: o.swings)
    assert o.kind == "rotation" and o.axis == "z" and o.swings >= 5
    assert 1.2 < o.frequency < 2.0 and 35 < o.amplitude < 55  # peak to peak of +-25 deg


def test_wrist_translation_oscillation():
    c = Clip.rest(T)
    transl = c.transl.copy()
    transl[:, 1, 0] += 0.04 * np.sin(2 * np.pi * 2.0 * np.arange(T) / 30)
    doc = events_to_json(c.copy(transl=transl))
    osc = [e for e in doc["events"] if e["type"] == "oscillation"]
    assert len(osc) == 1 and osc[0]["hand"] == "right" and osc[0]["kind"] == "translation"
    assert osc[0]["axis"] == "x" and osc[0]["swings"] >= 6 and abs(osc[0]["frequency"] - 2.0) < 0.4


def test_fist_events(fist_left):
    doc = events_to_json(fist_left)
    json.dumps(doc)  # plain JSON
    ev = doc["events"]
    assert [e["id"] for e in ev] == list(range(len(ev)))
    ch = [e for e in ev if e["feature"] == "finger_flexion" and e["type"] == "change"]
    assert len(ch) == 1, ch  # extended -> partially -> fully in one sweep is one change
    e = ch[0]
    assert e["hand"] == "left" and e["fingers"] == list(FINGERS)
    assert e["from"] == "extended" and e["to"] == "fully_bent"
    assert 12 <= e["start"] <= 17 and 33 <= e["end"] <= 38
    assert e["value_to"] > 70 and e["magnitude"] > 65
    hold = [x for x in ev if x["feature"] == "finger_flexion" and x["type"] == "hold" and x["state"] == "fully_bent"]
    assert hold and hold[0]["end"] == T - 1
    # the right hand does nothing: constant states only, and nothing about contact at all
    assert all(x["type"] == "constant" for x in ev if x["hand"] == "right")
    assert not [x for x in ev if "contact" in x["feature"] or x["feature"] == "fingertip_palm"]
    assert doc["summary"]["left"]["fingers_move"] and not doc["summary"]["right"]["fingers_move"]


def test_clap_events_count_two_palm_contacts():
    t = np.arange(T)
    gaps = 0.01 + 0.14 * (0.5 + 0.5 * np.cos(2 * np.pi * t / 30))  # palms meet at frames 15 and 45
    doc = events_to_json(facing_clip(gaps))
    on = [e for e in doc["events"] if e["feature"] == "palm_proximity" and e["type"] == "change"
          and e["to"] == "contact"]
    assert [e["end"] for e in on] == [pytest.approx(15, abs=3), pytest.approx(45, abs=3)]
    orient = [e for e in doc["events"] if e["feature"] == "palm_orientation"]
    assert [(e["type"], e["state"]) for e in orient] == [("constant", "facing")]
    assert doc["summary"]["contact_ratio"] > 0.1


def test_jitter_does_not_make_an_event_storm():
    rng = np.random.default_rng(0)
    J = Clip.rest(T).joints + rng.normal(0, 0.0015, (T, 2, 21, 3))
    doc = events_to_json(features_from_joints(J, 30.0))
    changes = [e for e in doc["events"] if e["type"] in ("change", "move", "oscillation", "turn")]
    assert len(changes) <= 2, changes


def test_smooth_runs_absorbs_short_runs():
    runs = runs_of(np.array([0] * 10 + [1] * 2 + [0] * 10 + [2] * 8))
    assert smooth_runs(runs, 3) == [[0, 0, 21], [2, 22, 29]]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="joints must have shape"):
        features_from_joints(np.zeros((5, 21, 3)), 30)
    with pytest.raises(ValueError, match="fps"):
        features_from_joints(np.zeros((5, 2, 21, 3)), 0)
    bad = np.zeros((5, 2, 21, 3))
    bad[1, 0, 3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        features_from_joints(bad, 30)


def test_one_frame_clip_works():
    doc = events_to_json(Clip.rest(1))
    assert doc["frames"] == 1 and all(e["type"] == "constant" for e in doc["events"])
