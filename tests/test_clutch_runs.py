"""CLUTCH stages as training runs, like the diffusion one (tests/test_finetune.py): the runner's
JSON events from a separate process, SIGKILL then SIGTERM (pause) then resume reaching exactly the
weights of an uninterrupted run, NaN and disk-space stops, --from fine-tuning from SHIFT, LM and
CLUTCH model folders, `hand-studio train clutch-pt|clutch-gr|clutch-ift|shift` and the registry."""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from engine.clutch.language_model import LMConfig, load_lm  # noqa: E402
from engine.clutch.shift import ShiftConfig, ShiftTokenizer, load_shift  # noqa: E402
from engine.diffusion.checkpoint import load_tensors  # noqa: E402
from engine.training import runner  # noqa: E402
from engine.training import train_clutch as tc  # noqa: E402

TINY_SHIFT = ShiftConfig(codebook_size=16, code_dim=8, width=16, res_blocks=1, ema_decay=0.9, frames=24)
TINY_LM = LMConfig(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4, dropout=0.0)
STAGE = tc.StageConfig(batch=8, lr=3e-3, warmup=2, device="cpu", threads=1, ckpt_every=10 ** 6, vocab_margin=20)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    from engine.threads import torch_threads
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """20 clips of 24 frames (3 motion tokens per stream: in-betweening needs 3)."""
    from engine.data.corpus_build import build_corpus
    return build_corpus(20, 1, tmp_path_factory.mktemp("cr") / "corpus", workers=1, frames=24)


@pytest.fixture(scope="module")
def data(corpus_dir):
    return tc.load_split(corpus_dir)


@pytest.fixture(scope="module")
def base(data, tmp_path_factory):
    """A tiny run with a SHIFT and a pretrained LM: OUT/shift/model, OUT/pretrain/model, OUT/model."""
    out = tmp_path_factory.mktemp("base")
    list(tc.train_iter("shift", data, out, replace(STAGE, steps=8), TINY_SHIFT))
    list(tc.train_iter("pretrain", data, out, replace(STAGE, steps=6), lm_cfg=TINY_LM))
    return out


def _events_until(run, pred, timeout=120.0):
    seen, t0 = [], time.monotonic()
    while time.monotonic() - t0 < timeout:
        for ev in run.poll():
            seen.append(ev)
            if pred(ev):
                return seen
        time.sleep(0.01)
    raise AssertionError(f"timed out; last events {seen[-3:]}, stderr {run.stderr_tail[-2000:]}")


# --- runs as processes -----------------------------------------------------------------------
def test_kill_pause_resume_same_weights(corpus_dir, data, base, tmp_path):
    """clutch-pt through the runner: SIGKILL after a checkpoint, resume, SIGTERM (checkpoint + exit
    0), then the rest in this process: bit-identical to an uninterrupted run (the state holds
    weights, AdamW moments, step, the data generator, torch's RNG and the sample builder's
    random.Random; one torch thread, so each step's arithmetic is the same in every process)."""
    steps = 80
    train = {**asdict(STAGE), "steps": steps, "ckpt_every": 5}
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps({"lm": asdict(TINY_LM), "train": {"pretrain": train}}))
    out, shift = tmp_path / "run", base / "shift" / "model"
    run = runner.start_run("clutch-pt", corpus_dir, out, config=cfg_path, extra=["--shift", str(shift)])
    seen = _events_until(run, lambda e: e["event"] == "checkpoint" and e["step"] >= 10)
    run.cancel()  # SIGKILL, somewhere after step 10
    seen += _events_until(run, lambda e: e["event"] == "exit")
    start = seen[0]
    assert start["event"] == "start" and start["stage"] == "pretrain" and start["device"] == "cpu"
    assert start["world_size"] == 1 and start["windows"] == len(data) and start["train_config"]["steps"] == steps
    step = next(e for e in seen if e["event"] == "step")
    assert {"step", "of", "loss", "lr", "samples_per_s", "eta_s", "device"} <= set(step) and step["of"] == steps
    ckpt = next(e for e in seen if e["event"] == "checkpoint")
    assert ckpt["path"] == str(out / "pretrain" / "model") and ckpt["train_state"] == str(out / "pretrain" / "train_state")
    assert run.state == "cancelled" and not any(e["event"] in ("done", "error") for e in seen)
    killed_at = max(e["step"] for e in seen if e["event"] == "step")
    assert killed_at < steps, "the run finished before it was killed; raise steps"

    run.resume()
    seen = _events_until(run, lambda e: e["event"] == "step")
    assert seen[-1]["step"] in range(11, killed_at + 2)  # continued from the last checkpoint (10 or later)
    run.pause()  # SIGTERM
    seen += _events_until(run, lambda e: e["event"] == "exit")
    done = next(e for e in seen if e["event"] == "done")
    assert done["paused"] and seen[-1]["returncode"] == 0 and run.state == "paused"
    assert done["model"] == str(out / "model") and done["stage_model"] == str(out / "pretrain" / "model")
    assert json.loads((out / "pretrain" / "train_state" / "state.json").read_text())["step"] == done["step"] < steps

    rest = list(tc.train_iter("pretrain", data, out, replace(STAGE, steps=steps)))  # resumes the paused state
    assert rest[0]["step"] == done["step"] + 1 and rest[-1]["step"] == steps
    straight = tmp_path / "straight"
    list(tc.train_iter("pretrain", data, straight, replace(STAGE, steps=steps), lm_cfg=TINY_LM, shift_from=shift))
    for sub in ("train_state/model.safetensors", "train_state/optimizer.safetensors", "model/model.safetensors"):
        a, b = load_tensors(out / "pretrain" / sub), load_tensors(straight / "pretrain" / sub)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), sub
    assert (out / "model" / "lm" / "config.json").is_file() and (out / "shift" / "model" / "config.json").is_file()


