"""Issue 9 in the app, driven like a user in real windows under Xvfb: a folder of 20 mocap files in
three formats (our clips, BVH from another tool, MANO parameter npz) -> the dataset panel imports,
cleans and captions it, one caption is edited and one clip left out, the dataset is saved -> the
training panel fine-tunes a tiny diffusion model on it (curves fill, Cancel, Resume, done),
evaluates base vs fine-tuned on the held-out split and makes the result the active model. Pause &
save and the NaN / disk-space messages are driven against a stand-in process that prints what the
trainer prints (each real start costs ~8 s of torch import on the 2-core machine). Plus the model
layer without Qt."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from engine.data.cleaning import CleaningConfig
from engine.data.corpus import Corpus, split_of
from hand_studio.model import dataset as D

SEED = 0
N_FILES = 20
STEPS = 60
MIXAMO = {"wrist": "Hand", "index": "HandIndex", "middle": "HandMiddle", "ring": "HandRing", "pinky": "HandPinky",
          "thumb": "HandThumb"}


def write_mocap_folder(folder):
    """20 takes of procedural two-hand motion: our clip npz, BVH renamed to Mixamo bones (another
    tool's skeleton, retargeted by the importer) and MANO per-hand parameter npz, in turn. The
    sources that land in the test split are long (18 windows each), so the held-out split has the
    32 prompts R-precision needs; the others give one window each."""
    from engine.data.synth import generate_clip
    from engine.export import export_clip

    folder.mkdir()
    formats = ("clip", "bvh", "mano")
    for k in range(N_FILES):  # find_sources sorts by path: take00 .. take19 are sources 0 .. 19
        fmt = formats[k % 3]
        frames = 1080 if split_of(SEED, k) == "test" else 70
        clip, _ = generate_clip(100 + k, frames=frames, fps=30.0)
        stem = folder / f"take{k:02d}_{fmt}"
        if fmt == "clip":
            clip.save(stem.with_suffix(".npz"))
        elif fmt == "bvh":
            (path,) = export_clip(clip, folder / f"tmp{k}.bvh", bvh_layout="one_root")
            text = re.sub(r"\b([LR])_(wrist|index|middle|ring|pinky|thumb)(\d?)\b",
                          lambda m: f"mixamorig:{'Left' if m.group(1) == 'L' else 'Right'}{MIXAMO[m.group(2)]}"
                                    f"{m.group(3)}", path.read_text())
            path.unlink()
            stem.with_suffix(".bvh").write_text(text)
        else:
            arrays = {}
            for h, side in enumerate(("left", "right")):
                arrays[f"{side}_pose"] = np.concatenate([clip.global_orient[:, h], clip.hand_pose[:, h]], 1)
                arrays[f"{side}_trans"] = clip.transl[:, h]
                arrays[f"{side}_betas"] = clip.betas[h]
            np.savez(stem.with_suffix(".npz"), **arrays)
    return folder


def tiny_base_model(folder):
    """A d=32, 1-layer, 60-frame denoiser with normalisation stats from procedural clips, saved with
    the real checkpoint code: the "shipped" model these tests fine-tune."""
    import torch

    from engine.data.synth import generate_clip
    from engine.diffusion.checkpoint import save_model
    from engine.diffusion.denoiser import Denoiser, DenoiserConfig
    from engine.diffusion.representation import clip_to_tensor, compute_stats

    torch.manual_seed(0)
    model = Denoiser(DenoiserConfig(frames=60, patch=2, d_model=32, layers=1, heads=2, ffn=64, dropout=0.0))
    mean, std = compute_stats(torch.stack([clip_to_tensor(generate_clip(s, frames=60)[0]) for s in range(4)]))
    with torch.no_grad():
        model.x_mean.copy_(mean)
        model.x_std.copy_(std)
    return save_model(folder, model.eval(), {"sampler_steps": 4})


# --- the model layer, no Qt -------------------------------------------------------------------------

def test_cleaning_fields_cover_the_config_and_are_checked():
    specs = D.cleaning_fields()
    assert [s.name for s in specs] == list(CleaningConfig.__dataclass_fields__)
    assert all(s.minimum <= s.default <= s.maximum for s in specs)
    assert D.cleaning_config({"min_hand_intensity": 0.0}) == CleaningConfig(min_hand_intensity=0.0)
    with pytest.raises(ValueError, match="savgol_window must be 0 or an odd number"):
        D.cleaning_config({"savgol_window": 8})
    with pytest.raises(ValueError, match="max_speed must be > 0"):
        D.cleaning_config({"max_speed": 0.0})
    rows = D.step_rows({"frames_in": 300, "defective_frames": 4, "frames_outside_clips": 56, "clips_extracted": 4,
                        "rejected_jitter": 1, "rejected_intensity": 2, "kept": 1}, {}, {"bad.bvh": "no hand bones"})
    assert [(r.step, r.removed) for r in rows] == [("Import", 1), ("Defective frames", 4), ("Smoothing", 0),
                                                   ("Clip extraction", 56), ("Jitter", 1), ("Intensity", 2),
                                                   ("Kept", 1)]
    assert "bad.bvh: no hand bones" in rows[0].reasons and "25 deg/s" in rows[5].reasons


def test_error_events_read_clearly():
    from hand_studio._qt.training_panel import explain_error, format_eta
    nan = explain_error({"event": "error", "type": "TrainingError",
                         "message": "step 3: loss joints is nan (terms {...}); stopped, weights unchanged"})
    assert nan.startswith("Training stopped: a loss or gradient became NaN") and "last checkpoint is untouched" in nan
    disk = explain_error({"event": "error", "message": "not enough disk space for checkpoints in /x: 1.0 MiB free"})
    assert disk.startswith("Not enough disk space") and "/x" in disk
    assert explain_error({"type": "ProcessDied", "message": "exited with code -9"}).startswith("The training process")
    assert format_eta(3725) == "1:02:05" and format_eta(65) == "1:05"


# --- in real windows --------------------------------------------------------------------------------

def _edit_caption_like_a_user(qtbot, view, row, text):
    """Click the caption cell, double-click to open its editor, retype, Return (committed queued)."""
    from hand_studio._qt.dataset_panel import QtCaptionTableModel
    index = view.model().index(row, QtCaptionTableModel.CAPTION)
    view.scrollTo(index)
    pos = view.visualRect(index).center()
    qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=pos)
    qtbot.mouseDClick(view.viewport(), Qt.LeftButton, pos=pos)
    qtbot.waitUntil(lambda: view.indexWidget(index) is not None, timeout=2000)
    editor = view.indexWidget(index)
    editor.selectAll()
    qtbot.keyClicks(editor, text)
    qtbot.keyClick(editor, Qt.Key_Return)
    qtbot.waitUntil(lambda: view.model().data(index) == text, timeout=2000)


def _untick_like_a_user(qtbot, view, row):
    index = view.model().index(row, 0)
    view.setCurrentIndex(index)
    qtbot.keyClick(view, Qt.Key_Space)


@pytest.mark.gui
def test_import_review_save_finetune_evaluate_use(qtbot, tmp_path, monkeypatch):
    from engine.registry import Registry
    from hand_studio._qt.dataset_panel import QtDatasetPanel
    from hand_studio._qt.training_panel import QtTrainingPanel

    monkeypatch.setenv("HAND_STUDIO_DATA", str(tmp_path / "user-data"))  # this test's registry only
    src = write_mocap_folder(tmp_path / "mocap")
    base = tiny_base_model(tmp_path / "base")

    # --- dataset panel: import with relaxed intensity thresholds -------------------------------
    panel = QtDatasetPanel(staging_dir=tmp_path / "staging")
    qtbot.addWidget(panel)
    panel.resize(900, 1000)
    panel.show()
    qtbot.waitExposed(panel)
    panel.source_edit.setText("~no_such_user_hs/mocap")  # one message, not pathlib's RuntimeError
    assert panel.start_import() is False and "no such user's home folder" in panel.last_error
    panel.source_edit.setText(str(src))
    spin = panel.cleaning_spins["min_hand_intensity"]
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin, "0")  # typed like a user: the procedural takes have quiet stretches
    assert spin.value() == 0
    panel.cleaning_spins["min_avg_intensity"].setValue(0.0)
    with qtbot.waitSignal(panel.sig_cancelled, timeout=20000):  # Cancel leaves nothing behind
        qtbot.mouseClick(panel.import_button, Qt.LeftButton)
        pending = panel._pending_root
        assert panel.cancel_button.isEnabled() and not panel.import_button.isEnabled()
        qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    assert panel.state is None and not pending.exists() and panel.import_button.isEnabled()
    with qtbot.waitSignal(panel.sig_import_finished, timeout=60000) as sig:
        qtbot.mouseClick(panel.import_button, Qt.LeftButton)
    assert not panel.last_error, panel.last_error
    state = panel.state
    n = sig.args[0]
    assert n == len(state) and 48 <= n <= 2 * 18 + 18  # 2 long test takes x 18 windows + 18 x 1 (- jitter)
    assert len(state.cleaning["files"]) == N_FILES and not state.cleaning["errors"]
    assert {c.source.split("_")[1] for c in state.clips} == {"clip.npz", "bvh.bvh", "mano.npz"}
    report = {step: removed for step, removed, _unit, _why in panel.report_rows()}
    assert report["Import"] == 0 and report["Intensity"] == 0 and report["Kept"] == n
    assert report["Clip extraction"] == 18 * 10 and report["Jitter"] == 54 - n  # 70 = 60 + 10 frames left over
    assert state.accepted_splits()["test"] >= 32
    assert panel.scope_combo.count() == N_FILES + 1
    panel.scope_combo.setCurrentIndex(2)  # one file's report: take01, 70 frames = one window
    one = dict((r[0], r[1]) for r in panel.report_rows())
    assert "Import" not in one and one["Kept"] + one["Jitter"] == 1 and one["Clip extraction"] == 10
    assert state.cleaning["config"]["min_hand_intensity"] == 0
    view = panel.caption_table
    assert view.model().rowCount() == n and all(c.caption for c in state.clips)

    # --- review: edit one caption, leave one training clip out, save ---------------------------
    train_rows = [i for i, c in enumerate(state.clips) if c.split == "train"]
    edited, dropped = train_rows[0], train_rows[1]
    _edit_caption_like_a_user(qtbot, view, edited, "both hands clap twice")
    assert state.clips[edited].caption == "both hands clap twice" and state.clips[edited].edited
    _untick_like_a_user(qtbot, view, dropped)
    assert not state.clips[dropped].accepted and state.n_accepted == n - 1
    assert "1 caption(s) edited" in panel.summary_label.text()
    out = tmp_path / "my_dataset"
    panel.out_edit.setText(str(out))
    with qtbot.waitSignal(panel.sig_dataset_saved, timeout=30000) as saved:
        qtbot.mouseClick(panel.save_button, Qt.LeftButton)
    assert saved.args == [str(out)]
    corpus = Corpus(out)  # the trainers' reader accepts it
    assert len(corpus) == n - 1 and corpus.meta["source"] == "import"
    assert corpus.meta["splits"]["test"] == state.accepted_splits()["test"]
    assert corpus.meta["review"]["rejected"] == 1 and corpus.meta["review"]["captions"]["edited"] == 1
    rec = next(r for r in corpus.index if r["caption_source"] == "edited")
    assert rec["source"] == state.clips[edited].source
    assert [t["text"] for t in rec["texts"]] == ["both hands clap twice"] * 5
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]  # written atomically, nothing left over

    # --- training panel: fine-tune, cancel, resume to the end -----------------------------------
    tp = QtTrainingPanel(poll_ms=50)
    qtbot.addWidget(tp)
    tp.resize(800, 900)
    tp.show()
    qtbot.waitExposed(tp)
    panel.sig_dataset_saved.connect(tp.set_data_folder)  # what main_window wires
    tp.set_data_folder(saved.args[0])
    assert tp.kind_combo.currentText() == "diffusion"
    tp.add_base_folder(base)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"train": {"batch": 8, "lr": 3e-3, "warmup": 3, "threads": 1, "device": "cpu",
                                            "ckpt_every": 10}}))
    tp.config_edit.setText(str(config))
    tp.out_edit.setText(str(tmp_path / "run"))
    tp.steps_spin.setValue(STEPS)
    tp.val_spin.setValue(20)
    tp.device_combo.setCurrentText("cpu")
    qtbot.mouseClick(tp.start_button, Qt.LeftButton)
    assert tp.running and not tp.start_button.isEnabled() and tp.cancel_button.isEnabled(), tp.last_error
    qtbot.waitUntil(lambda: len(tp.loss_steps) >= 12 or not tp.running, timeout=60000)
    assert tp.running, tp.last_error
    xs, ys = tp.loss_curve.getData()
    assert len(xs) >= 12 and np.all(np.asarray(ys) > 0)  # the curve got points
    assert tp.val_steps[:1] == [0]  # the base model's validation loss
    assert tp.plot.getPlotItem().getAxis("left").logMode  # log scale
    assert tp.device_label.text().startswith("cpu") and tp.eta_label.text().startswith("ETA")

    qtbot.mouseClick(tp.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tp.running, timeout=10000)
    assert tp.state == "cancelled" and tp.resume_button.isEnabled() and not tp.pause_button.isEnabled()
    killed_at = tp.loss_steps[-1]
    assert killed_at < STEPS

    qtbot.mouseClick(tp.resume_button, Qt.LeftButton)
    assert tp.running and tp.state == "running"
    qtbot.waitUntil(lambda: not tp.running, timeout=60000)
    assert tp.state == "done", tp.last_error
    assert tp.loss_steps[-1] == STEPS and tp.loss_steps == sorted(set(tp.loss_steps))
    assert tp.val_steps == list(range(0, STEPS + 1, 20))
    assert tp.evaluate_button.isEnabled() and tp.use_button.isEnabled()

    # --- evaluate base vs fine-tuned on the held-out split, then use it ------------------------
    tp.eval_n_spin.setValue(32)
    tp.eval_steps_spin.setValue(2)
    with qtbot.waitSignal(tp.sig_evaluated, timeout=120000) as ev:
        qtbot.mouseClick(tp.evaluate_button, Qt.LeftButton)
    rows = ev.args[0]
    assert list(rows) == ["Ground truth", "Base", "Fine-tuned"]
    assert tp.eval_table.rowCount() == 3 and tp.eval_table.verticalHeaderItem(2).text() == "Fine-tuned"
    assert all(np.isfinite(rows["Fine-tuned"][k]) for k in ("R@1", "FID", "MM-Dist"))

    tp.name_edit.clear()
    qtbot.keyClicks(tp.name_edit, "my-hands")
    with qtbot.waitSignal(tp.modelActivated, timeout=5000) as used:
        qtbot.mouseClick(tp.use_button, Qt.LeftButton)
    assert used.args == ["my-hands"]
    entry = Registry().active("diffusion")
    assert entry.name == "my-hands" and entry.path == str(tmp_path / "run" / "model")
    assert entry.base == str(base) and entry.data == str(out)
    assert entry.metrics["steps"] == STEPS and set(entry.metrics["eval"]) == set(rows) and "val_loss" in entry.metrics
    assert any(tp.base_combo.itemText(i) == "Registered: my-hands" for i in range(tp.base_combo.count()))

    # --- the app generates with the model just made active ---------------------------------------
    from engine.api import Studio
    studio = Studio.load(device="cpu")  # HAND_STUDIO_DATA is this test's: its registry's active model
    assert studio.diffusion == str(tmp_path / "run" / "model")
    assert studio.models["diffusion"] == str(tmp_path / "run" / "model")
    clip = studio.generate("the right hand waves", frames=60, seed=0, steps=2)
    assert clip.joints.shape[:2] == (60, 2) and np.isfinite(clip.joints).all()

    assert tp.shutdown() and panel.shutdown()
    assert panel._staging_root is None and not list((tmp_path / "staging").iterdir())


@pytest.mark.gui
def test_training_errors_are_shown(qtbot, tmp_path, monkeypatch):
    """An error event from the run (here from a stand-in process printing what the trainer prints)
    becomes a readable message, the run is marked failed and Resume is offered."""
    from engine.training import runner
    from hand_studio._qt import training_panel as T

    messages = {"nan": "step 3: loss joints is nan (terms {}); stopped, weights unchanged since the last checkpoint",
                "disk": "not enough disk space for checkpoints in /runs/x: 3.0 MiB free on /runs, need 9.0 MiB"}
    data = tmp_path / "data"
    data.mkdir()
    (data / "meta.json").write_text("{}")
    tp = T.QtTrainingPanel(poll_ms=20)
    qtbot.addWidget(tp)
    tp.show()
    tp.data_edit.setText(str(data))
    tp.out_edit.setText(str(tmp_path / "run"))
    tp.base_combo.setCurrentIndex(tp.base_combo.count() - 1)  # from scratch
    for key, want in (("nan", "Training stopped: a loss or gradient became NaN"), ("disk", "Not enough disk space")):
        script = (f"import json, sys; print(json.dumps({{'event': 'start', 'device': 'cpu', 'world_size': 1}})); "
                  f"print(json.dumps({{'event': 'error', 'type': 'TrainingError', 'message': {messages[key]!r}}})); "
                  "sys.exit(2)")
        monkeypatch.setattr(runner, "build_command", lambda *a, s=script, **k: [sys.executable, "-c", s])
        with qtbot.waitSignal(tp.sig_run_state_changed, timeout=10000, check_params_cb=lambda s: s == "failed"):
            assert tp.start()
        qtbot.waitUntil(lambda: not tp.running, timeout=10000)
        assert tp.last_error.startswith(want) and want in tp.message_label.text()
        assert tp.resume_button.isEnabled() and tp.start_button.isEnabled() and not tp.use_button.isEnabled()
    for field in (tp.data_edit, tp.out_edit):  # an unknown ~user: one message (pathlib raises RuntimeError)
        old = field.text()
        field.setText("~no_such_user_hs/x")
        assert tp.start() is False and "no such user's home folder" in tp.last_error
        field.setText(old)
    tp.shutdown()


STAND_IN = """
import json, signal, sys, time
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
start = int(sys.argv[1])
print(json.dumps({"event": "start", "device": "stand-in", "world_size": 1, "windows": 8}), flush=True)
for step in range(start + 1, 1000):
    time.sleep(0.02)
    print(json.dumps({"event": "step", "step": step, "of": 999, "loss": {"total": 1.0 / step}, "eta_s": 5,
                      "device": "stand-in"}), flush=True)
    if stop:
        print(json.dumps({"event": "done", "step": step, "of": 999, "paused": True, "model": "m"}), flush=True)
        sys.exit(0)
"""


@pytest.mark.gui
def test_pause_and_resume_buttons(qtbot, tmp_path, monkeypatch):
    """Pause & save sends SIGTERM and waits for the run's paused 'done'; Resume starts it again and
    the curve continues; Cancel kills it (a stand-in process speaking the trainer's events)."""
    from engine.training import runner
    from hand_studio._qt import training_panel as T

    data = tmp_path / "data"
    data.mkdir()
    (data / "meta.json").write_text("{}")
    argv = [sys.executable, "-c", STAND_IN, "0"]
    monkeypatch.setattr(runner, "build_command", lambda *a, **k: list(argv))
    tp = T.QtTrainingPanel(poll_ms=20)
    qtbot.addWidget(tp)
    tp.show()
    tp.data_edit.setText(str(data))
    tp.out_edit.setText(str(tmp_path / "run"))
    qtbot.mouseClick(tp.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(tp.loss_steps) >= 5, timeout=10000)
    assert tp.device_label.text().startswith("stand-in") and tp.pause_button.isEnabled()
    qtbot.mouseClick(tp.pause_button, Qt.LeftButton)
    assert tp.state == "pausing" and not tp.pause_button.isEnabled()
    qtbot.waitUntil(lambda: not tp.running, timeout=10000)
    assert tp.state == "paused" and tp.last_done["paused"] and tp.resume_button.isEnabled()
    paused_at = tp.loss_steps[-1]
    assert "paused" in tp.progress.text() and not tp.use_button.isEnabled()
    tp.run.argv[-1] = str(paused_at)  # the stand-in continues where it stopped, as the trainer does
    qtbot.mouseClick(tp.resume_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: tp.loss_steps[-1] >= paused_at + 3, timeout=10000)
    assert tp.loss_steps == list(range(1, tp.loss_steps[-1] + 1))
    qtbot.mouseClick(tp.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tp.running, timeout=10000)
    assert tp.state == "cancelled" and tp.resume_button.isEnabled()
    tp.shutdown()


@pytest.mark.gui
def test_start_over_then_cancel_then_resume(qtbot, tmp_path, monkeypatch):
    """QA's sequence with real runs: Output holds a finished run; Start, "Start over", Cancel before
    the new run's first checkpoint, Resume: the restarted run trains from step 0 to its own end and
    only then offers its model; the panel says where the old run went (previous/, which keeps it)."""
    from engine.data.corpus_build import build_corpus
    from engine.diffusion.denoiser import DenoiserConfig
    from engine.hands import default_hands_cpu
    from engine.training import train_diffusion as td
    from hand_studio._qt.training_panel import QtTrainingPanel

    corpus = build_corpus(20, 1, tmp_path / "corpus", workers=1, frames=20)
    tiny = DenoiserConfig(frames=20, patch=2, d_model=32, layers=1, heads=2, ffn=64, dropout=0.0)
    train = {"batch": 8, "lr": 3e-3, "warmup": 3, "threads": 1, "device": "cpu", "ckpt_every": 10}
    out, steps = tmp_path / "run", 20
    list(td.train_iter(td.load_corpus(corpus), out, tiny, td.TrainConfig(**train, steps=6), hands=default_hands_cpu()))
    old_model = (out / "model" / "model.safetensors").read_bytes()  # the finished run: 6 steps
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"model": tiny.to_dict(), "train": train}))
    tp = QtTrainingPanel(poll_ms=20)
    qtbot.addWidget(tp)
    tp.show()
    tp.data_edit.setText(str(corpus))
    tp.out_edit.setText(str(out))
    tp.config_edit.setText(str(config))
    tp.base_combo.setCurrentIndex(tp.base_combo.count() - 1)  # from scratch
    tp.steps_spin.setValue(steps)
    tp.val_spin.setValue(0)
    tp.device_combo.setCurrentText("cpu")
    asked = []
    monkeypatch.setattr(tp, "ask_existing_run", lambda o: asked.append(o) or "restart")
    qtbot.mouseClick(tp.start_button, Qt.LeftButton)
    assert asked == [out] and tp.running, tp.last_error
    qtbot.waitUntil(lambda: len(tp.loss_steps) >= 1 or not tp.running, timeout=60000)
    qtbot.mouseClick(tp.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tp.running, timeout=10000)
    assert tp.state == "cancelled" and not tp.evaluate_button.isEnabled() and not tp.use_button.isEnabled()
    state = out / "train_state" / "state.json"
    own = json.loads(state.read_text())["step"] if state.is_file() else 0  # almost surely 0: no checkpoint yet
    assert own in (0, 10) and own <= tp.loss_steps[-1]  # this run's checkpoint or none, never the old run's 6
    previous = Path(tp.run_info["previous_run"])
    assert previous.parent == out / "previous" and str(previous) in tp.message_label.text()
    assert (previous / "model" / "model.safetensors").read_bytes() == old_model

    qtbot.mouseClick(tp.resume_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tp.running, timeout=60000)
    assert tp.state == "done", tp.last_error
    assert tp.last_done["step"] == steps and tp.loss_steps == list(range(1, steps + 1))
    assert tp.state_label.text() == f"done — step {steps} / {steps}"
    assert tp.evaluate_button.isEnabled() and tp.use_button.isEnabled() and tp.model_folder == out / "model"
    assert (out / "model" / "model.safetensors").read_bytes() != old_model
    assert str(previous) in tp.message_label.text() and not tp.start_event["previous_run"]  # resumed, not restarted
    tp.shutdown()


