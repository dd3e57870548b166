"""CLUTCH with tiny configs: SHIFT quantizers, baselines, vocabulary, constrained decoding, the
Gumbel-Softmax refinement path, instruction templates, the four training stages, checkpoints and
the pipeline's handling of bad input."""
from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from engine.clutch.baselines import part_decomposed_vqvae, standard_vqvae  # noqa: E402
from engine.clutch.instructions import TASKS, TEMPLATES, make_instruction, pick_template  # noqa: E402
from engine.clutch.language_model import (LMConfig, MotionLM, MotionStreamProcessor, TextProcessor,  # noqa: E402
                                          load_lm, save_lm)
from engine.clutch.refine import RefineConfig, freeze, keypoints_from_rep, refine_losses  # noqa: E402
from engine.clutch.shift import STREAMS, Quantizer, ShiftConfig, ShiftTokenizer, load_shift, save_shift  # noqa: E402
from engine.clutch.vocab import InvalidMotionStream, MotionVocab, build_vocab, minilm_vocab  # noqa: E402
from engine.diffusion.representation import clip_to_tensor  # noqa: E402

TINY_SHIFT = ShiftConfig(codebook_size=16, code_dim=8, width=16, res_blocks=1, ema_decay=0.9)
TINY_LM = LMConfig(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4, dropout=0.0)


def _caption(labels) -> str:
    if not labels:
        return "the hands rest"
    a = labels[0]
    hand = "both hands" if a["hands"] == "both" else f"the {a['lead']} hand"
    return f"{hand} {a['action'].replace('_', ' ')}"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """1 torch thread: on the shared 2-core machine 2 threads are 5-25x slower under load."""
    from engine.threads import torch_threads
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def clips():
    from engine.data.synth import generate_clip
    return [generate_clip(s) for s in range(24)]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory, clips):
    """24 synthetic clips written in the corpus layout (meta.json, index.jsonl, shards/000.npz)."""
    from engine.data.corpus import clip_id
    root = tmp_path_factory.mktemp("corpus")
    (root / "shards").mkdir()
    arrays = {k: np.stack([getattr(c, k) for c, _ in clips]).astype(np.float32)
              for k in ("transl", "global_orient", "hand_pose", "betas")}
    arrays["joints"] = np.stack([c.joints for c, _ in clips]).astype(np.float16)
    np.savez(root / "shards" / "000.npz", **arrays)
    splits = ["train"] * 20 + ["val"] * 2 + ["test"] * 2
    with open(root / "index.jsonl", "w") as f:
        for i, (c, labels) in enumerate(clips):
            cap = _caption(labels)
            texts = [{"level": lv, "text": cap if lv < 3 else f"{cap} slowly", "left": "", "right": ""} for lv in range(1, 6)]
            f.write(json.dumps({"id": clip_id(i), "shard": 0, "row": i, "split": splits[i], "texts": texts,
                                "action": cap, "actions": [], "events": {}, "event_types": [], "source": "test"}) + "\n")
    meta = {"format_version": 1, "kind": "hand-studio-corpus", "n": 24, "frames": 60, "fps": 30, "seed": 0,
            "source": "test", "splits": {"train": 20, "val": 2, "test": 2}, "shards": ["shards/000.npz"]}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def motion(clips):
    return torch.stack([clip_to_tensor(c) for c, _ in clips[:6]])  # (6, 60, 2, 99)


@pytest.fixture(scope="module")
def vocab(clips):
    return MotionVocab(build_vocab([_caption(l) for _, l in clips] + ["describe this hand motion"], margin=20),
                       TINY_SHIFT.codebook_size)


# --- SHIFT -----------------------------------------------------------------------------------
def test_shift_shapes_gradients_and_stats(motion):
    torch.manual_seed(0)
    model = ShiftTokenizer(TINY_SHIFT)
    model.set_stats(motion)
    model.train()
    out = model(motion)
    assert out["recon"].shape == motion.shape
    assert set(out["codes"]) == set(STREAMS) and all(c.shape == (6, 8) for c in out["codes"].values())
    out["losses"]["total"].backward()
    for s in STREAMS:
        g = [p.grad for p in model.encoders[s].parameters()]
        assert all(x is not None and x.abs().sum() > 0 for x in g), f"no gradient reaches encoder {s}"
        assert 0 < out["stats"][f"usage_{s}"] <= 1 and 1 <= out["stats"][f"perplexity_{s}"] <= 16
    for k in ("recon", "vel", "codebook", "commit", "total"):
        assert torch.isfinite(out["losses"][k])
    model.eval()
    for T, n in ((60, 8), (61, 8), (64, 8), (65, 9), (8, 1), (3, 1)):
        codes = model.encode(motion[:2, :T] if T <= 60 else torch.cat([motion[:2], motion[:2, :T - 60]], 1))
        assert all(c.shape == (2, n) for c in codes.values())
        assert model.decode(codes, T).shape == (2, T, 2, 99)
    with pytest.raises(ValueError):
        model.decode({s: torch.full((1, 2), 99) for s in STREAMS})
    with pytest.raises(ValueError):
        model.decode({"tl": torch.zeros(1, 2, dtype=torch.long)})
    with pytest.raises(ValueError):
        model(torch.zeros(1, 60, 2, 98))


