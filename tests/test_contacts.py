"""Named pinches: the prompt parser, the closing step on real FK, and its wiring through the
pipeline, the Studio, the CLI flag and the GUI plan."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.diffusion.contacts import CLOSED, Pinch, chain_tips, close_pinches, episode_weights, named_pinches
from engine.diffusion.representation import clip_to_tensor, tensor_to_clip
from engine.evaluation.metrics import thumb_gaps
from engine.hands.anatomy import anatomical_angles, frames_for, from_anatomical, limits_radians
from engine.motion.clip import Clip, Prompt


@pytest.fixture(scope="module")
def hands():
    from engine.hands import default_hands_cpu
    return default_hands_cpu()


@pytest.mark.parametrize("text, expected", [
    ("pinch the thumb and ring finger of your right hand", [Pinch(1, 3)]),
    ("Touch the left thumb to the left little fingertip.", [Pinch(0, 4)]),
    ("the left hand waves while the right hand pinches thumb and middle finger", [Pinch(1, 2)]),
    ("make an OK sign with the left hand", [Pinch(0, 1)]),
    ("forms a ring with the thumb and index finger of the right hand", [Pinch(1, 1)]),
    ("pinch with both hands, thumb to index", [Pinch(None, 1, True)]),
    ("pinch", [Pinch(None, 1)]),
    ("flicks a finger of their right hand", [Pinch(1, 1)]),  # the thumb holds the fingertip back
    ("the left hand writes with an imaginary pen", [Pinch(0, 1)]),  # a bare pinch is thumb to index, on the hand the motion picks
    ("brings the thumb and ring fingertip together and touches its index fingertip to the other hand",
     [Pinch(None, 3)]),  # the finger said with the thumb, not the later one
    ("wave with the left hand", []),
    ("clap both hands twice", []),
    ("give a thumbs up and touch the two index fingertips together", []),  # no thumb-to-tip contact
    ("move the thumb without touching the index finger", []),  # negated
    ("taps the thumb against each fingertip", []),  # in a 2 s take only some are reached: left alone
])
def test_named_pinches_parse(text, expected):
    assert named_pinches(text) == expected


def test_named_pinches_hand_fields_first():
    # the hand texts own their hand; the whole text is read only when they name no pinch
    p = Prompt("someone types with both hands and pinches with their left hand, thumb to ring finger",
               "the left hand brings the thumb and ring fingertip together", "the right hand types")
    assert named_pinches(p) == [Pinch(0, 3)]
    assert named_pinches(Prompt("pinch the thumb and middle finger of the right hand", "", "wave")) == [Pinch(1, 2)]
    assert named_pinches(Prompt("", "", "")) == []


def test_episode_weights():
    gap = np.array([0.05, 0.04, 0.03, 0.021, 0.02, 0.022, 0.03, 0.05, 0.06, 0.06, 0.06, 0.06, 0.06])
    w = episode_weights(gap, band=0.005, ramp=2)
    assert w.shape == gap.shape and w.max() == 1.0 and (w[3:6] == 1).all()  # within 5 mm of the minimum
    assert 0 < w[2] < 1 and 0 < w[6] < 1 and w[6] > w[7]  # smooth ramp out ...
    assert (w[9:] == 0).all()  # ... and zero beyond it


def test_chain_tips_match_full_fk(hands):
    """The lean chain FK the optimiser uses agrees with the hand model's full FK within 1 mm
    (the default hand skins its tips 98-100 % to the distal joint)."""
    from engine.diffusion.contacts import _chain
    from engine.hands.anatomy import rest_keypoints
    model = hands.hand(1)
    frames = frames_for(model).double()
    g = torch.Generator().manual_seed(0)
    lo, hi = limits_radians()
    ang = (lo + (hi - lo) * torch.rand(8, 15, 3, generator=g)).double()
    kp = model.keypoints(torch.zeros(8, 10), torch.zeros(8, 3), from_anatomical(ang, frames).float(), torch.zeros(8, 3))
    rest = rest_keypoints(model).double()
    for f in (1, 3):
        joints = _chain(0) + _chain(f)
        r = torch.stack([rest[[j + 1 for j in _chain(c)] + [16 + c]] for c in (0, f)])
        tips = chain_tips(ang[:, joints].reshape(8, 2, 3, 3), frames[joints].reshape(2, 3, 3, 3), r)
        err = (tips - kp[:, [16, 16 + f]].double()).norm(dim=-1)
        assert err.max() < 1e-3, (f, err.max())


def open_hands_clip(T: int = 30) -> Clip:
    """Both hands open and still, thumbs 3-6 cm from every fingertip."""
    tr = np.zeros((T, 2, 3), np.float32)
    tr[:, 0, 0], tr[:, 1, 0] = -0.15, 0.15
    go = np.tile(np.array([[0.2, -0.1, 0.3]], np.float32), (T, 2, 1))
    hp = np.zeros((T, 2, 45), np.float32)
    hp += np.linspace(0, 0.15, T, dtype=np.float32)[:, None, None]  # a little motion
    return Clip(tr, go, hp)


def test_close_pinches_closes_only_the_named_pinch(hands):
    clip = open_hands_clip()
    x = clip_to_tensor(clip)
    before = thumb_gaps(clip.joints)  # (T, 2, 4)
    assert before[:, 1, 2].min() > 0.03
    x2, reports = close_pinches(x, clip.betas, hands, [Pinch(1, 3)])
    assert torch.equal(x, clip_to_tensor(clip))  # the input is not changed
    out = tensor_to_clip(x2, clip.betas)
    after = thumb_gaps(out.joints)
    assert after[:, 1, 2].min() < 0.010 and reports == [
        {"hand": "right", "finger": "ring", "gap_before_mm": round(float(before[:, 1, 2].min() * 1000), 1),
         "gap_after_mm": round(float(after[:, 1, 2].min() * 1000), 1), "action": "closed"}]
    # only the right thumb's and ring finger's joints move; wrists, other fingers, the left hand stay
    changed = (x2 - x).abs().amax(0) > 1e-6  # (2, 99)
    thumb_ring = {13, 14, 15, 10, 11, 12}
    moved_joints = {j for j in range(16) if changed[1, 6 * j:6 * j + 6].any()}
    assert moved_joints and moved_joints <= thumb_ring
    assert not changed[0].any() and not changed[1, 96:].any()
    # inside the joint limits, and smooth in time (no frame-to-frame jump bigger than the ramp needs)
    lo, hi = (v.double() for v in limits_radians())
    frames = frames_for(hands.hand(1)).double()
    ang0 = anatomical_angles(torch.from_numpy(clip.hand_pose[:, 1]).double(), frames)
    ang = anatomical_angles(torch.from_numpy(out.hand_pose[:, 1]).double(), frames)
    outside = lambda a: (a - hi).clamp_min(0) + (lo - a).clamp_min(0)  # noqa: E731
    assert (outside(ang) <= outside(ang0) + 1e-6).all()  # no joint further outside its limits than before
    step = np.abs(np.diff(out.hand_pose[:, 1], axis=0)).max()
    assert step < 0.2


def test_close_pinches_leaves_closed_and_kept(hands):
    clip = open_hands_clip()
    x = clip_to_tensor(clip)
    # a pinch that is already closed is left as it is
    x2, _ = close_pinches(x, clip.betas, hands, [Pinch(1, 3)])
    x3, rep = close_pinches(x2, clip.betas, hands, [Pinch(1, 3)])
    assert torch.equal(x3, x2) and rep[0]["action"] == "already closed" and rep[0]["gap_before_mm"] <= CLOSED * 1000
    # kept channels (a locked right hand) are never changed
    keep = torch.zeros(x.shape, dtype=torch.bool)
    keep[:, 1] = True
    x4, rep = close_pinches(x, clip.betas, hands, [Pinch(1, 3)], keep)
    assert torch.equal(x4, x) and rep[0]["action"] == "kept"
    # keyframes on some frames: those frames stay exact, the others may close
    keep = torch.zeros(x.shape, dtype=torch.bool)
    keep[::5, 1] = True
    x5, rep = close_pinches(x, clip.betas, hands, [Pinch(1, 3)], keep)
    assert torch.equal(x5[keep], x[keep]) and rep[0]["action"] == "closed"
    # the hand left unsaid is the one already nearer that pinch
    _, rep = close_pinches(x2, clip.betas, hands, [Pinch(None, 3)])
    assert rep[0]["hand"] == "right"
    # both hands
    x6, rep = close_pinches(x, clip.betas, hands, [Pinch(None, 1, True)])
    assert [r["hand"] for r in rep] == ["left", "right"]
    assert thumb_gaps(tensor_to_clip(x6, clip.betas).joints)[:, :, 0].min(0).max() < 0.010


def _final(pipe, prompt, **kw) -> dict:
    """The last item of ``pipe.generate_iter`` (the finished take and its pinch reports)."""
    item = {}
    for item in pipe.generate_iter(prompt, preview=False, **kw):
        pass
    return item


def test_pipeline_closes_named_pinches(hands):
    from engine.diffusion.pipeline import DiffusionPipeline
    from engine.diffusion.text_encoder import shared_text_encoder
    from test_diffusion import random_model
    pipe = DiffusionPipeline(random_model(), shared_text_encoder(), hands, steps=2)
    prompt = Prompt("pinch the thumb and ring finger of the right hand together")
    on, off = (_final(pipe, prompt, frames=20, seed=3, close_pinches=c) for c in (None, False))
    assert off["pinches"] == [] and [r["finger"] for r in on["pinches"]] == ["ring"]
    gap_on, gap_off = (thumb_gaps(it["clip"].joints)[:, 1, 2].min() * 1000 for it in (on, off))
    rep = on["pinches"][0]
    assert abs(rep["gap_before_mm"] - gap_off) < 0.1 and abs(rep["gap_after_mm"] - gap_on) < 0.1
    assert gap_on < gap_off and rep["action"] in ("closed", "nearer")  # an untrained model's wild pose
    # the wrists and the left hand are the sampler's output; the right hand's other fingertips keep
    # their side of the 2 cm contact line on (almost) every frame
    for k in ("transl", "global_orient"):
        assert np.allclose(getattr(on["clip"], k), getattr(off["clip"], k), atol=1e-6)
    assert np.allclose(on["clip"].hand_pose[:, 0], off["clip"].hand_pose[:, 0], atol=1e-6)
    side_on, side_off = (thumb_gaps(it["clip"].joints)[:, 1, [0, 1, 3]] < 0.02 for it in (on, off))
    assert (side_on == side_off).mean() >= 0.95
    # over more seeds (an untrained model's wild poses put fingertips near the thumb): closing the
    # ring pinch adds or removes no other thumb contact (HandX's label: any frame within 2 cm). The
    # joint-limit step is off here: it leaves this model's wild fingers pinned at their limits, where
    # the little finger cannot follow the moving thumb (seed 1). On the shipped model's takes the
    # closure changes 3 of 240 other-finger labels with it and 2 of 240 without (40 test pinch prompts).
    for seed in range(4):
        on, off = (pipe.generate(prompt, frames=20, seed=seed, close_pinches=c, joint_limits=False)
                   for c in (True, False))
        lab_on, lab_off = (thumb_gaps(c.joints)[:, :, [0, 1, 3]].min(0) < 0.02 for c in (on, off))
        assert (lab_on == lab_off).all(), seed
    pipe.close_pinches = False  # the pipeline setting is the default
    assert _final(pipe, prompt, frames=20, seed=3)["pinches"] == []


def test_generation_plan_passes_close_pinches():
    from hand_studio.model.generation import GenerationOptions
    assert GenerationOptions().close_pinches is True


def test_shipped_model_little_pinch_adds_no_other_contact(studio):
    """The shipped model, "pinch the thumb and little finger": the little tip meets the thumb, and
    the ring fingertip - curled beside it in the sampled pose - keeps out of the thumb's 2 cm (without
    the side term this seed gains a thumb-ring contact the prompt never asked for)."""
    prompt = Prompt("pinch the thumb and little finger of the right hand together")
    on, off = (studio.generate(prompt, seed=0, close_pinches=c) for c in (True, False))
    g_on, g_off = thumb_gaps(on.joints).min(0), thumb_gaps(off.joints).min(0)  # (2, 4)
    assert g_on[1, 3] < 0.010 < g_off[1, 3]
    others = np.ones((2, 4), bool)
    others[1, 3] = False
    assert ((g_on < 0.02) == (g_off < 0.02))[others].all(), (g_on, g_off)


def tips_apart_joints(T: int = 6) -> np.ndarray:
    """Keypoints (T, 2, 21, 3) with every fingertip 10+ cm from its thumb tip."""
    j = np.zeros((T, 2, 21, 3), np.float32)
    j[:, :, 17:21, 0] = 0.1 * np.arange(1, 5)
    return j


def test_ground_pinches_corrects_finger_and_hand():
    from engine.diffusion.contacts import ground_pinches
    j = tips_apart_joints()
    j[:, 1, 19] = j[:, 1, 16] + 0.005  # the right thumb touches the ring fingertip
    text = "The person first mimes typing with both hands and finally pinches the thumb and little finger of their right hand together."
    fixed, changes = ground_pinches(text, j)
    assert fixed == text.replace("little", "ring") and changes == [
        {"clause": "pinches the thumb and little finger of their right hand together", "from": "little", "to": "ring"}]
    # the right finger on the wrong hand: the hands swap in that clause only
    text = "Someone waves their left hand, then makes a pinch with their left hand, thumb to ring finger."
    fixed, changes = ground_pinches(text, j)
    assert fixed == "Someone waves their left hand, then makes a pinch with their right hand, thumb to ring finger."
    assert changes[0]["from"] == "left" and changes[0]["to"] == "right"
    # a true pinch, a caption without one, and a pinch the clip does not have at all stay as said
    for text in ("The right hand pinches the thumb and ring finger together.", "The person claps twice.",
                 "The left hand makes a pinch, thumb to middle finger."):
        if "left" in text:
            j = tips_apart_joints()
        assert ground_pinches(text, j) == (text, [])


def test_clutch_caption_says_the_pinch_the_clip_makes(studio, hands, monkeypatch):
    """The shipped captioner's text goes through ground_pinches: a ring pinch the LM calls "little"
    comes out as "ring" (the LM's words are fixed here so the test does not hang on what it says)."""
    clip = open_hands_clip(30)
    x, rep = close_pinches(clip_to_tensor(clip), clip.betas, hands, [Pinch(1, 3)])
    assert rep[0]["action"] == "closed"
    clip = tensor_to_clip(x, clip.betas)
    pipe = studio.pipeline("clutch")
    said = "the person pinches the thumb and little finger of their right hand together."
    monkeypatch.setattr(pipe.vocab, "decode_text", lambda ids: said)
    assert studio.caption(clip) == "The person pinches the thumb and ring finger of their right hand together."
    monkeypatch.setattr(pipe, "ground_pinches", False)
    assert studio.caption(clip) == said[:1].upper() + said[1:]


def test_long_take_closes_pinches_window_by_window(hands):
    """A take longer than one window: the pinch is closed only in the windows whose prompt segment
    names it ("..., then ..."), each at its own closest approach; the rest of the take is the
    sampler's."""
    from engine.diffusion.pipeline import DiffusionPipeline, segment_prompts, window_starts
    from engine.diffusion.text_encoder import shared_text_encoder
    from test_diffusion import random_model
    pipe = DiffusionPipeline(random_model(), shared_text_encoder(), hands, steps=2)
    prompt = Prompt("pinch the thumb and ring finger of the right hand, then wave the left hand")
    starts = window_starts(40, 20, pipe.overlap)
    named = [bool(named_pinches(p)) for p in segment_prompts(prompt, len(starts))]
    assert named[0] and not named[-1]
    on, off = (_final(pipe, prompt, frames=40, seed=1, close_pinches=c) for c in (None, False))
    windows = [[s, s + 20] for s, n in zip(starts, named) if n]
    assert on["pinches"] and all(r["frames"] in windows for r in on["pinches"])
    untouched = max(e for _, e in windows)
    assert np.array_equal(on["clip"].hand_pose[untouched:], off["clip"].hand_pose[untouched:])
    # the change fades out over the frames the last pinching window shares with the next one: no step
    # where it ends (the windows' changes are cross-faded there)
    d = on["clip"].hand_pose[:, 1] - off["clip"].hand_pose[:, 1]
    fade = d[min(s for s in starts if s > windows[-1][0]) - 1:untouched + 1]
    assert np.abs(fade).max() > 0.05  # the pinch's change reaches into the shared frames
    assert np.abs(np.diff(fade, axis=0)).max() < 0.5 * np.abs(fade).max()