def test_start_over_is_asked_about_the_kinds_own_state(qtbot, tmp_path, monkeypatch):
    """A CLUTCH stage keeps its state in OUT/<stage>/train_state: the panel asks Continue / Start
    over about that folder (not OUT/train_state), and "Start over" runs it with --no-resume."""
    from engine.training import runner
    from hand_studio._qt import training_panel as T

    data = tmp_path / "data"
    data.mkdir()
    (data / "meta.json").write_text("{}")
    out = tmp_path / "run"
    (out / "pretrain" / "train_state").mkdir(parents=True)
    resumes = []
    monkeypatch.setattr(runner, "build_command",
                        lambda *a, **k: resumes.append(k["resume"]) or [sys.executable, "-c", "pass"])
    tp = T.QtTrainingPanel(poll_ms=20)
    qtbot.addWidget(tp)
    tp.data_edit.setText(str(data))
    tp.out_edit.setText(str(out))
    asked = []
    for kind, answer, started in (("shift", None, True), ("diffusion", None, True), ("clutch-pt", "cancel", False),
                                  ("clutch-pt", "restart", True), ("clutch-pt", "continue", True)):
        monkeypatch.setattr(tp, "ask_existing_run", lambda o, a=answer: asked.append((tp.kind, o)) or a)
        tp.kind_combo.setCurrentText(kind)
        assert tp.start() == started, tp.last_error
        qtbot.waitUntil(lambda: not tp.running, timeout=10000)
    assert asked == [("clutch-pt", out)] * 3 and resumes == [True, True, False, True]
    tp.shutdown()