def test_residual_trajectory_levels(motion, clips):
    """traj_levels 3: each trajectory stream is three token streams (coarse, then what is left);
    gradients reach every encoder, the LM layout takes the extra streams, a Gumbel one-hot decode
    equals the hard decode, and the LM's streams are interleaved coarse before fine."""
    from engine.clutch.refine import motion_logits
    cfg = ShiftConfig(codebook_size=16, code_dim=8, width=16, res_blocks=1, ema_decay=0.9, traj_levels=3, w_transl=2.0)
    assert cfg.streams == ("tl", "tl2", "tl3", "pl", "tr", "tr2", "tr3", "pr")
    with pytest.raises(ValueError, match="traj_levels"):
        ShiftConfig(layout="single", traj_levels=2)
    with pytest.raises(ValueError, match="w_transl"):
        ShiftConfig(w_transl=0.0)
    torch.manual_seed(0)
    model = ShiftTokenizer(cfg)
    model.set_stats(motion)
    model.train()
    out = model(motion)
    assert set(out["codes"]) == set(cfg.streams) and all(c.shape == (6, 8) for c in out["codes"].values())
    out["losses"]["total"].backward()
    for s in ("tl", "pl", "tr", "pr"):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders[s].parameters()), s
    assert all(f"usage_{s}" in out["stats"] for s in cfg.streams)
    model.eval()
    codes = model.encode(motion[:2])
    assert set(codes) == set(cfg.streams)
    hard = model.decode(codes, 60)
    K = cfg.codebook_size
    soft = model.decode_soft({s: torch.nn.functional.one_hot(c, K).float() for s, c in codes.items()}, 60)
    assert torch.allclose(hard, soft, atol=1e-5)
    # the LM vocabulary takes the extra streams: one id range each, interleaved per step
    vocab = MotionVocab(build_vocab([_caption(lb) for _, lb in clips], margin=20), K, cfg.streams)
    ids = vocab.motion_ids({s: c[0] for s, c in codes.items()})
    assert len(ids) == 2 + 8 * len(cfg.streams)
    assert all(torch.equal(vocab.parse_motion(ids)[s], codes[s][0]) for s in cfg.streams)
    logits = torch.zeros(1, len(ids), vocab.size)
    assert set(motion_logits(logits, vocab, 8)) == set(cfg.streams)


def test_residual_levels_lower_the_latent_error(motion):
    """Each residual level codes what the previous left: after a few EMA updates (no optimiser) the
    latent quantisation error falls level by level."""
    torch.manual_seed(0)
    m = ShiftTokenizer(ShiftConfig(codebook_size=16, code_dim=8, width=16, res_blocks=1, ema_decay=0.5,
                                   traj_levels=3))
    m.set_stats(motion)
    m.train()
    with torch.no_grad():
        for _ in range(5):
            m(motion)
        m.eval()
        z = m.latents(m.normalize(motion))["tl"]  # (B, D, N)
        codes = m.nearest_codes("tl", z)
        total, errs = torch.zeros_like(z), []
        for s in ("tl", "tl2", "tl3"):
            total = total + m.quantizers[s].lookup(codes[s])
            errs.append(float((z - total).norm()))
    assert errs[0] > errs[1] > errs[2] and errs[2] < 0.8 * errs[0]


def test_dead_codes_are_reset():
    torch.manual_seed(0)
    q = Quantizer(ShiftConfig(codebook_size=16, code_dim=4, ema_decay=0.5, dead_threshold=0.2)).train()
    q(torch.randn(2, 4, 8))  # initialises the codebook on data
    before = q.codebook.detach().clone()
    z = torch.zeros(2, 4, 8) + torch.tensor([5.0, 5.0, 5.0, 5.0])[None, :, None]  # one region only
    resets = []
    for _ in range(6):
        q(z + 0.01 * torch.randn_like(z))
        resets.append(q.last_reset)
    assert max(resets) > 0
    moved = (q.codebook.detach() - before).norm(dim=1) > 1.0
    assert moved.sum() >= max(resets)  # reset codes now sit near recent encoder outputs (~5)


