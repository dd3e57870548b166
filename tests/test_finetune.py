"""Fine-tuning and training runs: --from a checkpoint (weights, stats and config kept), the fixed
validation loss, NaN and disk-space stops, and runs as separate processes (engine.training.runner):
JSON progress, SIGKILL then resume to the same weights as an uninterrupted run, SIGTERM = pause.
Starting over in a run folder sets the old run aside first, so no resume ever continues it."""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from engine.diffusion.checkpoint import load_model, load_tensors
from engine.diffusion.denoiser import DenoiserConfig
from engine.training import runner
from engine.training import train_diffusion as td

TINY = DenoiserConfig(frames=20, patch=2, d_model=32, layers=1, heads=2, ffn=64, dropout=0.0)
CFG = td.TrainConfig(steps=6, batch=8, lr=3e-3, warmup=3, ckpt_every=10 ** 6, threads=1, device="cpu")


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    from engine.data.corpus_build import build_corpus
    return build_corpus(20, 1, tmp_path_factory.mktemp("ft") / "corpus", workers=1, frames=20)


@pytest.fixture(scope="module")
def hands():
    from engine.hands import default_hands_cpu
    return default_hands_cpu()


@pytest.fixture(scope="module")
def data(corpus_dir):
    return td.load_corpus(corpus_dir), td.load_corpus(corpus_dir, "val")


@pytest.fixture(scope="module")
def base(data, hands, tmp_path_factory):
    """A tiny trained model folder (the "shipped" model of these tests)."""
    out = tmp_path_factory.mktemp("base")
    list(td.train_iter(data[0], out, TINY, CFG, hands=hands))
    return out / "model"


def test_finetune_from_checkpoint(base, data, hands, tmp_path):
    base_model, _ = load_model(base)
    items = list(td.train_iter(data[1], tmp_path / "ft", None, replace(CFG, steps=3, val_every=3), hands=hands,
                               init_from=base, val_dataset=data[1]))
    assert [i["step"] for i in items] == [0, 1, 2, 3]
    start = td.ValidationSet(data[1], CFG.val_windows, td.DDIMScheduler(td.SchedulerConfig()))
    assert items[0]["val"] == pytest.approx(start.evaluate(base_model, hands, CFG), rel=1e-6)  # starts at the base
    tuned, config = load_model(tmp_path / "ft" / "model")
    assert tuned.config == TINY and config["meta"]["base_model"] == str(base)
    raw = load_tensors(tmp_path / "ft" / "train_state" / "model.safetensors")  # the fine-tune data's stats are not used
    assert torch.equal(raw["x_mean"], base_model.x_mean) and torch.equal(raw["x_std"], base_model.x_std)
    assert torch.allclose(tuned.x_mean, base_model.x_mean, atol=1e-6)  # the EMA copy: within rounding
    assert not torch.equal(tuned.motion_out.weight, base_model.motion_out.weight)
    assert set(items[-1]["val"]) == {"param", "joints", "vel", "acc", "tips", "total"}
    with pytest.raises(td.TrainingError, match=r"keeps the checkpoint's model config.*d_model 32 vs 64"):
        next(td.train_iter(data[0], tmp_path / "x", replace(TINY, d_model=64), CFG, init_from=base))
    wrong = DenoiserConfig(frames=60, patch=2, d_model=32, layers=1, heads=2, ffn=64)
    from engine.diffusion.checkpoint import save_model
    from engine.diffusion.denoiser import Denoiser
    save_model(tmp_path / "m60", Denoiser(wrong))
    with pytest.raises(td.TrainingError, match=r"training windows have 20 frames; .*m60: the checkpoint expects 60"):
        next(td.train_iter(data[0], tmp_path / "y", None, CFG, init_from=tmp_path / "m60"))