# --- CLUTCH runs: evaluate base vs fine-tuned, use; a SHIFT run alone cannot be used ---------------

CLUTCH_TEST = 8


def _tiny_clutch(root, n_test: int = CLUTCH_TEST):
    """A corpus of 2 train and ``n_test`` test clips (five caption levels each) and, untrained and
    tiny: a SHIFT, two LMs (a base CLUTCH folder and a run's RUN/model, both shift/ + lm/) and an
    evaluator."""
    import torch

    from engine.clutch.language_model import LMConfig, MotionLM, save_lm
    from engine.clutch.shift import ShiftConfig, ShiftTokenizer, save_shift
    from engine.clutch.vocab import MotionVocab, build_vocab
    from engine.data.corpus_build import write_corpus
    from engine.data.synth import generate_clip
    from engine.diffusion.representation import clip_to_tensor
    from engine.evaluation.evaluator import Evaluator, EvaluatorConfig, save_evaluator

    distinct = [generate_clip(s) for s in range(min(n_test, CLUTCH_TEST) + 2)]
    clips = [distinct[s % len(distinct)] for s in range(n_test + 2)]  # more test clips: repeats

    def caption(labels):
        if not labels:
            return "the hands rest"
        a = labels[0]
        hand = "both hands" if a["hands"] == "both" else f"the {a['lead']} hand"
        return f"{hand} {a['action'].replace('_', ' ')}"
    splits = ["train"] * 2 + ["test"] * n_test
    records = []
    for (_, labels), split in zip(clips, splits):
        cap = caption(labels)
        texts = [{"level": lv, "text": cap if lv == 1 else f"{cap}, level {lv}.", "left": "", "right": ""}
                 for lv in range(1, 6)]
        records.append({"split": split, "texts": texts, "action": cap, "actions": [], "events": {},
                        "event_types": [], "source": "test"})
    arrays = {k: np.stack([getattr(c, k) for c, _ in clips]) for k in ("transl", "global_orient", "hand_pose",
                                                                       "betas", "joints")}
    data = write_corpus(root / "data", [(arrays, records)], {"frames": 60, "fps": 30, "source": "test"})
    torch.manual_seed(0)
    shift_cfg = ShiftConfig(codebook_size=16, code_dim=8, width=16, res_blocks=1)
    shift = ShiftTokenizer(shift_cfg)
    shift.set_stats(torch.stack([clip_to_tensor(c) for c, _ in clips]))
    vocab = MotionVocab(build_vocab([caption(l) for _, l in clips] + ["describe this hand motion"], margin=20),
                        shift_cfg.codebook_size)
    lm_cfg = LMConfig(d_model=32, d_kv=8, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=4, dropout=0.0,
                      max_text_tokens=12)
    for folder in (root / "base", root / "run" / "model"):
        save_shift(folder / "shift", shift)
        save_lm(folder / "lm", MotionLM(lm_cfg, vocab), {"stage": "pretrain", "prompt_style": "plain"})
    (root / "run" / "shift" / "model").mkdir(parents=True)  # what a shift run's done event points at
    save_shift(root / "run" / "shift" / "model", shift)
    save_evaluator(root / "evaluator", Evaluator(EvaluatorConfig(d_model=32, layers=1, heads=2, emb=16)))
    return data