def test_baselines_same_budget(motion):
    shift = ShiftTokenizer(ShiftConfig())
    n_shift = sum(p.numel() for p in shift.parameters() if p.requires_grad)
    for model, streams in ((standard_vqvae(TINY_SHIFT), 1), (part_decomposed_vqvae(TINY_SHIFT), 2)):
        model.set_stats(motion)
        out = model(motion[:2])
        assert out["recon"].shape == (2, 60, 2, 99) and len(out["codes"]) == streams
        assert model.config.codebook_size * streams == 4 * TINY_SHIFT.codebook_size
    for model in (standard_vqvae(), part_decomposed_vqvae()):
        n = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert 0.75 < n / n_shift < 1.35


# --- vocabulary --------------------------------------------------------------------------------
def test_vocab_layout_and_pruned_roundtrip(clips, vocab):
    ranges = [vocab.stream_range(s) for s in STREAMS]
    sets = [set(r) for r in ranges]
    assert all(len(s) == 16 for s in sets)
    assert all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1:])
    specials = {vocab.som_id, vocab.eom_id, vocab.motion_mask_id, vocab.pad_id, vocab.eos_id}
    assert len(specials) == 5 and not specials & set().union(*sets)
    assert min(ranges[0]) == vocab.text_size + 3 and max(ranges[-1]) == vocab.size - 1
    assert vocab.tokenizer.id_to_token(vocab.stream_range("pr").start) == "<motion_pr_0>"
    assert vocab.text_size < 600 < len(minilm_vocab())
    full = build_vocab(["x"], margin=0, source=None)  # a pruned vocab still spells unseen words
    assert full.encode("zebra", add_special_tokens=False).ids and 1 not in full.encode("zebra").ids
    from tokenizers import Tokenizer
    from engine.diffusion.text_encoder import model_dir
    ref = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    for _, labels in clips:
        s = _caption(labels).capitalize() + ", twice!"
        ids = vocab.encode_text(s)
        assert vocab.unk_id not in ids
        assert vocab.decode_text(ids) == ref.decode(ref.encode(s).ids)
    with pytest.raises(ValueError):
        vocab.encode_text("   ")
    with pytest.raises(ValueError):
        build_vocab(["", "  "])


def test_interleaved_stream_layout(vocab):
    codes = {s: torch.arange(3) + k for k, s in enumerate(STREAMS)}
    ids = vocab.motion_ids(codes)
    assert ids[0] == vocab.som_id and ids[-1] == vocab.eom_id and len(ids) == 3 * 4 + 2
    for step in range(3):
        for k, s in enumerate(STREAMS):  # eq. 2: per step tl, pl, tr, pr
            assert ids[1 + 4 * step + k] == vocab.stream_range(s).start + step + k
    back = vocab.parse_motion(ids + [vocab.pad_id, vocab.eos_id])
    assert all(torch.equal(back[s], codes[s]) for s in STREAMS)
    bad = {
        "no som": ids[1:],
        "no eom": ids[:-1],
        "wrong order": [ids[0], ids[2], ids[1]] + ids[3:],
        "partial step": ids[:-2] + [ids[-1]],
        "text inside": ids[:3] + [vocab.encode_text("hand")[0]] + ids[4:],
        "after eom": ids + [vocab.stream_range("tl").start],
        "empty": [vocab.som_id, vocab.eom_id],
    }
    for name, b in bad.items():
        with pytest.raises(InvalidMotionStream):
            vocab.parse_motion(b)
    with pytest.raises(ValueError):
        vocab.motion_ids({**codes, "pr": torch.tensor([0, 1, 99])})


def test_constrained_decoding(vocab):
    torch.manual_seed(0)
    lm = MotionLM(TINY_LM, vocab).eval()
    inp = torch.tensor([vocab.encode_text("the right hand waves")] * 2)
    am = torch.ones_like(inp, dtype=torch.bool)
    out = lm.decode(inp, am, MotionStreamProcessor(vocab, steps=3), max_len=14, stop_id=vocab.eom_id,
                    temperature=1.0, generator=torch.Generator().manual_seed(0))
    for row in out.tolist():
        assert row[0] == vocab.som_id and row[-1] == vocab.eom_id and len(row) == 14
        for p, t in enumerate(row[1:-1]):
            assert t in vocab.stream_range(p % 4)
        assert all(c.shape == (3,) for c in vocab.parse_motion(row).values())
    free = lm.decode(inp, am, MotionStreamProcessor(vocab, None, max_steps=2), max_len=12, stop_id=vocab.eom_id)
    for row in free.tolist():
        vocab.parse_motion(row)
    text = lm.decode(inp, am, TextProcessor(vocab, max_len=6), max_len=6, stop_id=vocab.eos_id)
    for row in text.tolist():
        body = row[:row.index(vocab.eos_id)]
        assert body and all(5 <= t < vocab.text_size for t in body)
    # the processor works with transformers' own generate too
    from transformers import LogitsProcessorList
    g = lm.t5.generate(input_ids=inp[:1], attention_mask=am[:1], max_new_tokens=10, do_sample=False,
                       logits_processor=LogitsProcessorList([MotionStreamProcessor(vocab, steps=2)]),
                       eos_token_id=vocab.eom_id)
    vocab.parse_motion(g[0, 1:].tolist())
    with pytest.raises(ValueError):
        MotionStreamProcessor(vocab, steps=0)



