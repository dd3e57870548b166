"""Issue 5's acceptance: each generated action's kinematic signature, measured by the HandX
feature module (not by the generator's own bookkeeping), and captions naming the right hand."""
import numpy as np
import pytest

from engine.data.captions import caption_clip
from engine.data.synth import make_action
from engine.motion.features import FLEXION_STATES, PALM_PROXIMITY_STATES, features_from_joints

FULLY_BENT = FLEXION_STATES.index("fully_bent")
CONTACT = 0  # index of "contact" in every contact state tuple
H = {"left": 0, "right": 1}


def features(name, hand="right", seed=0):
    clip, labels = make_action(name, hand=hand, seed=seed)
    return clip, labels, features_from_joints(clip.joints, clip.fps)


@pytest.mark.parametrize("hand", ["left", "right"])
def test_fist_reads_fully_bent_on_all_five_fingers(hand):
    _, _, f = features("fist", hand)
    bent = (f.flexion_state[:, H[hand]] == FULLY_BENT).all(-1)  # (T,) all five at once
    assert bent.any()
    assert not (f.flexion_state[:, 1 - H[hand]] == FULLY_BENT).all(-1).any()  # the idle hand does not


def test_clap_reads_palm_contact():
    _, labels, f = features("clap", "right")
    contact = f.palm_gap_state == PALM_PROXIMITY_STATES.index("contact")
    assert contact.any() and not contact.all()  # the palms meet and part again
    labelled = {f for a, b in labels[0]["contact_frames"] for f in range(a, b)}
    assert set(np.flatnonzero(contact)) & labelled


@pytest.mark.parametrize("hand", ["left", "right"])
def test_pinch_reads_thumb_index_contact(hand):
    _, _, f = features("pinch_index", hand)
    from engine.motion.features import TIP_PAIRS
    pair = TIP_PAIRS.index(("thumb", "index"))
    assert (f.tip_within_state[:, H[hand], pair] == CONTACT).any()


@pytest.mark.parametrize("hand", ["left", "right"])
def test_wave_reads_oscillation_of_that_hand(hand):
    """A wrist wave; the finger-style wave ('bye-bye') reads as repeated finger flexion instead."""
    seed = next(s for s in range(50) if make_action("wave", hand=hand, seed=s)[1][0]["params"]["style"] == "wrist")
    _, _, f = features("wave", hand, seed=seed)
    assert any(o.hand == H[hand] for o in f.oscillations)
    assert not any(o.hand == 1 - H[hand] for o in f.oscillations)


@pytest.mark.parametrize("name", ["fist", "point", "thumbs_up", "wave"])
def test_one_hand_actions_are_captioned_as_that_hand(name):
    for hand, other in (("left", "right"), ("right", "left")):
        clip, labels, _ = features(name, hand, seed=3)
        cap = caption_clip(clip, level=2, seed=0, actions=labels)
        assert cap[hand] and cap[hand] != cap[other]
        assert f"{hand} hand" in (cap["text"] + " " + cap["action"]).lower()
        assert f"{other} hand" not in cap["action"].lower()