def test_validation_is_fixed(data, hands, tmp_path):
    cfg = replace(CFG, steps=4, val_every=2)
    a = [i for i in td.train_iter(data[0], tmp_path / "a", TINY, cfg, hands=hands, val_dataset=data[1]) if "val" in i]
    b = [i for i in td.train_iter(data[0], tmp_path / "b", TINY, replace(cfg, seed=5), hands=hands,
                                  val_dataset=data[1]) if "val" in i]
    assert [i["step"] for i in a] == [0, 2, 4]
    assert a[1]["val"] != b[1]["val"]  # another seed trains otherwise ...
    c = [i for i in td.train_iter(data[0], tmp_path / "c", TINY, cfg, hands=hands, val_dataset=data[1]) if "val" in i]
    assert [i["val"] for i in a] == [i["val"] for i in c]  # ... but the same run gives the same numbers


def test_nan_loss_stops_before_the_update(data, hands, tmp_path, monkeypatch):
    calls, real = [], td.losses

    def poisoned(*a, **k):
        out = real(*a, **k)
        calls.append(1)
        if len(calls) == 3:
            out["joints"] = out["joints"] * float("nan")
            out["total"] = out["total"] + out["joints"]
        return out
    monkeypatch.setattr(td, "losses", poisoned)
    it = td.train_iter(data[0], tmp_path / "r", TINY, replace(CFG, ckpt_every=2), hands=hands)
    assert "checkpoint" in [next(it), next(it)][1]
    with pytest.raises(td.TrainingError, match=r"step 3: loss joints is nan"):
        next(it)
    state = json.loads((tmp_path / "r" / "train_state" / "state.json").read_text())
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in load_tensors(tmp_path / "r" / "train_state" / "model.safetensors").values())