def test_jsonl_errors(corpus_dir, tmp_path, capsys):
    """A run reports a failure as one ``error`` event (what the runner turns into state 'failed')."""
    assert tc.main(["--stage", "refine", "--data", str(corpus_dir), "--out", str(tmp_path / "empty"),
                    "--progress", "jsonl"]) == 2
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["error"] and "no SHIFT tokenizer" in events[0]["message"]
    assert events[0]["type"] == "FileNotFoundError"


def test_build_command_for_clutch_kinds(tmp_path):
    for kind, stage in (("shift", "shift"), ("clutch-pt", "pretrain"), ("clutch-gr", "refine"),
                        ("clutch-ift", "instruct")):
        argv = runner.build_command(kind, "corpus", "out", init_from=tmp_path / "m", steps=5, resume=False)
        assert argv[1:3] == ["-m", "engine.training.train_clutch"]
        assert argv[argv.index("--stage") + 1] == stage and argv[argv.index("--from") + 1] == str(tmp_path / "m")
        assert "--no-resume" in argv and argv[argv.index("--progress") + 1] == "jsonl"
        assert tc.RUN_KINDS[kind] == stage
    assert runner.CLUTCH_STAGES == tc.RUN_KINDS
    with pytest.raises(ValueError, match="val_every"):
        runner.build_command("clutch-pt", "corpus", "out", val_every=10)
    with pytest.raises(ValueError, match="nproc"):
        runner.build_command("clutch-ift", "corpus", "out", nproc=2)


def test_start_over_sets_the_stage_aside(data, base, tmp_path):
    """``resume=False`` (``--no-resume``, the panel's "Start over") moves the stage's old
    train_state/ and model/ to OUT/<stage>/previous/<time>/ before training (named in on_start's
    ``previous_run``): stopped before its first checkpoint, the stage resumes from step 0."""
    out = tmp_path / "run"
    shutil.copytree(base, out, symlinks=True)  # shift 8 steps, pretrain 6 steps, OUT/model
    old_lm = (out / "pretrain" / "model" / "model.safetensors").read_bytes()
    for kind, stage_dir, old_step in (("clutch-pt", out / "pretrain", 6), ("shift", out / "shift", 8)):
        started = []
        it = tc.train_iter(tc.RUN_KINDS[kind], data, out, replace(STAGE, steps=3), TINY_SHIFT, TINY_LM, resume=False,
                           on_start=started.append)
        assert next(it)["step"] == 1
        it.close()  # stopped before its first checkpoint, as a kill does
        assert not (stage_dir / "train_state").exists() and not (stage_dir / "model").exists()
        previous = Path(started[0]["previous_run"])
        assert previous.parent == stage_dir / "previous"
        assert json.loads((previous / "train_state" / "state.json").read_text())["step"] == old_step
        assert runner.state_folder(kind, out) == stage_dir / "train_state"  # where the panel looks for a run
    (lm_previous,) = (out / "pretrain" / "previous").iterdir()
    assert (lm_previous / "model" / "model.safetensors").read_bytes() == old_lm
    shift_again = list(tc.train_iter("shift", data, out, replace(STAGE, steps=3), TINY_SHIFT))  # resume: no state
    assert [i["step"] for i in shift_again] == [1, 2, 3]


