"""CLUTCH evaluation: the caption metrics on hand-computed examples, and `eval clutch` end to end
on a tiny untrained SHIFT + LM, a tiny untrained evaluator and a 10-clip corpus."""
from __future__ import annotations

import argparse
import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from engine.clutch.text_metrics import (caption_scores, closest_length, corpus_bleu, lcs_length,  # noqa: E402
                                        rouge_l, tokenize)

F_BETA = 1.2 ** 2


# --- text metrics --------------------------------------------------------------------------------
def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("The hand, waves.") == ["the", "hand", ",", "waves", "."]
    assert tokenize("  ") == []
    with pytest.raises(ValueError, match="str"):
        tokenize(None)


def test_identical_captions_score_one():
    hyp = ["The left hand waves twice.", "Both hands clap"]
    refs = [["the left hand waves twice ."], ["a different text", "both hands clap"]]
    s = caption_scores(hyp, refs)
    assert s == {"BLEU-1": 1.0, "BLEU-4": 1.0, "ROUGE-L": 1.0}


def test_bleu_hand_computed():
    """hyp "the hand waves" vs ref "the left hand waves": unigrams 3/3 match, bigrams 1/2 ("hand
    waves"), trigrams 0/1; c = 3 < r = 4 -> BP = exp(1 - 4/3). BLEU-1 = exp(-1/3) = 0.7165,
    BLEU-4 = 0 (a zero precision, no smoothing)."""
    assert corpus_bleu(["the hand waves"], [["the left hand waves"]], 1) == pytest.approx(math.exp(-1 / 3))
    assert corpus_bleu(["the hand waves"], [["the left hand waves"]], 4) == 0.0
    # "the left hand waves up" vs "... down": p1..p4 = 4/5, 3/4, 2/3, 1/2; product 0.2; c = r -> BP 1
    assert corpus_bleu(["the left hand waves up"], [["the left hand waves down"]]) == pytest.approx(0.2 ** 0.25)
    # clipping: "the" x4 against a reference with one "the" -> p1 = 1/4; c = 4 > r = 2 -> BP 1
    assert corpus_bleu(["the the the the"], [["the cat"]], 1) == pytest.approx(0.25)


def test_bleu_uses_closest_reference_and_pools_the_corpus():
    """Closest length: hyp 5 tokens, refs 6 and 9 -> r = 6, BP = exp(1 - 6/5); unigrams all match.
    Ties go to the shorter reference. Corpus pooling: hyp 1 matches 4/4 unigrams, hyp 2 0/2 ->
    p1 = 4/6 (not the 0.5 mean of sentence scores); c = r = 6."""
    assert closest_length(5, [3, 7]) == 3 and closest_length(5, [9, 6]) == 6
    hyp = "a b c d e"
    refs = [["a b c d e f", "a b c d e f g h i"]]
    assert corpus_bleu([hyp], refs, 1) == pytest.approx(math.exp(-0.2))
    assert corpus_bleu(["the left hand waves", "a cat"], [["the left hand waves"], ["the dog"]], 1) == \
        pytest.approx(4 / 6)


def test_rouge_l_hand_computed():
    """"the hand waves" vs "the left hand waves": LCS 3, P = 1, R = 3/4,
    F = 2.44 * 0.75 / (0.75 + 1.44) = 0.83562. Two references: the best sentence F counts.
    Corpus score = mean of sentence scores: (0.83562 + 0) / 2."""
    f = (1 + F_BETA) * 1 * 0.75 / (0.75 + F_BETA * 1)
    assert lcs_length("a b c d".split(), "a x c y d".split()) == 3
    assert rouge_l(["the hand waves"], [["the left hand waves"]]) == pytest.approx(f)
    assert rouge_l(["the hand waves"], [["nothing alike", "the left hand waves"]]) == pytest.approx(f)
    assert rouge_l(["the hand waves", "zzz"], [["the left hand waves"], ["the dog"]]) == pytest.approx(f / 2)
    # best F over references, not best P with best R: refs "a b" (F 0.709) and "a b c d e f g h" (F 0.629)
    f1 = (1 + F_BETA) * 0.5 * 1 / (1 + F_BETA * 0.5)
    assert rouge_l(["a b c d"], [["a b", "a b c d e f g h"]]) == pytest.approx(f1)
    assert rouge_l([""], [["a b"]]) == 0.0 and corpus_bleu([""], [["a b"]]) == 0.0