def _finished_run(qtbot, tp, monkeypatch, kind, model):
    """Start ``kind`` on the panel against a stand-in process that prints the trainer's start and
    done events (done points at ``model``) and exits: the run is done."""
    from engine.training import runner
    script = ("import json; print(json.dumps({'event': 'start', 'device': 'cpu', 'world_size': 1})); "
              f"print(json.dumps({{'event': 'step', 'step': 1, 'of': 1, 'loss': 1.0}})); "
              f"print(json.dumps({{'event': 'done', 'step': 1, 'of': 1, 'paused': False, 'model': {str(model)!r}}}))")
    monkeypatch.setattr(runner, "build_command", lambda *a, **k: [sys.executable, "-c", script])
    tp.kind_combo.setCurrentText(kind)
    assert tp.kind == kind
    qtbot.mouseClick(tp.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not tp.running, timeout=20000)
    assert tp.state == "done", tp.last_error


@pytest.mark.gui
def test_clutch_run_evaluate_and_use(qtbot, tmp_path, monkeypatch):
    from engine.registry import Registry
    from engine.threads import torch_threads
    from hand_studio._qt.training_panel import CLUTCH_EVAL_COLUMNS, QtTrainingPanel

    monkeypatch.setenv("HAND_STUDIO_DATA", str(tmp_path / "user-data"))
    data = _tiny_clutch(tmp_path)
    run = tmp_path / "run"
    tp = QtTrainingPanel(poll_ms=20)
    qtbot.addWidget(tp)
    tp.show()
    tp.clutch_evaluator = str(tmp_path / "evaluator")  # the tiny one, not the shipped one
    tp.data_edit.setText(str(data))
    tp.out_edit.setText(str(run))

    # a SHIFT run alone: Evaluate (test_shift_run_evaluate_but_not_use), never Use
    _finished_run(qtbot, tp, monkeypatch, "shift", run / "shift" / "model")
    assert tp.evaluate_button.isEnabled() and not tp.use_button.isEnabled()
    assert "SHIFT" in tp.evaluate_button.toolTip() and "CLUTCH LM stage" in tp.use_button.toolTip()
    assert not tp.use_model("tok")

    # a CLUTCH LM stage fine-tuned from a CLUTCH folder: evaluate base vs fine-tuned, then use it
    tp.kind_combo.setCurrentText("clutch-pt")
    tp.add_base_folder(tmp_path / "base")
    _finished_run(qtbot, tp, monkeypatch, "clutch-pt", run / "model")
    assert tp.evaluate_button.isEnabled() and tp.use_button.isEnabled()
    with torch_threads(1), qtbot.waitSignal(tp.sig_evaluated, timeout=60000) as ev:
        qtbot.mouseClick(tp.evaluate_button, Qt.LeftButton)
    assert not tp.last_error, tp.last_error
    rows = ev.args[0]
    assert list(rows) == ["Ground truth", "Base", "Fine-tuned"]
    assert set(rows["Fine-tuned"]) == set(CLUTCH_EVAL_COLUMNS) and set(rows["Base"]) == set(CLUTCH_EVAL_COLUMNS)
    assert all(0.0 <= rows["Fine-tuned"][k] <= 1.0 for k in ("T2M R@3", "M2T R@3", "BLEU-4", "ROUGE-L"))
    headers = [tp.eval_table.horizontalHeaderItem(c).text() for c in range(tp.eval_table.columnCount())]
    assert headers == list(CLUTCH_EVAL_COLUMNS) and tp.eval_table.rowCount() == 3
    assert tp.eval_table.verticalHeaderItem(2).text() == "Fine-tuned"
    assert tp.eval_table.item(0, headers.index("BLEU-4")).text() == "–"  # no BLEU for the ground truth
    assert tp.eval_n == CLUTCH_TEST  # min(n, the usable test clips)

    with qtbot.waitSignal(tp.modelActivated, timeout=5000) as used:
        assert tp.use_model("my-clutch")
    assert used.args == ["my-clutch"]
    entry = Registry().active("clutch")
    assert entry.name == "my-clutch" and entry.kind == "clutch" and entry.path == str(run / "model")
    assert entry.metrics["eval_n"] == CLUTCH_TEST and set(entry.metrics["eval"]) == set(rows)
    tp.shutdown()