# --- stops -----------------------------------------------------------------------------------
def test_nan_loss_stops_before_the_update(data, tmp_path, monkeypatch):
    calls, real = [], ShiftTokenizer.forward

    def poisoned(self, x):
        out = real(self, x)
        calls.append(1)
        if len(calls) == 3:
            out["losses"]["recon"] = out["losses"]["recon"] * float("nan")
            out["losses"]["total"] = out["losses"]["total"] + out["losses"]["recon"]
        return out
    monkeypatch.setattr(ShiftTokenizer, "forward", poisoned)
    it = tc.train_iter("shift", data, tmp_path / "r", replace(STAGE, steps=6, ckpt_every=2), TINY_SHIFT)
    assert "checkpoint" in [next(it), next(it)][1]
    before = load_tensors(tmp_path / "r" / "shift" / "train_state" / "model.safetensors")
    with pytest.raises(tc.TrainingError, match=r"shift step 3: loss recon is nan .*before the update"):
        next(it)
    state = tmp_path / "r" / "shift" / "train_state"
    assert json.loads((state / "state.json").read_text())["step"] == 2
    after = load_tensors(state / "model.safetensors")
    assert all(torch.equal(before[k], after[k]) and torch.isfinite(after[k]).all() for k in after)


def test_finite_checks():
    losses = {"lm": torch.tensor(1.5), "total": torch.tensor(1.5)}
    assert tc.check_losses("pretrain", 4, losses) == {"lm": 1.5, "total": 1.5}
    with pytest.raises(tc.TrainingError, match=r"refine step 7: loss rec is inf"):
        tc.check_losses("refine", 7, {"lm": torch.tensor(1.0), "rec": torch.tensor(float("inf"))})
    tc.check_grad_norm("pretrain", 1, torch.tensor(3.0), 1.0)
    with pytest.raises(tc.TrainingError, match=r"instruct step 9: gradient norm is nan.*before the update"):
        tc.check_grad_norm("instruct", 9, torch.tensor(float("nan")), 2.0)
    m = torch.nn.Linear(2, 2)
    tc.check_weights("shift", 1, m)
    with torch.no_grad():
        m.bias[0] = float("inf")
    with pytest.raises(tc.TrainingError, match=r"non-finite weights \(bias\); no checkpoint written"):
        tc.check_weights("shift", 1, m)