@pytest.mark.parametrize("ff, tied", [("gated-gelu", False), ("relu", True)])
def test_step_decoder_gives_transformers_logits(vocab, ff, tied):
    """decode() steps the T5 with its own weights outside transformers' module stack: the logits
    at every position equal the full teacher-forced forward pass (padded encoder rows included),
    gated and plain feed-forward, tied and untied output layers; an ``allowed`` mask computes only
    those rows and leaves -inf elsewhere."""
    from dataclasses import replace
    from engine.clutch.step_decoder import T5StepDecoder
    torch.manual_seed(1)
    lm = MotionLM(replace(TINY_LM, feed_forward_proj=ff, tie_word_embeddings=tied), vocab).eval()
    a, b = vocab.encode_text("the right hand waves"), vocab.encode_text("clap")
    inp = torch.tensor([a, b + [vocab.pad_id] * (len(a) - len(b))])
    am = torch.tensor([[1] * len(a), [1] * len(b) + [0] * (len(a) - len(b))], dtype=torch.bool)
    dec = torch.randint(5, vocab.size, (2, 12))
    dec[:, 0] = vocab.pad_id
    with torch.no_grad():
        ref = lm(inp, am, decoder_input_ids=dec).logits
        enc = lm.t5.get_encoder()(input_ids=inp, attention_mask=am).last_hidden_state
    step = T5StepDecoder(lm.t5)
    step.start(enc, am, 12)
    got = torch.stack([step.step(dec[:, i]) for i in range(12)], 1)
    assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4)
    allowed = MotionStreamProcessor(vocab, steps=2).allowed(1)
    step.start(enc, am, 2)
    step.step(dec[:, 0])
    part = step.step(dec[:, 1], allowed)
    assert torch.allclose(part[:, allowed], ref[:, 1, allowed], atol=1e-4, rtol=1e-4)
    assert torch.isinf(part[:, ~allowed]).all()
    with pytest.raises(RuntimeError, match="decoded past"):
        step.step(dec[:, 2])