# --- SHIFT runs evaluate (CLUTCH Table 4); CLUTCH evaluation has no hidden cap ---------------------

def test_evaluate_tokenizers_iter(tmp_path):
    """Base vs fine-tuned SHIFT on the first n test clips, with the engine's own Table 4 code."""
    from engine.clutch.evaluate import tokenizer_metrics
    from engine.clutch.shift import load_shift
    from engine.hands import load_hands
    from engine.threads import torch_threads
    from engine.training.train_clutch import load_split
    from hand_studio._qt.training_panel import TOKENIZER_EVAL_COLUMNS, evaluate_tokenizers_iter

    data = _tiny_clutch(tmp_path)
    models = {"Base": tmp_path / "base" / "shift", "Fine-tuned": tmp_path / "run" / "shift" / "model"}
    with torch_threads(1):  # what the app runs with (2 threads on a busy 2-core machine: ~30x slower)
        items = list(evaluate_tokenizers_iter(data, models, 5, chunk=2))
        all_clips = list(evaluate_tokenizers_iter(data, models, 100))[-1]
        test = load_split(data, "test")
        want = tokenizer_metrics(load_shift(models["Base"])[0], test.x[:5], test.betas[:5], load_hands("default"))
    progress, last = items[:-1], items[-1]
    assert last["done"] is True and last["n"] == 5 and last["columns"] == TOKENIZER_EVAL_COLUMNS
    assert [p["done"] for p in progress if p["stage"] == "Base: reconstruct"] == [2, 4, 5]
    rows = last["rows"]
    assert list(rows) == ["Ground truth", "Base", "Fine-tuned"] and set(rows["Ground truth"]) == {"Diversity"}
    assert all(set(rows[k]) == set(TOKENIZER_EVAL_COLUMNS) for k in ("Base", "Fine-tuned"))
    assert rows["Base"]["MPJPE"] == pytest.approx(want["mpjpe_mm"], rel=1e-5)
    assert rows["Base"]["PA-MPJPE"] == pytest.approx(want["pa_mpjpe_mm"], rel=1e-5)
    assert rows["Ground truth"]["Diversity"] == pytest.approx(want["diversity_gt"], rel=1e-5)
    assert rows["Fine-tuned"] == rows["Base"]  # the fixture's two SHIFTs are the same one
    assert all_clips["n"] == CLUTCH_TEST  # all the split has