def test_text_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="one reference list per hypothesis"):
        corpus_bleu(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match=r"references\[0\]"):
        rouge_l(["a"], [[]])
    with pytest.raises(ValueError, match=r"references\[0\]"):
        corpus_bleu(["a"], ["a"])
    with pytest.raises(ValueError, match="max_n"):
        corpus_bleu(["a"], [["a"]], 0)
    with pytest.raises(ValueError, match="no hypotheses"):
        caption_scores([], [])


def test_fit_window_keeps_the_longest_fitting_word_prefix():
    from engine.clutch.eval_run import fit_window
    count = lambda t: len(t.split()) + 2  # noqa: E731  ([CLS] + words + [SEP])
    assert fit_window("a b c", count, 5) == ("a b c", False)
    assert fit_window("a b c d e f", count, 5) == ("a b c", True)
    assert fit_window("a b", count, 1) == ("", True)


# --- end to end -------------------------------------------------------------------------------
N_TEST = 8


def _caption(labels) -> str:
    if not labels:
        return "the hands rest"
    a = labels[0]
    hand = "both hands" if a["hands"] == "both" else f"the {a['lead']} hand"
    return f"{hand} {a['action'].replace('_', ' ')}"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    from engine.threads import torch_threads
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def clips():
    from engine.data.synth import generate_clip
    return [generate_clip(s) for s in range(N_TEST + 2)]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, clips):
    """10 synthetic clips in the corpus layout: 2 train, 8 test; five caption levels each."""
    from engine.data.corpus import clip_id
    root = tmp_path_factory.mktemp("corpus")
    (root / "shards").mkdir()
    arrays = {k: np.stack([getattr(c, k) for c, _ in clips]).astype(np.float32)
              for k in ("transl", "global_orient", "hand_pose", "betas")}
    arrays["joints"] = np.stack([c.joints for c, _ in clips]).astype(np.float16)
    np.savez(root / "shards" / "000.npz", **arrays)
    splits = ["train"] * 2 + ["test"] * N_TEST
    with open(root / "index.jsonl", "w") as f:
        for i, (c, labels) in enumerate(clips):
            cap = _caption(labels)
            texts = [{"level": lv, "text": cap if lv == 1 else f"{cap}, level {lv}.", "left": "",
                      "right": "the right hand moves" if lv == 1 else ""}
                     for lv in range(1, 6)]
            f.write(json.dumps({"id": clip_id(i), "shard": 0, "row": i, "split": splits[i], "texts": texts,
                                "action": cap, "actions": [], "events": {}, "event_types": [], "source": "test"}) + "\n")
    meta = {"format_version": 1, "kind": "hand-studio-corpus", "n": len(clips), "frames": 60, "fps": 30, "seed": 0,
            "source": "test", "splits": {"train": 2, "val": 0, "test": N_TEST}, "shards": ["shards/000.npz"]}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory, clips):
    """Untrained tiny SHIFT + two tiny LMs (plain and instruct prompt style), saved as a CLUTCH
    model folder (shift/ + lm/) and a second LM folder; and a tiny untrained evaluator."""
    from engine.clutch.language_model import LMConfig, MotionLM, save_lm
    from engine.clutch.shift import ShiftConfig, ShiftTokenizer, save_shift
    from engine.clutch.vocab import MotionVocab, build_vocab
    from engine.diffusion.representation import clip_to_tensor
    from engine.evaluation.evaluator import Evaluator, EvaluatorConfig, save_evaluator
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    shift_cfg = ShiftConfig(codebook_size=16, code_dim=8, width=16, res_blocks=1)
    shift = ShiftTokenizer(shift_cfg)
    shift.set_stats(torch.stack([clip_to_tensor(c) for c, _ in clips]))
    save_shift(root / "clutch" / "shift", shift)
    vocab = MotionVocab(build_vocab([_caption(l) for _, l in clips] + ["describe this hand motion"], margin=20),
                        shift_cfg.codebook_size)
    lm_cfg = LMConfig(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4, dropout=0.0,
                      max_text_tokens=12)
    save_lm(root / "clutch" / "lm", MotionLM(lm_cfg, vocab), {"stage": "pretrain", "prompt_style": "plain"})
    save_lm(root / "lm_ift", MotionLM(lm_cfg, vocab), {"stage": "instruct", "prompt_style": "instruct"})
    ev = Evaluator(EvaluatorConfig(d_model=32, layers=1, heads=2, emb=16))
    save_evaluator(root / "evaluator", ev)
    return root