def test_local_t5_folder_starts_the_lm_and_pickles_are_refused(vocab, tmp_path):
    """A user's local (Flan-)T5 folder: its transformer body transfers, its vocabulary rows are
    resized to ours; a folder holding only a pickled pytorch_model.bin is refused by name."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=1,
                                             num_decoder_layers=1, num_heads=4))
    t5.save_pretrained(tmp_path / "t5", safe_serialization=True)
    lm = MotionLM.from_pretrained_t5(tmp_path / "t5", vocab)
    assert lm.t5.get_input_embeddings().weight.shape[0] == vocab.size
    ours = lm.t5.encoder.block[0].layer[0].SelfAttention.q.weight
    assert torch.equal(ours, t5.encoder.block[0].layer[0].SelfAttention.q.weight)
    assert lm.t5.config.pad_token_id == vocab.pad_id

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "config.json").write_text((tmp_path / "t5" / "config.json").read_text())
    torch.save(t5.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match=r"bin: no model\.safetensors.*never loaded"):
        MotionLM.from_pretrained_t5(tmp_path / "bin", vocab)
    with pytest.raises(FileNotFoundError, match="not a T5 folder"):
        MotionLM.from_pretrained_t5(tmp_path, vocab)


def test_caption_no_repeat_ngram(vocab):
    """The n-gram guard bans exactly the tokens that would repeat an n-gram, and a greedy decode
    with it never repeats one (an untrained model loops on its favourite tokens without it)."""
    proc = TextProcessor(vocab, max_len=24, no_repeat_ngram=3)
    assert proc.banned([7, 8, 9, 7, 8]) == {9}
    assert proc.banned([7, 8, 9, 7, 9]) == set() and proc.banned([7, 8]) == set()
    assert TextProcessor(vocab, no_repeat_ngram=2).banned([5, 6, 5]) == {6}
    torch.manual_seed(0)
    lm = MotionLM(TINY_LM, vocab).eval()
    inp = torch.tensor([vocab.encode_text("the right hand waves")] * 2)
    am = torch.ones_like(inp, dtype=torch.bool)
    plain = lm.decode(inp, am, TextProcessor(vocab, max_len=24), max_len=24, stop_id=vocab.eos_id)
    guarded = lm.decode(inp, am, proc, max_len=24, stop_id=vocab.eos_id)

    def grams(row, n=3):
        body = row[:row.index(vocab.eos_id)] if vocab.eos_id in row else row
        return [tuple(body[i:i + n]) for i in range(len(body) - n + 1)]
    assert any(len(set(grams(r))) < len(grams(r)) for r in plain.tolist())  # the untrained model loops
    for row in guarded.tolist():
        g = grams(row)
        assert len(set(g)) == len(g)
        assert vocab.eos_id in row
    for bad in (-1, 1):
        with pytest.raises(ValueError, match="no_repeat_ngram"):
            TextProcessor(vocab, no_repeat_ngram=bad)


# --- refinement --------------------------------------------------------------------------------
def test_gumbel_path_reaches_lm_not_shift(vocab, motion, clips):
    from engine.hands import load_hands
    torch.manual_seed(0)
    shift = ShiftTokenizer(TINY_SHIFT)
    shift.set_stats(motion)
    freeze(shift)
    lm = MotionLM(TINY_LM, vocab).train()
    codes = shift.encode(motion[:2])
    labels = torch.tensor([vocab.motion_ids({s: c[i] for s, c in codes.items()}) for i in range(2)])
    inp = torch.tensor([vocab.encode_text("the right hand waves")] * 2)
    hands = load_hands("default")
    betas = torch.zeros(2, 2, 10)
    with torch.no_grad():
        j_gt = keypoints_from_rep(hands, motion[:2], betas)
    loss = refine_losses(lm, shift, hands, inp, torch.ones_like(inp, dtype=torch.bool), labels, motion[:2], betas,
                         j_gt, torch.tensor([0.0, 0.0]), RefineConfig())
    assert torch.isfinite(loss["total"]) and loss["rec_joints"] > 0
    loss["total"].backward()  # alpha = 0: only the reconstruction path carries gradient
    assert lm.t5.lm_head.weight.grad is not None and lm.t5.lm_head.weight.grad.abs().sum() > 0
    assert lm.t5.encoder.block[0].layer[0].SelfAttention.q.weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in shift.parameters())


# --- instructions ------------------------------------------------------------------------------
def test_instruction_templates(vocab, clips):
    codes = {s: torch.arange(8) % 16 for s in STREAMS}
    for task in TASKS:
        assert len(TEMPLATES[task]) >= 10 and len(set(TEMPLATES[task])) == len(TEMPLATES[task])
        assert pick_template(task, 3) == pick_template(task, 3)
        assert len({pick_template(task, s) for s in range(200)}) >= 8
        for seed in range(20):
            ins = make_instruction(vocab, task, "the left hand waves", codes, seed)
            assert ins == make_instruction(vocab, task, "the left hand waves", codes, seed)
            if task == "m2t":
                assert ins.target_ids[-1] == vocab.eos_id and vocab.som_id in ins.input_ids
            else:
                parsed = vocab.parse_motion(ins.target_ids)
                n = len(parsed["tl"])
                assert (n == 8) if task == "t2m" else (1 <= n < 8)
    with pytest.raises(ValueError):
        pick_template("dance", 0)


# --- training, checkpoints, pipeline -------------------------------------------------------------
def _falls(items):
    tot = [i["loss"]["total"] for i in items]
    k = max(2, len(tot) // 4)
    return np.mean(tot[-k:]) < np.mean(tot[:k])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, corpus_dir):
    from engine.training.train_clutch import StageConfig, load_split, train_iter
    out = tmp_path_factory.mktemp("run")
    data = load_split(corpus_dir, "train")
    assert len(data) == 20 and data.frames == 60
    cfg = StageConfig(batch=8, lr=3e-3, warmup=2, seed=0, device="cpu", ckpt_every=1000, vocab_margin=20)
    steps = {"shift": 120, "pretrain": 40, "refine": 30, "instruct": 30}
    logs = {}
    for stage, n in steps.items():
        logs[stage] = list(train_iter(stage, data, out, StageConfig(**{**cfg.__dict__, "steps": n}),
                                      shift_cfg=TINY_SHIFT, lm_cfg=TINY_LM))
    return out, logs, data


def test_training_stages_reduce_loss(run_dir):
    out, logs, _ = run_dir
    for stage, items in logs.items():
        assert items[-1]["step"] == items[-1]["of"] and "checkpoint" in items[-1]
        assert _falls(items), f"{stage} loss did not fall: {[round(i['loss']['total'], 3) for i in items]}"
        assert (out / stage / "model" / "config.json").is_file()
    assert {"usage_tl", "perplexity_pr"} <= set(logs["shift"][-1]["stats"])
    assert {"lm", "rec", "rec_joints"} <= set(logs["refine"][-1]["loss"])


def test_resume_continues_from_state(run_dir, corpus_dir):
    from engine.training.train_clutch import StageConfig, train_iter
    out, logs, data = run_dir
    cfg = StageConfig(steps=43, batch=8, lr=3e-3, warmup=2, device="cpu", ckpt_every=1000, vocab_margin=20)
    items = list(train_iter("pretrain", data, out, cfg, shift_cfg=TINY_SHIFT, lm_cfg=TINY_LM))
    assert [i["step"] for i in items] == [41, 42, 43]


def test_checkpoint_roundtrip_and_pipeline(run_dir, tmp_path, clips):
    from engine.clutch.pipeline import load_pipeline
    from engine.motion.clip import Clip
    out, _, data = run_dir
    shift, _ = load_shift(out / "shift" / "model")
    lm, cfg = load_lm(out / "instruct" / "model")
    assert cfg["meta"]["prompt_style"] == "instruct"
    x = data.x[:3]
    save_shift(tmp_path / "s", shift)
    save_lm(tmp_path / "l", lm)
    shift2, _ = load_shift(tmp_path / "s")
    lm2, _ = load_lm(tmp_path / "l")
    assert all(torch.equal(a, b) for a, b in zip(shift.encode(x).values(), shift2.encode(x).values()))
    assert torch.equal(shift.x_std, shift2.x_std)
    inp = torch.tensor([lm.vocab.encode_text("both hands rub palms")])
    am = torch.ones_like(inp, dtype=torch.bool)
    assert torch.allclose(lm(inp, am, decoder_input_ids=torch.zeros(1, 3, dtype=torch.long)).logits,
                          lm2(inp, am, decoder_input_ids=torch.zeros(1, 3, dtype=torch.long)).logits)

    pipe = load_pipeline(out / "instruct" / "model", out / "shift" / "model")
    clip = pipe.generate("the right hand waves", frames=60, seed=1)
    assert isinstance(clip, Clip) and clip.num_frames == 60 and np.isfinite(clip.hand_pose).all()
    assert pipe.generate("the right hand waves", frames=20, seed=1).num_frames == 20
    a = pipe.generate_tokens("both hands rub palms", 60, seed=3)
    assert all(torch.equal(a[s], pipe.generate_tokens("both hands rub palms", 60, seed=3)[s]) for s in STREAMS)
    text = pipe.caption(clips[0][0])
    assert isinstance(text, str) and text.strip()

    # bad input: one clear error each
    for bad in ("", "   "):
        with pytest.raises(ValueError, match="empty"):
            pipe.generate(bad)
    for frames in (0, 7, 10_000, 60.0):
        with pytest.raises(ValueError, match="frames"):
            pipe.generate("the right hand waves", frames=frames)
    short = Clip(clips[0][0].transl[:5], clips[0][0].global_orient[:5], clips[0][0].hand_pose[:5])
    with pytest.raises(ValueError, match="too short"):
        pipe.caption(short)
    with pytest.raises(InvalidMotionStream):
        pipe.vocab.parse_motion([pipe.vocab.som_id, pipe.vocab.eos_id])




def _constrained_log_prob(lm, input_ids, target, allowed_at) -> float:
    """Reference: full transformers logits, ids outside each position's allowed set dropped, log-softmax."""
    inp, labels = torch.tensor([input_ids]), torch.tensor([target])
    dec = torch.cat([torch.full_like(labels[:, :1], lm.vocab.pad_id), labels[:, :-1]], 1)
    with torch.no_grad():
        logits = lm(inp, torch.ones_like(inp, dtype=torch.bool), decoder_input_ids=dec).logits[0]
    total = 0.0
    for p, t in enumerate(target):
        masked = logits[p].masked_fill(~allowed_at(p), float("-inf"))
        total += float(torch.log_softmax(masked, -1)[t])
    return total


