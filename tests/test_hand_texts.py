"""Which hand a text names: Left/Right fields derived from a whole-motion prompt, and the mirror
augmentation that trains the model on the mirror image of every window (hands, x and the words
"left"/"right" swapped together)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.diffusion.hand_texts import (clause_hands, clauses, derive_hand_texts, fill_hand_texts, mirror_text,
                                         separate_hands)
from engine.diffusion.representation import clip_to_tensor, keypoints_from_rep, mirror_keypoints, mirror_rep
from engine.motion.clip import Prompt
from test_diffusion import TINY, encoder, hands, random_clip, random_model, tiny_corpus  # noqa: F401 (fixtures)


# --- deriving Left/Right from the whole text ---------------------------------------------------
@pytest.mark.parametrize("text, left, right", [
    ("the right hand waves while the left hand holds still", "The left hand holds still.", "The right hand waves."),
    # "and" inside one hand's action does not split it; the leading connective goes
    ("the left hand pinches the thumb and middle finger together while the right hand waves",
     "The left hand pinches the thumb and middle finger together.", "The right hand waves."),
    # a both-hands clause goes to both, each one-hand clause only to its hand
    ("both hands clap, then the left hand makes a fist and the right hand points",
     "Both hands clap, then the left hand makes a fist.", "Both hands clap, and the right hand points."),
    ("left hand makes a fist, then the right hand points", "Left hand makes a fist.", "The right hand points."),
])
def test_derive_hand_texts(text, left, right):
    assert derive_hand_texts(text) == (left, right)


@pytest.mark.parametrize("text", [
    "make a fist", "right away, make a fist",  # no hand named ("right away" is not a hand)
    "wave with your right hand", "Someone shows a V sign with their left hand.",  # one hand: read as it is
    "clap both hands twice", "Someone first gives a clap and finally touches the thumb of their right hand to each fingertip",
])
def test_texts_without_a_part_for_each_hand_stay_whole(text):
    assert derive_hand_texts(text) == ("", "")


def test_clauses_and_their_hands():
    assert clause_hands("clap both hands twice") == {"left", "right"}
    assert clause_hands("the right palm turns") == {"right"} and clause_hands("right away") == set()
    assert clauses("a, b while c and then d.") == ["a,", "b", "while c", "and then d."]


def test_fill_keeps_what_the_user_wrote():
    p = fill_hand_texts(Prompt("the right hand waves while the left hand holds still", left="left fist"))
    assert p == Prompt("the right hand waves while the left hand holds still", "left fist", "The right hand waves.")
    full = Prompt("wave with the left hand", "a", "b")
    assert fill_hand_texts(full) is full
    assert fill_hand_texts(Prompt("", "", "wave")) == Prompt("", "", "wave")  # no whole text: nothing to derive


def test_pipeline_uses_derived_texts_and_can_be_switched_off(encoder, hands):
    from engine.diffusion.pipeline import DiffusionPipeline
    pipe = DiffusionPipeline(random_model(), encoder, hands, steps=3)
    text = "the right hand waves while the left hand holds still"
    derived = pipe.generate(text, frames=20, seed=3).joints
    explicit = pipe.generate(Prompt(text, "The left hand holds still.", "The right hand waves."), frames=20, seed=3).joints
    np.testing.assert_array_equal(derived, explicit)
    pipe.hand_texts = False
    assert not np.allclose(pipe.generate(text, frames=20, seed=3).joints, derived)


def test_separate_hands_only_when_each_hand_has_its_own_action():
    assert separate_hands(fill_hand_texts(Prompt("the right hand waves while the left hand makes a fist")))
    assert separate_hands(Prompt("", "The left hand stays still.", "The right hand closes into a fist."))
    assert separate_hands(Prompt("Someone pats with the left hand as they point with the right.", "The left hand pats.",
                                 "The right hand points."))
    # in sequence: the order is in the whole text, so the hands are not generated apart
    assert not separate_hands(fill_hand_texts(Prompt("the left hand makes a fist and then the right hand waves")))
    assert not separate_hands(Prompt("A performer closes their right hand into a fist.", "The left hand stays still.",
                                     "The right hand closes into a fist."))
    for left, right in (("The left hand claps.", "The right hand claps."),  # a two-hand action
                        ("The left hand moves toward the right hand.", "The right hand waves."),  # names the other
                        ("The left hand holds the other hand.", "The right hand waves."),
                        ("", "The right hand waves."),  # one field empty
                        ("Both hands open.", "The right hand waves.")):
        assert not separate_hands(Prompt("x", left, right)), (left, right)
    assert not separate_hands(Prompt("the right hand waves while the left hand makes a fist"))  # whole text alone


def test_pipeline_splits_hands_only_for_separate_actions(encoder, hands):
    """Each hand from its own text when the prompt gives each hand a separate action (the shipped
    model otherwise let "waves" open the other hand's fist); other prompts are sampled as before."""
    from engine.diffusion.pipeline import DiffusionPipeline
    pipe = DiffusionPipeline(random_model(), encoder, hands, steps=3)
    sep, joint = "the right hand waves while the left hand makes a fist", "clap both hands twice"
    on = [pipe.generate(t, frames=20, seed=3).joints for t in (sep, joint)]
    pipe.split_hands = False
    off = [pipe.generate(t, frames=20, seed=3).joints for t in (sep, joint)]
    assert not np.allclose(on[0], off[0]) and np.array_equal(on[1], off[1])


# --- mirror augmentation -----------------------------------------------------------------------
def test_mirror_text_swaps_sides_and_keeps_case():
    assert mirror_text("The Left hand moves right of the RIGHT one, leftover") == \
        "The Right hand moves left of the LEFT one, leftover"
    assert mirror_text(mirror_text("the left hand claps the right")) == "the left hand claps the right"


def test_mirror_rep_is_the_mirror_image_under_fk(hands):
    clip = random_clip(12, seed=4)
    x = clip_to_tensor(clip)[None].double().float()
    betas = torch.as_tensor(clip.betas)[None]
    j = keypoints_from_rep(hands, x, betas)
    jm = keypoints_from_rep(hands, mirror_rep(x), betas.flip(1))
    assert torch.allclose(jm, mirror_keypoints(j), atol=1e-5)
    assert torch.equal(mirror_rep(mirror_rep(x)), x)
    assert not torch.allclose(jm, j, atol=1e-3)


def test_dataset_mirrors_windows_and_captions(encoder, hands):
    from engine.training.train_diffusion import dataset_from_clips
    clips = tiny_corpus(4, T=20)
    ds = dataset_from_clips(clips, text_encoder=encoder, mirror=True)
    ds.compute_keypoints(hands)
    idx = torch.arange(4)
    plain = ds.batch(idx, torch.Generator().manual_seed(0))
    mirrored = ds.batch(idx, torch.Generator().manual_seed(0), p_mirror=1.0)
    assert torch.equal(mirrored["x"], mirror_rep(plain["x"]))
    assert torch.equal(mirrored["keypoints"], mirror_keypoints(plain["keypoints"]))
    assert torch.equal(mirrored["betas"], plain["betas"].flip(1))
    # clip 0 is "the left hand opens" in the whole and left fields; its mirror names the right hand in
    # the whole and right fields, and its left field is empty
    want, _ = encoder.encode(["the right hand opens"])
    n = int(mirrored["token_mask"][0, 0].sum())
    assert torch.allclose(mirrored["tokens"][0, 0, :n], want[0, :n]) and torch.equal(
        mirrored["tokens"][0, 2, :n], mirrored["tokens"][0, 0, :n])
    assert not mirrored["token_mask"][0, 1].any()
    with pytest.raises(ValueError, match="mirror=True"):
        dataset_from_clips(clips, text_encoder=encoder).batch(idx, torch.Generator(), p_mirror=0.5)


def test_training_with_mirror_loss_falls(encoder, hands, tmp_path):
    from engine.training.train_diffusion import TrainConfig, dataset_from_clips, train_iter
    ds = dataset_from_clips(tiny_corpus(32, T=20), text_encoder=encoder, mirror=True)
    cfg = TrainConfig(steps=30, batch=16, lr=3e-3, warmup=3, ckpt_every=10 ** 6, threads=1, device="cpu", p_mirror=0.5)
    total = [i["loss"]["total"] for i in train_iter(ds, tmp_path / "run", TINY, cfg, hands=hands)]
    assert np.mean(total[-5:]) < 0.8 * np.mean(total[:5])