def test_evaluate_clutch_end_to_end(corpus_dir, model_dirs):
    from engine.clutch.eval_run import clutch_test_set, evaluate_clutch, report, table6
    from engine.clutch.pipeline import load_clutch
    from engine.evaluation.evaluator import load_evaluator
    pipe = load_clutch(model_dirs / "clutch")
    ev = load_evaluator(model_dirs / "evaluator")
    test = clutch_test_set(corpus_dir, n=N_TEST, pool=4)
    assert len(test) == N_TEST and test.frames == 60 and len(test.references[0]) == 5
    assert test.gt_captions[0] == test.references[0][0] and test.prompts[0].right == "the right hand moves"
    gen = evaluate_clutch(pipe, test, ev, n=N_TEST, seed=0, pool=4)
    progress = []
    while True:
        try:
            progress.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert [p["stage"] for p in progress] == ["caption"] * N_TEST + ["generate"] * N_TEST
    assert progress[-1] == {"stage": "generate", "done": N_TEST, "of": N_TEST}
    assert set(result) >= {"t2m", "m2t", "ground_truth", "samples", "n", "pool", "seed", "m2t_failures"}
    assert result["n"] == N_TEST and result["prompt_style"] == "plain" and result["m2t"]["captions_cut"] == 0
    assert all(isinstance(s["caption"], str) for s in result["samples"]) and len(result["samples"]) == N_TEST
    for row in (result["m2t"], result["ground_truth"]["m2t"]):
        for k in ("R@1", "R@2", "R@3") + (("BLEU-1", "BLEU-4", "ROUGE-L") if row is result["m2t"] else ()):
            assert 0.0 <= row[k] <= 1.0, (k, row[k])
        assert row["R@1"] <= row["R@2"] <= row["R@3"]
    for row in (result["t2m"], result["ground_truth"]["t2m"]):
        assert set(row) >= {"R@1", "R@2", "R@3", "FID", "KID", "MM-Dist", "Diversity"}
        assert all(0.0 <= row[k] <= 1.0 for k in ("R@1", "R@2", "R@3"))
        assert row["MM-Dist"] >= 0 and row["Diversity"] >= 0 and row["Speed"] > 0
    assert result["ground_truth"]["t2m"]["Speed"] == 1.0
    t6 = table6({"PT only": result, "PT + IFT": result})
    lines = t6.splitlines()
    assert lines[0].startswith("| Method | T2M R@3 | T2M KID | M2T R@3 | M2T BLEU-1 | M2T BLEU-4")
    assert [l.split(" | ")[0] for l in lines[2:]] == ["| Ground truth", "| PT only", "| PT + IFT"]
    assert lines[2].split(" | ")[4] == "-"  # no BLEU for the ground truth
    assert "Text -> motion" in report({"PT only": result})
    with pytest.raises(ValueError, match="pools of 32"):
        next(evaluate_clutch(pipe, test, ev, n=N_TEST, pool=32))