def test_t2m_candidates_are_reranked_by_the_lms_own_caption_likelihood(run_dir, monkeypatch):
    from engine.clutch.pipeline import load_pipeline
    out, _, _ = run_dir
    pipe = load_pipeline(out / "instruct" / "model", out / "shift" / "model")
    text = "both hands rub palms"
    one = pipe.generate_tokens(text, 32, seed=5, candidates=1)
    codes = [one, pipe.generate_tokens(text, 32, seed=6, candidates=1)]
    ll = pipe.caption_log_likelihood(codes, text)
    assert ll.shape == (2,) and torch.isfinite(ll).all() and (ll < 0).all()
    # transformers' own teacher-forced logits, renormalised over the ids the text decoder allows
    target = pipe.vocab.encode_text(text, eos=True)
    ref = _constrained_log_prob(pipe.lm, pipe._m2t_ids(codes[1]), target,
                                TextProcessor(pipe.vocab, pipe.lm.config.max_text_tokens).allowed)
    assert float(ll[1]) == pytest.approx(ref, rel=1e-4)

    seen = {}

    def fake(drawn, prompt):
        seen["drawn"], seen["prompt"] = drawn, prompt
        return torch.tensor([-9.0, -8.0, -1.0, -5.0])
    monkeypatch.setattr(pipe, "caption_log_likelihood", fake)
    best = pipe.generate_tokens(text, 32, seed=5, candidates=4)
    assert len(seen["drawn"]) == 4 and seen["prompt"] == text
    assert all(torch.equal(best[s], seen["drawn"][2][s]) for s in STREAMS)
    again = pipe.generate_tokens(text, 32, seed=5, candidates=4)  # seeded: the same four draws
    assert all(torch.equal(best[s], again[s]) for s in STREAMS)
    pipe.t2m_candidates = 4
    assert pipe.generate(text, frames=32, seed=5).num_frames == 32 and len(seen["drawn"]) == 4
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match="candidates"):
            pipe.generate_tokens(text, 32, seed=5, candidates=bad)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="candidate"):
        pipe.caption_log_likelihood([], text)
    with pytest.raises(ValueError, match="same number"):
        pipe.caption_log_likelihood([one, pipe.generate_tokens(text, 16, seed=5, candidates=1)], text)