@pytest.mark.gui
def test_shift_run_evaluate_but_not_use(qtbot, tmp_path, monkeypatch):
    """A tiny SHIFT fine-tuned for 3 steps by the real runner -> Evaluate: CLUTCH Table 4 rows for
    the base's shift/ and the run's SHIFT; Use stays off with the reason (train an LM stage on it)."""
    from engine.threads import torch_threads
    from hand_studio._qt.training_panel import SHIFT_ALONE, TOKENIZER_EVAL_COLUMNS, QtTrainingPanel

    monkeypatch.setenv("HAND_STUDIO_DATA", str(tmp_path / "user-data"))
    data = _tiny_clutch(tmp_path)
    out = tmp_path / "shift_run"
    config = tmp_path / "tiny_shift.json"
    config.write_text(json.dumps({"train": {"shift": {"batch": 2, "warmup": 1, "threads": 1, "device": "cpu",
                                                      "ckpt_every": 2}}}))
    tp = QtTrainingPanel(poll_ms=20)
    qtbot.addWidget(tp)
    tp.resize(800, 900)
    tp.show()
    qtbot.waitExposed(tp)
    tp.kind_combo.setCurrentText("shift")
    tp.add_base_folder(tmp_path / "base")  # a CLUTCH folder: the run fine-tunes its shift/
    tp.data_edit.setText(str(data))
    tp.out_edit.setText(str(out))
    tp.config_edit.setText(str(config))
    tp.steps_spin.setValue(3)
    tp.device_combo.setCurrentText("cpu")
    qtbot.mouseClick(tp.start_button, Qt.LeftButton)
    assert tp.running, tp.last_error
    qtbot.waitUntil(lambda: not tp.running, timeout=60000)
    assert tp.state == "done", tp.last_error
    assert tp.model_folder == out / "shift" / "model" and (out / "shift" / "model" / "config.json").is_file()
    assert tp.evaluate_button.isEnabled() and not tp.use_button.isEnabled() and not tp.name_edit.isEnabled()
    assert tp.use_button.toolTip() == SHIFT_ALONE and "Train a CLUTCH LM stage on it" in SHIFT_ALONE

    messages = []
    tp.sig_message.connect(messages.append)
    with torch_threads(1), qtbot.waitSignal(tp.sig_evaluated, timeout=60000) as ev:
        qtbot.mouseClick(tp.evaluate_button, Qt.LeftButton)
    assert not tp.last_error, tp.last_error
    rows = ev.args[0]
    assert list(rows) == ["Ground truth", "Base", "Fine-tuned"] and tp.eval_n == CLUTCH_TEST
    assert set(rows["Ground truth"]) == {"Diversity"} and set(rows["Fine-tuned"]) == set(TOKENIZER_EVAL_COLUMNS)
    assert all(np.isfinite(rows[k]["MPJPE"]) and rows[k]["MPJPE"] > 0 for k in ("Base", "Fine-tuned"))
    assert rows["Base"]["MPJPE"] != rows["Fine-tuned"]["MPJPE"]  # three steps changed the tokenizer
    assert all(np.isfinite(v) for row in rows.values() for v in row.values())
    headers = [tp.eval_table.horizontalHeaderItem(c).text() for c in range(tp.eval_table.columnCount())]
    assert headers == list(TOKENIZER_EVAL_COLUMNS) and tp.eval_table.rowCount() == 3
    assert [tp.eval_table.verticalHeaderItem(r).text() for r in range(3)] == list(rows)
    assert tp.eval_table.item(0, 0).text() == "–"  # no MPJPE for the ground truth
    assert tp.eval_table.item(2, 0).text() == f"{rows['Fine-tuned']['MPJPE']:.3f}"
    assert not tp.use_button.isEnabled() and tp.use_button.toolTip() == SHIFT_ALONE
    assert any("CLUTCH LM stage" in m for m in messages), messages
    assert not tp.use_model("tok")
    tp.shutdown()