def _args(**kw):
    from engine.clutch.eval_run import add_eval_clutch_arguments
    p = argparse.ArgumentParser()
    add_eval_clutch_arguments(p)
    argv = []
    for k, v in kw.items():
        for x in (v if isinstance(v, list) else [v]):
            argv += [f"--{k}", str(x)]
    return p.parse_args(argv)


def test_run_eval_clutch_cli(corpus_dir, model_dirs, tmp_path, capsys):
    from engine.clutch.eval_run import run_eval_clutch
    out = tmp_path / "rows.json"
    variants = [f"PT only={model_dirs / 'clutch' / 'lm'}", f"PT + IFT={model_dirs / 'lm_ift'}"]
    args = _args(data=corpus_dir, variant=variants,
                 shift=model_dirs / "clutch" / "shift", evaluator=model_dirs / "evaluator", n=N_TEST, pool=4,
                 json=out, candidates=2, **{"caption-candidates": 2})
    assert args.clutch_model is None and args.threads == 1
    assert run_eval_clutch(args) == 0
    text = capsys.readouterr().out
    assert "| PT only |" in text and "| PT + IFT |" in text and "| Ground truth |" in text
    assert "PT + IFT: instruct" in text
    rows = json.loads(out.read_text())
    assert set(rows["rows"]) == {"PT only", "PT + IFT"} and rows["n"] == N_TEST


def test_run_eval_clutch_errors(corpus_dir, model_dirs, tmp_path):
    from engine.clutch.eval_run import run_eval_clutch
    ev = model_dirs / "evaluator"
    with pytest.raises(FileNotFoundError, match="no CLUTCH model folder"):
        run_eval_clutch(_args(data=corpus_dir, model=tmp_path / "missing", evaluator=ev))
    with pytest.raises(FileNotFoundError, match="not a CLUTCH language model folder"):
        run_eval_clutch(_args(data=corpus_dir, model=model_dirs, evaluator=ev))  # no lm/ directly under it
    with pytest.raises(ValueError, match="needs --shift"):
        run_eval_clutch(_args(data=corpus_dir, variant=f"a={model_dirs / 'lm_ift'}", evaluator=ev))
    with pytest.raises(ValueError, match="NAME=LM_FOLDER"):
        run_eval_clutch(_args(data=corpus_dir, variant="nolm", shift=model_dirs / "clutch" / "shift", evaluator=ev))
    with pytest.raises(FileNotFoundError, match="language model"):
        run_eval_clutch(_args(data=corpus_dir, variant=f"a={tmp_path}", shift=model_dirs / "clutch" / "shift",
                              evaluator=ev))
    with pytest.raises(FileNotFoundError, match="evaluator"):
        run_eval_clutch(_args(data=corpus_dir, model=model_dirs / "clutch", evaluator=tmp_path))
    with pytest.raises(ValueError, match="usable clips"):
        run_eval_clutch(_args(data=corpus_dir, model=model_dirs / "clutch", evaluator=ev, n=64, pool=32))
    with pytest.raises(ValueError, match="the val split has 0 usable clips"):
        run_eval_clutch(_args(data=corpus_dir, model=model_dirs / "clutch", evaluator=ev, n=N_TEST, pool=4,
                              split="val"))
    with pytest.raises(ValueError, match="--candidates must be >= 1"):
        run_eval_clutch(_args(data=corpus_dir, model=model_dirs / "clutch", evaluator=ev, candidates=0))
    with pytest.raises(ValueError, match="--caption-candidates must be >= 1"):
        run_eval_clutch(_args(data=corpus_dir, model=model_dirs / "clutch", evaluator=ev,
                              **{"caption-candidates": 0}))