def test_disk_space_checked_first(data, base, tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(tc.TrainingError, match=r"not enough disk space for checkpoints in .*run/shift: 0.0 MiB"):
        next(tc.train_iter("shift", data, tmp_path / "run", STAGE, TINY_SHIFT))
    with pytest.raises(tc.TrainingError, match=r"not enough disk space for checkpoints in .*lm/pretrain"):
        next(tc.train_iter("pretrain", data, tmp_path / "lm", STAGE, lm_cfg=TINY_LM,
                           shift_from=base / "shift" / "model"))
    assert not (tmp_path / "run").exists() and not (tmp_path / "lm").exists()  # nothing written, not even the SHIFT


# --- fine-tuning (--from) --------------------------------------------------------------------
def test_finetune_shift_keeps_config_and_stats(data, base, tmp_path):
    src = base / "shift" / "model"
    few = tc.ClipData(data.x[:5] * 1.1, data.betas[:5], data.captions[:5])  # other data, other stats
    items = list(tc.train_iter("shift", few, tmp_path / "ft", replace(STAGE, steps=2), init_from=base / "model"))
    assert [i["step"] for i in items] == [1, 2]
    start, tuned = load_shift(src)[0], load_shift(tmp_path / "ft" / "shift" / "model")
    assert tuned[0].config == TINY_SHIFT and tuned[1]["meta"]["base_model"] == str(base / "model" / "shift")
    assert torch.equal(tuned[0].x_mean, start.x_mean) and torch.equal(tuned[0].x_std, start.x_std)
    with pytest.raises(tc.TrainingError, match=r"keeps the checkpoint's SHIFT config.*width 16 vs 32"):
        next(tc.train_iter("shift", data, tmp_path / "x", STAGE, replace(TINY_SHIFT, width=32), init_from=src))
    with pytest.raises(tc.TrainingError, match=r"a 'shift' tokenizer; --tokenizer pd"):
        next(tc.train_iter("shift", data, tmp_path / "x", STAGE, tokenizer="pd", init_from=src))
    with pytest.raises(FileNotFoundError, match=r"a CLUTCH LM model folder; the shift stage starts from a SHIFT"):
        next(tc.train_iter("shift", data, tmp_path / "x", STAGE, init_from=base / "pretrain" / "model"))


def test_finetune_lm_from_a_clutch_folder(data, base, tmp_path):
    """clutch-ift from a CLUTCH model folder (shift/ + lm/) into a fresh run: the SHIFT comes along."""
    from engine.clutch.pipeline import load_clutch
    out = tmp_path / "ft"
    items = list(tc.train_iter("instruct", data, out, replace(STAGE, steps=2), init_from=base / "model"))
    assert [i["step"] for i in items] == [1, 2] and "checkpoint" in items[-1]
    assert (out / "shift" / "model" / "model.safetensors").read_bytes() == \
        (base / "shift" / "model" / "model.safetensors").read_bytes()
    lm, config = load_lm(out / "instruct" / "model")
    assert lm.config == TINY_LM and config["meta"]["init"] == str(base / "model" / "lm")
    assert lm.vocab.to_dict() == load_lm(base / "pretrain" / "model")[0].vocab.to_dict()
    assert os.readlink(out / "model" / "lm") == os.path.join("..", "instruct", "model")
    assert load_clutch(out / "model").generate("both hands clap", frames=24, seed=0).num_frames == 24
    with pytest.raises(tc.TrainingError, match=r"keeps the checkpoint's LM config.*d_model 32 vs 64"):
        next(tc.train_iter("refine", data, tmp_path / "y", STAGE, lm_cfg=replace(TINY_LM, d_model=64),
                           init_from=base / "model"))
    other = tmp_path / "other"  # a run whose SHIFT is not the one the LM's codes come from
    list(tc.train_iter("shift", data, other, replace(STAGE, steps=1, seed=3), TINY_SHIFT))
    with pytest.raises(tc.TrainingError, match=r"holds another SHIFT tokenizer than .*use a new --out"):
        next(tc.train_iter("instruct", data, other, STAGE, init_from=base / "model"))


# --- command line and registry ---------------------------------------------------------------
def test_cli_spelling(corpus_dir, tmp_path, capsys):
    from engine.cli import build_parser, main
    parse = build_parser().parse_args
    a = parse(["train", "clutch-pt", "--data", "D", "--from", "F", "--out", "O", "--resume"])
    assert (a.model, a.stage, a.init_from, a.resume, a.no_resume, a.tokenizer) == ("clutch-pt", "pretrain", "F",
                                                                                   True, False, "shift")
    assert parse(["train", "clutch-gr", "--data", "D", "--out", "O"]).stage == "refine"
    assert parse(["train", "clutch-ift", "--data", "D", "--out", "O", "--no-resume"]).stage == "instruct"
    assert parse(["train", "shift", "--data", "D", "--out", "O", "--tokenizer", "pd"]).tokenizer == "pd"
    old = parse(["train", "clutch", "--stage", "refine", "--data", "D", "--out", "O", "--init", "M"])
    assert (old.stage, old.init_from) == ("refine", "M")
    for bad in (["train", "clutch-pt", "--data", "D", "--out", "O", "--resume", "--no-resume"],
                ["train", "clutch-gr", "--data", "D", "--out", "O", "--tokenizer", "pd"]):
        with pytest.raises(SystemExit):
            parse(bad)
    capsys.readouterr()
    assert main(["train", "clutch-gr", "--data", str(corpus_dir), "--out", str(tmp_path / "x"), "--resume"]) == 2
    assert "--resume: " + str(tmp_path / "x" / "refine" / "train_state") + " holds no training state" in \
        capsys.readouterr().err


def test_models_registry_takes_a_clutch_run(base, monkeypatch, tmp_path, capsys):
    from engine.cli import main
    monkeypatch.setenv("HAND_STUDIO_DATA", str(tmp_path / "hs"))
    assert main(["models", "add", "mine", str(base / "model"), "--base", "shipped"]) == 0  # kind read from the folder
    assert main(["models", "use", "mine"]) == 0
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["active"] == {"clutch": "mine"} and doc["models"][0]["kind"] == "clutch"
    from engine.registry import active_model_path
    assert active_model_path("clutch") == base / "model"
    assert main(["models", "add", "run", str(base)]) == 2
    assert "training run folder; register its model: " + str(base / "model") in capsys.readouterr().err
    assert main(["models", "remove", "mine"]) == 0 and active_model_path("clutch") is None


def test_extra_corpus_joins_the_training_clips(corpus_dir, data, tmp_path):
    """``train clutch-* --extra-data DIR``: a supplement's train clips follow --data's, with their
    captions; a supplement of another clip length is refused by name."""
    from engine.data.corpus import Corpus
    from engine.data.corpus_build import build_corpus

    supp = build_corpus(10, 4, tmp_path / "supp", workers=1, frames=24, program="concurrent")
    both = tc.load_split(corpus_dir, extra=[supp])
    n_supp = sum(r["split"] == "train" for r in Corpus(supp).index)
    assert len(both) == len(data) + n_supp and torch.equal(both.x[:len(data)], data.x)
    assert both.captions[:len(data)] == data.captions and all(both.captions[len(data):])
    other = build_corpus(4, 4, tmp_path / "short", workers=1, frames=20)
    with pytest.raises(ValueError, match=r"short: clips of 20 frames; .* has 24"):
        tc.load_split(corpus_dir, extra=[other])