@pytest.mark.gui
def test_clutch_evaluation_is_not_capped(qtbot, tmp_path, monkeypatch):
    """n above 64 evaluates that many clips (the spin box decides; its tooltip says how long)."""
    from engine.threads import torch_threads
    from hand_studio._qt.training_panel import CLUTCH_EVAL_S_PER_CLIP, QtTrainingPanel

    monkeypatch.setenv("HAND_STUDIO_DATA", str(tmp_path / "user-data"))
    data = _tiny_clutch(tmp_path, n_test=70)
    tp = QtTrainingPanel(poll_ms=20)
    qtbot.addWidget(tp)
    tp.show()
    tp.clutch_evaluator = str(tmp_path / "evaluator")
    tp.data_edit.setText(str(data))
    tp.out_edit.setText(str(tmp_path / "run"))
    tp.kind_combo.setCurrentText("clutch-pt")
    tp.base_combo.setCurrentIndex(tp.base_combo.count() - 1)  # from scratch: only the fine-tuned row
    _finished_run(qtbot, tp, monkeypatch, "clutch-pt", tmp_path / "run" / "model")
    assert tp.eval_n_spin.value() == 64 and tp.eval_n_spin.maximum() >= 2048
    tp.eval_n_spin.setValue(66)
    tip = tp.eval_n_spin.toolTip()
    assert f"{CLUTCH_EVAL_S_PER_CLIP:.2f} s per clip" in tip and "n 66 takes about" in tip
    with torch_threads(1), qtbot.waitSignal(tp.sig_evaluated, timeout=60000) as ev:
        qtbot.mouseClick(tp.evaluate_button, Qt.LeftButton)
        assert "about" in tp.eval_progress.text()  # the expected time
    assert not tp.last_error, tp.last_error
    assert list(ev.args[0]) == ["Ground truth", "Fine-tuned"] and tp.eval_n == 66
    assert tp.metrics()["eval_n"] == 66
    tp.shutdown()