def test_captions_are_reranked_by_how_well_they_explain_the_motion(run_dir, clips, monkeypatch):
    import engine.clutch.pipeline as cp
    from engine.clutch.pipeline import load_pipeline
    out, _, _ = run_dir
    pipe = load_pipeline(out / "instruct" / "model", out / "shift" / "model")
    pipe.ground_pinches = False
    clip = clips[0][0]
    codes = pipe.caption_tokens(clip)
    texts = ["both hands rub palms", "the right hand waves twice"]
    explains = pipe.motion_log_likelihood(codes, texts)
    assert explains.shape == (2,) and (explains < 0).all()
    # each equals transformers' own teacher-forced logits of that one pair, renormalised over the
    # ids the constrained decoder allows at each position
    motion = pipe.vocab.motion_ids(codes)
    steps = len(codes[STREAMS[0]])
    for i, t in enumerate(texts):
        ref = _constrained_log_prob(pipe.lm, pipe._t2m_ids(t), motion, MotionStreamProcessor(pipe.vocab, steps, steps).allowed)
        assert float(explains[i]) == pytest.approx(ref, rel=1e-4)
    # without a constraint: transformers' cross-entropy itself
    inp = torch.tensor([pipe._t2m_ids(texts[0])])
    with torch.no_grad():
        loss = pipe.lm(inp, torch.ones_like(inp, dtype=torch.bool), labels=torch.tensor([motion])).loss
        free = pipe.lm.target_log_prob(inp, torch.ones_like(inp, dtype=torch.bool), torch.tensor([motion]),
                                       torch.ones(1, len(motion), dtype=torch.bool))
    assert float(free[0]) == pytest.approx(-float(loss) * len(motion), rel=1e-4)
    assert float(explains[0]) > float(free[0])  # renormalising over fewer ids raises each probability

    # decode's running log-probability of what it emitted = the teacher-forced one of those ids
    m2t = torch.tensor([pipe._m2t_ids(codes)] * 3)
    proc = TextProcessor(pipe.vocab, pipe.lm.config.max_text_tokens)
    ids, lp = pipe.lm.decode(m2t, torch.ones_like(m2t, dtype=torch.bool), proc, max_len=12, stop_id=pipe.vocab.eos_id,
                             temperature=0.9, top_k=20, generator=torch.Generator().manual_seed(3), greedy_rows=1,
                             return_log_prob=True)
    greedy = pipe.lm.decode(m2t[:1], torch.ones_like(m2t[:1], dtype=torch.bool), proc, max_len=12,
                            stop_id=pipe.vocab.eos_id)
    assert ids[0, :greedy.shape[1]].tolist() == greedy[0].tolist()  # row 0 stays greedy among samples
    for r in range(3):
        row = ids[r].tolist()
        n = row.index(pipe.vocab.eos_id) + 1 if pipe.vocab.eos_id in row else len(row)
        assert float(lp[r]) == pytest.approx(_constrained_log_prob(pipe.lm, m2t[r].tolist(), row[:n], proc.allowed),
                                             rel=1e-4, abs=1e-4)

    # a rambling sample does not hold the batch: decoding ends f x the greedy length (+ 2) after it stops
    g = (greedy[0] == pipe.vocab.eos_id).nonzero()
    if len(g):
        n = int(g[0, 0]) + 1
        cut = pipe.lm.decode(m2t, torch.ones_like(m2t, dtype=torch.bool), proc, max_len=12, stop_id=pipe.vocab.eos_id,
                             temperature=0.9, top_k=20, generator=torch.Generator().manual_seed(3), greedy_rows=1,
                             sampled_len_factor=1.0)
        assert cut.shape[1] <= min(12, n + 2) and cut[0, :n].tolist() == greedy[0, :n].tolist()

    pipe.caption_candidates = 1
    greedy_caption = pipe.caption(clip)
    seen = {}

    def fake(c, cands):
        seen["texts"] = cands
        return torch.arange(len(cands), dtype=torch.float32) * 1e6  # the last candidate explains best
    monkeypatch.setattr(pipe, "motion_log_likelihood", fake)
    assert pipe.caption(clip) == greedy_caption and "texts" not in seen  # one candidate: no scoring
    pipe.caption_candidates = 6
    picked = pipe.caption(clip)
    cands = seen["texts"]
    assert 1 <= len(cands) <= 6 and len(set(cands)) == len(cands)
    assert cands[0].lower() == greedy_caption.lower()  # the greedy caption is always a candidate
    assert picked.lower() == cands[-1].lower()
    assert pipe.caption(clip) == picked  # seeded: the same clip gets the same caption
    if len(cands) > 1:  # a heavy weight on log p(caption | motion) picks the likeliest instead
        monkeypatch.setattr(cp, "CAPTION_LIKELIHOOD_WEIGHT", 1e6)
        monkeypatch.setattr(pipe, "motion_log_likelihood", lambda c, t: torch.zeros(len(t)))
        likeliest = pipe.caption(clip)
        assert likeliest.lower() in [c.lower() for c in cands]
    pipe.caption_candidates = 0
    with pytest.raises(ValueError, match="caption candidates must be an int >= 1"):
        pipe.caption(clip)
    pipe.caption_candidates = 6
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="caption candidates must be an int >= 1"):
            pipe.caption(clip, candidates=bad)
    assert pipe.caption(clip, candidates=1) == greedy_caption  # a per-call count beats the setting
    monkeypatch.undo()
    with pytest.raises(ValueError, match="texts is empty"):
        pipe.motion_log_likelihood(codes, [])