def test_disk_space_checked_first(data, hands, tmp_path, monkeypatch):
    monkeypatch.setattr(td.shutil, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(td.TrainingError, match=r"not enough disk space for checkpoints in .*run: 0.0 MiB free"):
        next(td.train_iter(data[0], tmp_path / "run", TINY, CFG, hands=hands))
    assert not (tmp_path / "run").exists()


# --- runs as processes -----------------------------------------------------------------------
def _config(tmp_path, steps, ckpt_every):
    path = tmp_path / "tiny.json"
    train = {"batch": 8, "lr": 3e-3, "warmup": 3, "threads": 1, "device": "cpu", "ckpt_every": ckpt_every,
             "steps": steps}
    path.write_text(json.dumps({"model": TINY.to_dict(), "train": train}))
    return path


def _events_until(run, pred, timeout=60.0):
    """Poll until an event satisfies ``pred``; returns every event seen."""
    seen, t0 = [], time.monotonic()
    while time.monotonic() - t0 < timeout:
        for ev in run.poll():
            seen.append(ev)
            if pred(ev):
                return seen
        time.sleep(0.01)
    raise AssertionError(f"timed out; last events {seen[-3:]}, stderr {run.stderr_tail[-2000:]}")


def test_kill_pause_resume_same_weights(corpus_dir, hands, tmp_path):
    """SIGKILL after a checkpoint, resume, SIGTERM (pause: checkpoint + exit 0), resume to the end:
    bit-identical to an uninterrupted run (the state holds weights, EMA, Adam moments, step and
    every RNG; one torch thread, so each step's arithmetic is the same in every process)."""
    steps = 150
    cfg_path = _config(tmp_path, steps, ckpt_every=10)
    out = tmp_path / "run"
    run = runner.start_run("diffusion", corpus_dir, out, config=cfg_path)
    seen = _events_until(run, lambda e: e["event"] == "checkpoint" and e["step"] >= 20)
    run.cancel()  # SIGKILL, somewhere after step 20
    seen += _events_until(run, lambda e: e["event"] == "exit")
    assert seen[0]["event"] == "start" and seen[0]["device"] == "cpu"
    step = next(e for e in seen if e["event"] == "step")
    assert {"step", "of", "loss", "lr", "samples_per_s", "eta_s", "device"} <= set(step) and step["of"] == steps
    assert run.state == "cancelled" and not any(e["event"] in ("done", "error") for e in seen)
    killed_at = max(e["step"] for e in seen if e["event"] == "step")
    assert killed_at < steps, "the run finished before it was killed; raise steps"

    # the last checkpoint: 20 or later, and at most one step past the last step event read (a SIGKILL
    # can land between writing a checkpoint and reporting its step)
    td.recover_interrupted_swap(out / "train_state")  # what the resumed run does first (a kill mid-swap)
    saved = td.saved_step(out / "train_state")
    assert saved is not None and 20 <= saved <= killed_at + 1
    run.resume()
    seen = _events_until(run, lambda e: e["event"] == "step")
    assert seen[-1]["step"] == saved + 1  # continued from the last checkpoint
    run.pause()  # SIGTERM
    seen += _events_until(run, lambda e: e["event"] == "exit")
    done = next(e for e in seen if e["event"] == "done")
    assert done["paused"] and seen[-1]["returncode"] == 0 and run.state == "paused"
    assert json.loads((out / "train_state" / "state.json").read_text())["step"] == done["step"] < steps

    run.resume()
    seen = _events_until(run, lambda e: e["event"] == "exit")
    assert [e for e in seen if e["event"] == "done"][0]["step"] == steps and run.state == "done"

    ds = td.load_corpus(corpus_dir)
    cfg = td.TrainConfig.from_dict({**json.loads(cfg_path.read_text())["train"], "ckpt_every": 10 ** 6})
    list(td.train_iter(ds, tmp_path / "straight", TINY, cfg, hands=hands))
    for sub in ("train_state/model.safetensors", "train_state/ema.safetensors", "model/model.safetensors"):
        a, b = load_tensors(out / sub), load_tensors(tmp_path / "straight" / sub)
        assert all(torch.equal(a[k], b[k]) for k in a), sub


def test_run_reports_errors(tmp_path):
    run = runner.start_run("diffusion", tmp_path / "no-corpus", tmp_path / "out")
    seen = _events_until(run, lambda e: e["event"] == "exit")
    err = next(e for e in seen if e["event"] == "error")
    assert "no-corpus" in err["message"] and seen[-1]["returncode"] == 2 and run.state == "failed"
    with pytest.raises(ValueError, match="kind"):
        runner.start_run("gan", tmp_path, tmp_path)


def test_extra_corpus_joins_the_training_windows(corpus_dir, tmp_path):
    """``train diffusion --extra-data DIR``: a supplement corpus (here the concurrent-actions program)
    adds its train windows after --data's; a supplement of another clip length is refused by name."""
    from engine.data.corpus import Corpus
    from engine.data.corpus_build import build_corpus

    supp = build_corpus(10, 2, tmp_path / "supp", workers=1, frames=20, program="concurrent")
    assert Corpus(supp).meta["program"] == "concurrent"
    assert all(len(r["actions"]) == 2 for r in Corpus(supp).index)
    main, both = td.load_corpus(corpus_dir), td.load_corpus(corpus_dir, extra=[supp])
    n_supp = sum(r["split"] == "train" for r in Corpus(supp).index)
    assert n_supp > 0 and len(both) == len(main) + n_supp
    assert torch.equal(both.x[:len(main)], main.x) and both.texts[:len(main)] == main.texts
    supp_texts = [t[0][0] for t in both.texts[len(main):]]  # first candidate's whole text
    assert any(w in " ".join(supp_texts) for w in ("while", "at the same time", " as "))
    other = build_corpus(4, 2, tmp_path / "long", workers=1, frames=24)
    with pytest.raises(td.TrainingError, match=r"long: clips of 24 frames; .* has 20"):
        td.load_corpus(corpus_dir, extra=[other])
    with pytest.raises(ValueError, match="program must be one of"):
        build_corpus(4, 2, tmp_path / "bad", workers=1, program="sequential")
    assert not (tmp_path / "bad").exists()


# --- starting over ------------------------------------------------------------------------------
def _saved_step(state_dir):
    return json.loads((state_dir / "state.json").read_text())["step"] if (state_dir / "state.json").is_file() else None


def test_start_over_sets_the_old_run_aside(data, hands, tmp_path):
    """``resume=False`` on a folder with a finished run first moves its train_state/ and model/ (and
    a complete copy an interrupted swap left beside them, which recover_interrupted_swap would
    otherwise bring back) to previous/<time>/: stopped before its first checkpoint, the new run
    resumes from step 0, never from the old state."""
    out = tmp_path / "run"
    list(td.train_iter(data[0], out, TINY, CFG, hands=hands))  # the old run: 6 of 6 steps
    old_model = (out / "model" / "model.safetensors").read_bytes()
    shutil.copytree(out / "train_state", out / ".train_state.old999")
    it = td.train_iter(data[0], out, TINY, replace(CFG, steps=8), resume=False, hands=hands)
    first = next(it)
    it.close()  # stopped before its first checkpoint, as a kill does
    assert sorted(p.name for p in out.iterdir()) == ["previous"]
    previous = Path(first["previous_run"])
    assert first["step"] == 1 and previous.parent == out / "previous"
    assert sorted(p.name for p in previous.iterdir()) == [".train_state.old999", "model", "train_state"]
    assert _saved_step(previous / "train_state") == 6
    assert (previous / "model" / "model.safetensors").read_bytes() == old_model

    items = list(td.train_iter(data[0], out, TINY, replace(CFG, steps=8), hands=hands))  # resume: no state yet
    assert [i["step"] for i in items] == list(range(1, 9)) and not any("previous_run" in i for i in items)
    assert _saved_step(out / "train_state") == 8 and sorted(p.name for p in out.iterdir()) == [
        "model", "previous", "train_state"]
    assert td.set_aside_run(tmp_path / "empty") is None and not (tmp_path / "empty").exists()


def test_start_over_takes_a_registered_model_along(data, hands, tmp_path, monkeypatch, capsys):
    """A run's model registered with "Use this model", then the run started over: the entry follows
    the old weights to previous/ (it would point at a missing folder, then at the new run's)."""
    from engine.registry import Registry

    monkeypatch.setenv("HAND_STUDIO_DATA", str(tmp_path / "user-data"))
    out = tmp_path / "run"
    list(td.train_iter(data[0], out, TINY, CFG, hands=hands))
    reg = Registry()
    reg.register("mine", "diffusion", out / "model")
    reg.use("mine")
    old = (out / "model" / "model.safetensors").read_bytes()
    it = td.train_iter(data[0], out, TINY, replace(CFG, steps=8), resume=False, hands=hands)
    previous = Path(next(it)["previous_run"])
    it.close()
    entry = reg.get("mine")
    assert Path(entry.path) == (previous / "model").absolute() and reg.use("mine")
    assert (Path(entry.path) / "model.safetensors").read_bytes() == old
    list(td.train_iter(data[0], out, TINY, replace(CFG, steps=2), hands=hands))  # a run to set aside again
    (tmp_path / "user-data" / "models.json").write_text("not json")  # unreadable: training still starts over
    it = td.train_iter(data[0], out, TINY, replace(CFG, steps=2), resume=False, hands=hands)
    assert "previous_run" in next(it)
    it.close()
    assert "registered models were not checked" in capsys.readouterr().err


def test_interrupted_start_over_is_completed_first(data, hands, tmp_path):
    """A kill inside the set-aside (the state moved, the model not yet) leaves previous/.partial-*;
    the next run in the folder, even a plain resume, completes it before it reads anything."""
    out = tmp_path / "run"
    list(td.train_iter(data[0], out, TINY, CFG, hands=hands))
    old_model = (out / "model" / "model.safetensors").read_bytes()
    partial = out / "previous" / ".partial-x"
    partial.mkdir(parents=True)
    os.replace(out / "train_state", partial / "train_state")
    items = list(td.train_iter(data[0], out, TINY, replace(CFG, steps=2), hands=hands))
    assert [i["step"] for i in items] == [1, 2]
    (previous,) = (out / "previous").iterdir()
    assert not previous.name.startswith(".") and sorted(p.name for p in previous.iterdir()) == ["model", "train_state"]
    assert _saved_step(previous / "train_state") == 6
    assert (previous / "model" / "model.safetensors").read_bytes() == old_model


def test_cli_start_over_and_continue(corpus_dir, tmp_path, capsys):
    """The command line: without a flag a finished run is continued (nothing to train: its start and
    its own step in done), ``--no-resume`` says where the old run went, ``--resume`` needs a state."""
    cfg_path = _config(tmp_path, 3, ckpt_every=10 ** 6)
    out = tmp_path / "run"
    argv = ["--data", str(corpus_dir), "--out", str(out), "--config", str(cfg_path), "--progress", "jsonl"]

    def events(extra=()):
        assert td.main(argv + list(extra)) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    first = events()
    assert first[0]["event"] == "start" and first[0].get("previous_run") is None and first[-1]["step"] == 3
    again = events()
    assert [e["event"] for e in again] == ["start", "done"] and again[-1]["step"] == 3
    over = events(["--no-resume"])
    assert sorted(p.name for p in (out / "previous").iterdir()) == [Path(over[0]["previous_run"]).name]
    assert _saved_step(Path(over[0]["previous_run"]) / "train_state") == 3
    assert [e["step"] for e in over if e["event"] == "step"] == [1, 2, 3] and over[-1]["step"] == 3
    assert td.main(["--data", str(corpus_dir), "--out", str(tmp_path / "none"), "--config", str(cfg_path),
                    "--resume"]) == 2
    assert "holds no training state" in capsys.readouterr().err


def test_resume_keeps_a_start_over_until_it_started(tmp_path):
    """``resume()`` drops --no-resume only after the run's start event (by then the trainer has set
    the old run aside); killed before it, the run starts over again rather than continue the old."""
    for script, kept in (("pass", True), ("import json; print(json.dumps({'event': 'start'}))", False)):
        run = runner.TrainingRun([sys.executable, "-c", script, "--no-resume"], tmp_path)
        _events_until(run, lambda e: e["event"] == "exit")
        run.resume()
        assert ("--no-resume" in run.proc.args) == kept
        _events_until(run, lambda e: e["event"] == "exit")


def test_start_over_cancel_resume_as_processes(corpus_dir, hands, tmp_path):
    """QA's sequence through the runner: a finished run, started over in its folder, killed before
    its first checkpoint, resumed: it trains its own steps from 0 to its end; the old model waits
    in previous/ and never comes back as this run's."""
    out = tmp_path / "run"
    list(td.train_iter(td.load_corpus(corpus_dir), out, TINY, CFG, hands=hands))  # the old run: 6 steps
    old = load_tensors(out / "model" / "model.safetensors")
    steps = 40
    run = runner.start_run("diffusion", corpus_dir, out, config=_config(tmp_path, steps, ckpt_every=20), resume=False)
    seen = _events_until(run, lambda e: e["event"] == "step")
    run.cancel()
    seen += _events_until(run, lambda e: e["event"] == "exit")
    start = seen[0]
    assert start["event"] == "start" and run.state == "cancelled"
    ckpts = [e["step"] for e in seen if e["event"] == "checkpoint"]
    own = ckpts[-1] if ckpts else 0  # almost surely 0: killed after a step or two
    assert (_saved_step(out / "train_state") or 0) == own

    run.resume()
    seen = _events_until(run, lambda e: e["event"] == "exit")
    trained = [e["step"] for e in seen if e["event"] == "step"]
    assert trained == list(range(own + 1, steps + 1))
    done = next(e for e in seen if e["event"] == "done")
    assert done["step"] == steps and run.state == "done" and _saved_step(out / "train_state") == steps
    assert seen[0]["event"] == "start" and seen[0]["previous_run"] is None  # continued, not started over again
    previous = Path(start["previous_run"])
    assert previous.parent == out / "previous" and _saved_step(previous / "train_state") == 6
    kept = load_tensors(previous / "model" / "model.safetensors")
    assert all(torch.equal(kept[k], old[k]) for k in old)
    new = load_tensors(out / "model" / "model.safetensors")
    assert not all(torch.equal(new[k], old[k]) for k in old)


def test_add_skip_starts_from_the_base_and_trains_the_new_path(data, hands, tmp_path):
    """``--add-skip``: a checkpoint without the skip path gets one, zero at the start (the first
    validation equals the base model's), and the path trains; resuming without it is refused."""
    old_cfg = TINY  # skip off: the default
    old = tmp_path / "old"
    list(td.train_iter(data[0], old, old_cfg, CFG, hands=hands))
    base_model, _ = load_model(old / "model")
    assert base_model.config.skip is False and not hasattr(base_model, "skip_out")
    new_cfg = replace(old_cfg, skip=True)
    data[1].compute_keypoints(hands)
    start = td.ValidationSet(data[1], CFG.val_windows, td.DDIMScheduler(td.SchedulerConfig()))
    base_val = start.evaluate(base_model, hands, CFG)
    zero = replace(CFG, steps=3, val_every=3, skip_fit_windows=0)  # the path starts at zero
    items = list(td.train_iter(data[1], tmp_path / "zero", new_cfg, zero, hands=hands, init_from=old / "model",
                               val_dataset=data[1]))
    assert items[0]["val"] == pytest.approx(base_val, rel=1e-6)
    tuned, _ = load_model(tmp_path / "zero" / "model")
    assert tuned.config == new_cfg and tuned.skip_out.weight.abs().sum() > 0
    fit = replace(CFG, steps=3, val_every=3, skip_fit_windows=16)  # fitted in closed form before step 1
    items = list(td.train_iter(data[1], tmp_path / "ft", new_cfg, fit, hands=hands, init_from=old / "model",
                               val_dataset=data[1]))
    assert items[0]["val"]["param"] < 0.9 * base_val["param"]
    with pytest.raises(td.TrainingError, match=r"another model config \(skip True vs False\).*--add-skip"):
        next(td.train_iter(data[1], tmp_path / "ft", None, CFG, hands=hands, init_from=old / "model"))
    with pytest.raises(td.TrainingError, match=r"may only add the skip path.*d_model 32 vs 64"):
        next(td.train_iter(data[0], tmp_path / "x", replace(new_cfg, d_model=64), CFG, init_from=old / "model"))


def test_add_skip_cli_is_checked(corpus_dir, tmp_path, capsys):
    from engine.diffusion.checkpoint import save_model
    from engine.diffusion.denoiser import Denoiser
    assert td.main(["--data", str(corpus_dir), "--out", str(tmp_path / "a"), "--add-skip"]) == 2
    assert "--add-skip adds the skip path to a model given with --from" in capsys.readouterr().err
    has = save_model(tmp_path / "has", Denoiser(replace(TINY, skip=True)))
    assert td.main(["--data", str(corpus_dir), "--out", str(tmp_path / "b"), "--from", str(has), "--add-skip"]) == 2
    assert f"--add-skip: {has} already has the skip path" in capsys.readouterr().err


def test_fit_skip_recovers_what_the_base_drops_at_low_noise(base, data, hands):
    """The closed-form fit: at t = 0 the fitted model's x0 error on the fit windows is a fraction of
    the base's; the gains fall with the noise; the base is left as it was; a model with a path is refused."""
    from engine.diffusion.denoiser import timestep_embedding
    from engine.diffusion.representation import normalize
    from engine.training.skip_fit import GAIN_T, fit_skip
    model, _ = load_model(base)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ds = data[0]
    ds.compute_keypoints(hands)
    sched = td.DDIMScheduler(td.SchedulerConfig())
    fitted = fit_skip(model, ds, sched, windows=16).eval()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    b = ds.batch(torch.arange(16))
    x0 = normalize(b["x"], model.x_mean, model.x_std)
    t = torch.zeros(16, dtype=torch.long)
    with torch.no_grad():
        err = {name: (m(x0, t, *m.encode_condition(b["tokens"], b["token_mask"])) - x0).pow(2).mean().item()
               for name, m in (("base", model.eval()), ("fitted", fitted))}
        feats = fitted.time_mlp(timestep_embedding(torch.tensor([0, GAIN_T[-1]]), fitted.config.d_model))
        gain = 1 + fitted.skip_gate(feats)  # (2, width)
    assert err["fitted"] < 0.5 * err["base"]
    assert gain[0].mean() > 0.5 > gain[1].mean()
    with pytest.raises(ValueError, match="already has a skip path"):
        fit_skip(fitted, ds, sched, windows=4)