def test_clutch_generate_iter_is_one_pass_and_refuses_diffusion_settings(run_dir):
    """The app's worker runs every model through generate_iter: CLUTCH yields its one result, and
    settings only the diffusion model has fail when the call is made, each named."""
    from engine.clutch.pipeline import load_pipeline
    out, _, _ = run_dir
    pipe = load_pipeline(out / "instruct" / "model", out / "shift" / "model")
    items = list(pipe.generate_iter("both hands rub palms", frames=24, seed=2, candidates=1))
    assert len(items) == 1 and items[0]["step"] == items[0]["of"] == 1 and items[0]["pinches"] == []
    ref = pipe.generate("both hands rub palms", frames=24, seed=2, candidates=1)
    assert np.array_equal(items[0]["clip"].hand_pose, ref.hand_pose)
    for kw, word in (({"steps": 10}, "steps"), ({"guidance": 2.5}, "guidance"), ({"close_pinches": True}, "pinch"),
                     ({"constraints": object()}, "constraints")):
        with pytest.raises(ValueError, match=f"takes no {word}"):
            pipe.generate_iter("both hands rub palms", **kw)
    with pytest.raises(ValueError, match="empty"):
        pipe.generate_iter("  ")
    with pytest.raises(ValueError, match="frames"):
        pipe.generate_iter("both hands rub palms", frames=4)

def test_tokenizer_metrics(run_dir):
    from engine.clutch.evaluate import format_table, procrustes_align, tokenizer_metrics
    from engine.hands import load_hands
    out, _, data = run_dir
    shift, _ = load_shift(out / "shift" / "model")
    m = tokenizer_metrics(shift, data.x[:4], data.betas[:4], load_hands("default"))
    assert all(np.isfinite(v) and v >= 0 for v in m.values()) and m["pa_mpjpe_mm"] <= m["mpjpe_mm"] + 1e-6
    assert "MPJPE" in format_table({"SHIFT": m})
    g = torch.randn(3, 21, 3, dtype=torch.float64)
    R = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0]
    R = R * torch.det(R)  # a proper rotation
    assert torch.allclose(procrustes_align(1.7 * g @ R + 0.3, g), g, atol=1e-9)
