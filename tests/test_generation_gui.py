"""Generation driven like a user in a real window under Xvfb: prompt -> Generate -> a new take;
Cancel; lock a hand; in-between with keys; pin a wrist path; undo/redo; a UI heartbeat; close
mid-generation. The model is a tiny untrained denoiser saved with the real checkpoint code (the
tests check wiring, exact constraints and responsiveness, not motion quality); the text encoder
is the real one, loaded once."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt, QTimer, QElapsedTimer
from PySide6.QtWidgets import QMessageBox

from engine.motion.clip import Prompt
from hand_studio._qt.main_window import MainWindow
from hand_studio.model import commands as C
from hand_studio.model.document import Document
from hand_studio.model.generation import plan_generation

pytestmark = pytest.mark.gui
T = 30  # frames of the starting take


def build_tiny_checkpoint(folder, window: int = 40, seed: int = 0):
    """A d=32, 1-layer denoiser with normalisation stats from procedural clips (so its output is
    hand-shaped), output layer and text tokens randomised so the prompt and seed matter."""
    import torch

    from engine.data.synth import generate_clip
    from engine.diffusion.checkpoint import save_model
    from engine.diffusion.denoiser import Denoiser, DenoiserConfig
    from engine.diffusion.representation import clip_to_tensor, compute_stats

    torch.manual_seed(seed)
    model = Denoiser(DenoiserConfig(frames=window, patch=2, d_model=32, layers=1, heads=2, ffn=64, dropout=0.0))
    x = torch.stack([clip_to_tensor(generate_clip(s, frames=window)[0]) for s in range(4)])
    mean, std = compute_stats(x)
    with torch.no_grad():
        model.x_mean.copy_(mean)
        model.x_std.copy_(std)
        torch.nn.init.normal_(model.motion_out.weight, std=0.2)
        for p in (model.cls, model.null, model.branch):
            torch.nn.init.normal_(p, std=1.0)
    return save_model(folder, model.eval(), {"sampler_steps": 6})


@pytest.fixture(scope="session")
def gen_studio(tmp_path_factory):
    from engine.api import Studio

    folder = build_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "diffusion")
    studio = Studio.load(device="cpu", diffusion=folder)
    pipe = studio.pipeline()
    pipe.text_encoder.encode(["warm up"])  # load MiniLM now, not inside a timed test
    return studio


@pytest.fixture(scope="session")
def start_clip():
    from engine.data.synth import generate_clip

    return generate_clip(3, frames=T)[0]


@pytest.fixture
def window(qtbot, gen_studio, start_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(MainWindow, "ask_save_changes", lambda self: "discard")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(gen_studio, Document(start_clip), settings=settings, recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    w.activateWindow()
    qtbot.waitActive(w)
    p = w.prompt_panel
    p.steps_spin.setValue(6)
    p.frames_spin.setValue(T)
    yield w
    w.close()


def generate_and_wait(qtbot, window, trigger, timeout=20000):
    with qtbot.waitSignal(window.prompt_panel.sig_generation_finished, timeout=timeout) as blocker:
        assert trigger() is not False, window.prompt_panel.last_error
    return blocker.args[0]


def params(clip, hand):
    return [np.asarray(getattr(clip, k))[:, hand] for k in ("transl", "global_orient", "hand_pose")]


def test_prompt_generate_adds_take_and_changes_meshes(window, qtbot):
    p, doc = window.prompt_panel, window.document
    assert p.generate_button.isEnabled() and not p.no_model_label.isVisible()
    qtbot.keyClicks(p.text_edit, "the right hand waves")
    assert doc.prompt.text == "the right hand waves"
    # one hand named: the model reads the text as it is, the Left/Right fields say they are optional
    assert p.right_edit.placeholderText() == "right hand (optional)"
    before = window.viewport.render()
    steps = []
    p.sig_progress.connect(lambda s, of: steps.append((s, of)))
    name = generate_and_wait(qtbot, window, lambda: qtbot.mouseClick(p.generate_button, Qt.LeftButton))
    assert steps and steps[0][1] == 6 and steps == sorted(steps)  # progress advanced
    assert p.progress.value() == p.progress.maximum()
    assert [t.name for t in doc.takes] == ["Take 1", name] and doc.current_take_index == 1
    assert doc.clip.num_frames == T and doc.current_take.generated.all()
    assert doc.clip.prompt.text == "the right hand waves"
    after = window.viewport.render()
    assert after[..., :3].std() > 10  # not blank
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 0.5  # the meshes changed
    assert window.takes_panel.list.count() == 2 and not window.takes_panel.list.item(1).icon().isNull()

    # undo removes the generated take; redo brings the same one back
    clip = doc.clip
    window.action_undo.trigger()
    assert len(doc.takes) == 1 and doc.current_take_index == 0
    window.action_redo.trigger()
    assert len(doc.takes) == 2 and doc.clip is clip

    # switch / rename / delete in the takes list, all undoable
    window.takes_panel.list.setCurrentRow(0)
    assert doc.current_take_index == 0
    assert window.takes_panel.rename(1, "waving")
    assert doc.takes[1].name == "waving" and window.takes_panel.list.item(1).text() == "waving"
    window.takes_panel.list.setCurrentRow(1)
    assert window.takes_panel.delete_current() and len(doc.takes) == 1
    window.action_undo.trigger()
    assert [t.name for t in doc.takes] == ["Take 1", "waving"]


def on_and_off(window, qtbot, box: str, option: str, text: str):
    """Generate ``text`` with the prompt panel's check box ``box`` on (its default) and then off;
    the option it sets must reach the plan. -> ((clip, status message) on, (clip, message) off)."""
    p, doc = window.prompt_panel, window.document
    check = getattr(p, box)
    assert check.isChecked() and getattr(p.options(), option)
    p.text_edit.setPlainText(text)
    messages = []
    p.sig_message.connect(messages.append)
    generate_and_wait(qtbot, window, p.generate)
    on = (doc.clip, messages[-1])
    check.setChecked(False)
    assert not getattr(p.options(), option) and not getattr(plan_generation(doc, p.options()), option)
    generate_and_wait(qtbot, window, p.generate)
    return on, (doc.clip, messages[-1])


def test_named_pinch_is_closed_and_the_checkbox_turns_it_off(window, qtbot):
    """A prompt naming a pinch: the take's thumb and ring tips touch and the status says so; with
    "Close named pinches" off the take is the sampler's own (the tiny model's pinch stays open)."""
    from engine.evaluation.metrics import thumb_gaps
    (on, said_on), (off, said_off) = on_and_off(window, qtbot, "close_pinches_check", "close_pinches",
                                                "pinch the thumb and ring finger of the right hand")
    assert "pinch closed: right thumb-ring" in said_on, said_on
    assert thumb_gaps(on.joints)[:, 1, 2].min() < thumb_gaps(off.joints)[:, 1, 2].min()
    assert "pinch closed" not in said_off


def test_each_hand_its_own_action_checkbox_reaches_the_sampler(window, qtbot):
    """"Each hand its own action" (on by default): a prompt giving each hand a separate action at once
    is sampled hand by hand; with the box off, from all the texts together - a different take."""
    (on, _), (off, _) = on_and_off(window, qtbot, "split_hands_check", "split_hands",
                                   "the right hand waves while the left hand makes a fist")
    assert not np.allclose(on.joints, off.joints)


def test_joint_limits_checkbox_reaches_the_sampler(window, qtbot):
    """"Keep joints in limits" (on by default): no finger joint of the take is past its anatomical
    limit and the status says how much was eased; with the box off the take is the sampler's own,
    whose fingers pass them."""
    from engine.evaluation.physical import limit_violations
    (on, said_on), (off, said_off) = on_and_off(window, qtbot, "joint_limits_check", "joint_limits",
                                                "make a fist with the right hand")
    assert limit_violations(on.hand_pose, on.betas)["limit_frac"] == 0
    assert "eased inside their limits" in said_on, said_on
    assert limit_violations(off.hand_pose, off.betas)["limit_frac"] > 0 and "limits" not in said_off


def test_hand_parts_of_the_prompt_show_in_the_empty_fields(window, qtbot):
    """A prompt that gives each hand its own part: the empty Left/Right fields show the part the
    diffusion model will read there; a typed field is the user's and wins."""
    p = window.prompt_panel
    qtbot.keyClicks(p.text_edit, "the right hand waves while the left hand holds still")
    assert p.left_edit.placeholderText() == "from the prompt: The left hand holds still."
    assert p.right_edit.placeholderText() == "from the prompt: The right hand waves."
    qtbot.keyClicks(p.left_edit, "left fist")
    assert window.document.prompt.left == "left fist"  # the derived text is never written into the take
    p.text_edit.clear()
    assert p.right_edit.placeholderText() == "right hand (optional)"


def test_cancel_stops_without_a_take(window, qtbot):
    p = window.prompt_panel
    p.steps_spin.setValue(1000)
    p.text_edit.setPlainText("both hands clap")
    with qtbot.waitSignal(p.sig_progress, timeout=10000):
        qtbot.mouseClick(p.generate_button, Qt.LeftButton)
    assert p.cancel_button.isEnabled() and not p.generate_button.isEnabled()
    worker = p.worker
    with qtbot.waitSignal(p.sig_generation_cancelled, timeout=5000):
        qtbot.mouseClick(p.cancel_button, Qt.LeftButton)
    assert worker._thread.isFinished() and worker.offered < 1000
    assert len(window.document.takes) == 1 and p.generate_button.isEnabled()
    assert window.viewport.hands_visual.visible  # the preview is gone


def test_lock_left_regenerate_right_is_bit_identical(window, qtbot):
    doc = window.document
    window.prompt_panel.text_edit.setPlainText("the right hand drums its fingers")
    window.prompt_panel.guidance_spin.setValue(3.0)  # guidance goes to the loaded pipeline
    src = doc.clip
    generate_and_wait(qtbot, window, window.regenerate_actions["right"].trigger)
    assert doc.locked_hands == {"left"} and window.prompt_panel.lock_checks["left"].isChecked()
    for a, b in zip(params(doc.clip, 0), params(src, 0)):
        assert np.array_equal(a, b)  # bit-identical
    assert np.abs(doc.clip.hand_pose[:, 1] - src.hand_pose[:, 1]).max() > 1e-3
    assert not doc.current_take.generated[:, [0, 2]].any() and doc.current_take.generated[:, [1, 3]].all()


def test_drag_key_then_inbetween_keeps_keys_exact(window, qtbot, press_shortcut):
    doc, tl = window.document, window.timeline
    for f in (0, 10, T - 1):
        doc.frame = f
        press_shortcut(window, Qt.Key_K)
    keyed_pose = doc.key_values("right_hand", 10)
    # drag the middle keys (frame 10) to frame 16 with the mouse
    doc.select([(t, 10) for t in ("left_hand", "right_hand", "left_wrist", "right_wrist")])
    vp = tl.plot.viewport()
    pts = [tl.view_point(f, 2) for f in (10, 13, 16)]
    qtbot.mouseMove(vp, pts[0])
    qtbot.mousePress(vp, Qt.LeftButton, Qt.NoModifier, pts[0])
    for pt in pts[1:]:
        qtbot.wait(20)
        qtbot.mouseMove(vp, pt)
    qtbot.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, pts[-1])
    assert doc.key_frames("right_hand") == [0, 16, T - 1]
    window.timeline.select_all()
    press_shortcut(window, Qt.Key_I)  # interval from the selected keys
    assert doc.interval == (0, T - 1)
    src = doc.clip
    window.prompt_panel.text_edit.setPlainText("the hands open and close")
    generate_and_wait(qtbot, window, window.action_inbetween.trigger)
    clip = doc.clip
    for t in ("left_hand", "right_hand"):
        h = 0 if t.startswith("left") else 1
        for f in doc.key_frames(t):
            assert np.abs(clip.hand_pose[f, h] - doc.key_values(t, f)).max() <= 1e-5
    for t in ("left_wrist", "right_wrist"):
        h = 0 if t.startswith("left") else 1
        for f in doc.key_frames(t):
            v = doc.key_values(t, f)
            assert np.abs(clip.transl[f, h] - v[:3]).max() <= 1e-5
            assert np.abs(clip.global_orient[f, h] - v[3:]).max() <= 1e-5
    assert np.array_equal(clip.hand_pose[16, 1], keyed_pose)  # the dragged key's pose, at its new frame
    assert np.abs(clip.hand_pose[5] - src.hand_pose[5]).max() > 1e-3  # between the keys: regenerated
    gen = doc.current_take.generated
    assert not gen[[0, 16, T - 1]].any() and gen[5].all()


def test_pinned_wrist_path_is_followed(window, qtbot):
    doc = window.document
    wrist = doc.clip.joints[:, 1, 0]
    s = np.linspace(0, 2 * np.pi, T)
    path = wrist[0] + 0.05 * np.stack([np.cos(s) - 1, np.sin(s), np.zeros(T)], 1)  # a 5 cm circle
    assert window.push(lambda: C.SetWristPath(doc, "right", [(f, path[f]) for f in range(T)]))
    window.prompt_panel.text_edit.setPlainText("the right hand draws a circle")
    generate_and_wait(qtbot, window, lambda: window.pin_actions["right"].trigger())
    err = np.abs(doc.clip.joints[:, 1, 0] - path).max()
    assert err <= 0.005, err  # metres
    assert window.prompt_panel.pin_checks["right"].isChecked()


def test_bad_combination_and_engine_errors_show_a_message(window, qtbot):
    p, doc = window.prompt_panel, window.document
    window.lock_actions["left"].trigger()
    p.text_edit.setPlainText("wave")
    assert window.extend_take() is False
    box = window.findChild(QMessageBox, "error_box")
    assert box is not None and box.isVisible() and "turn off locked hands" in box.text()
    box.accept()
    window.lock_actions["left"].trigger()
    p.text_edit.setPlainText("   ")  # refused at once, and the hint line says so before Generate
    assert p.constraint_hint.text() == "Cannot generate: the prompt is empty: type what the hands should do (or fill Left / Right)"
    assert p.generate() is False and not p.running
    assert any(b.isVisible() and "the prompt is empty" in b.text() for b in window.findChildren(QMessageBox))
    p.right_edit.setText("the right hand waves")  # a hand's own text is a prompt too
    assert not p.constraint_hint.text().startswith("Cannot") and p.constraint_hint.text() == p.describe()
    p.right_edit.setText("")
    for b in window.findChildren(QMessageBox):
        b.close()
    p.extend_check.setChecked(False)  # ticked by Extend take above
    p.text_edit.setPlainText(" ".join(["wave"] * 60))  # judged as typed, by the engine's rule and tokenizer
    assert p.constraint_hint.text().startswith("Cannot generate: prompt.text is too long: 62 tokens, at most 32 per")
    assert p.generate() is False and not p.running
    assert any(b.isVisible() and "62 tokens" in b.text() for b in window.findChildren(QMessageBox))
    p.frames_spin.setValue(300)  # a longer take does not help one part without 'then'
    assert "shorten it, or split it with 'then'" in p.constraint_hint.text()
    p.text_edit.setPlainText(" then ".join(["wave " * 10] * 3))  # 3 parts, each fits a window
    assert not p.constraint_hint.text().startswith("Cannot")
    pipe = p.studio.pipeline()
    W = pipe.model.config.frames
    p.frames_spin.setValue(W)  # one window reads all three parts: 34 tokens
    assert f"its 3 'then' parts need a take of at least {W + 2 * (W - pipe.overlap)} frames" in p.constraint_hint.text()
    for b in window.findChildren(QMessageBox):
        b.close()
    p.text_edit.setPlainText(" ".join(["wave"] * 60))
    p.studio.prompt_problem = lambda *a, **k: None  # a length the panel could not judge: the engine still refuses
    try:
        with qtbot.waitSignal(p.sig_generation_failed, timeout=10000) as blocker:
            p.generate()  # refused on the worker thread; its message is shown verbatim
    finally:
        del p.studio.prompt_problem
    assert blocker.args[0].startswith("prompt.text is too long: 62 tokens")
    qtbot.waitUntil(lambda: any(b.isVisible() and "too long" in b.text() for b in window.findChildren(QMessageBox)))
    assert len(doc.takes) == 1 and not p.running


def test_extend_take_continues_it(window, qtbot):
    doc = window.document
    src = doc.clip
    p = window.prompt_panel
    p.frames_spin.setValue(20)
    p.context_spin.setValue(6)
    p.text_edit.setPlainText("then both hands rest")
    generate_and_wait(qtbot, window, window.extend_take)
    assert doc.clip.num_frames == T + 20
    assert np.array_equal(doc.clip.hand_pose[:T], src.hand_pose)  # the take so far is kept
    assert doc.current_take.generated[T:].all() and not doc.current_take.generated[:T].any()


def test_extend_past_the_model_limit_is_refused_in_the_users_numbers(window):
    """Duration 1800 with Extend: the model's limit counts the 10 context frames too, so the panel
    says how far the take can be extended instead of the engine's 1810 the user never typed."""
    p = window.prompt_panel
    p.extend_check.setChecked(True)
    p.frames_spin.setValue(1800)  # the hint line says it before Generate
    assert p.constraint_hint.text().startswith("Cannot generate: Extend by at most 1790 frames")
    p.context_spin.setValue(20)
    assert "at most 1780 frames" in p.constraint_hint.text()
    p.context_spin.setValue(10)
    p.extend_check.setChecked(False)
    p.text_edit.setPlainText("wave")
    assert window.extend_take() is False
    box = window.findChild(QMessageBox, "error_box")
    assert box is not None and box.isVisible()
    assert "Extend by at most 1790 frames with 10 context frames" in box.text() and "1810" not in box.text()
    box.accept()
    assert p.describe().startswith("Cannot generate: Extend by at most 1790 frames")
    assert len(window.document.takes) == 1 and not p.running


def test_context_frames_survive_a_short_take(window, qtbot):
    """The context count is clamped to the take's length while the take is shorter (a new project's
    one-frame rest pose) and comes back to what was asked once a long enough take is open: a fresh
    window reads the default 10, not the rest pose's 1."""
    from hand_studio.model.document import Document

    doc = window.document
    p = window.prompt_panel
    assert p.context_spin.value() == 10 and p.context_wanted == 10
    p.context_spin.setValue(12)
    doc.adopt(Document())  # File > New: the one-frame rest pose
    assert doc.clip.num_frames == 1
    assert p.context_spin.maximum() == 1 and p.context_spin.value() == 1
    assert p.context_wanted == 12  # the clamp is not the user's choice
    assert p.options().context_frames == 1
    p.frames_spin.setValue(20)
    p.text_edit.setPlainText("both hands rest")
    generate_and_wait(qtbot, window, p.generate)
    assert doc.clip.num_frames == 20
    assert p.context_spin.value() == 12 and p.options().context_frames == 12
    p.context_spin.setValue(5)  # a choice made while the take is long is kept too
    assert p.context_wanted == 5


def test_fresh_window_reads_default_context(qtbot, gen_studio, tmp_path, monkeypatch):
    from hand_studio.model.document import Document

    monkeypatch.setattr(MainWindow, "ask_save_changes", lambda self: "discard")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(gen_studio, Document(), settings=settings, recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(w)
    p = w.prompt_panel
    assert p.context_spin.value() == 1 and p.context_wanted == 10  # shown clamped to the rest pose
    p.frames_spin.setValue(20)
    p.text_edit.setPlainText("both hands rest")
    generate_and_wait(qtbot, w, p.generate)
    assert p.context_spin.value() == 10
    w._replace_prompt_panel(gen_studio)  # models reloaded: the new panel keeps the asked-for count
    assert w.prompt_panel.context_spin.value() == 10 and w.prompt_panel.context_wanted == 10
    w.close()


def test_ui_heartbeat_during_generation(window, qtbot):
    """A 10 ms QTimer on the GUI thread from Generate until the result is a take: the largest gap
    between ticks is the longest the UI froze (previews drawn, the take added). The failure message
    says what happened around the worst gap: previews shown, cyclic-GC passes (thread, generation,
    duration), how long the worker stood aside while previews were drawn (issue 7)."""
    import gc
    import threading
    import time

    p = window.prompt_panel
    p.steps_spin.setValue(500)  # 0.5-2 s on the tiny model, with previews
    p.text_edit.setPlainText("the left hand holds still while the right hand drums its fingers")
    clock, gaps, ticks = QElapsedTimer(), [], []
    clock.start()
    t0 = time.perf_counter() - clock.elapsed() / 1000  # the same origin, for other threads
    last = [clock.elapsed()]

    def tick():
        now = clock.elapsed()
        gaps.append(now - last[0])
        ticks.append(now)
        last[0] = now

    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(tick)
    timer.start()
    qtbot.wait(50)
    gaps.clear()
    ticks.clear()
    last[0] = clock.elapsed()
    worker, shown, gc_passes, gc_start = [], [], [], {}
    p.sig_generation_started.connect(lambda _: worker.append(p.worker))
    p.sig_progress.connect(lambda step, of: shown.append(clock.elapsed()))
    p.sig_generation_finished.connect(lambda _: (tick(), timer.stop()))

    def on_gc(phase, info):  # diagnostics only: a full pass holds the GIL for its whole walk
        ms = (time.perf_counter() - t0) * 1000
        if phase == "start":
            gc_start[threading.get_ident()] = ms
        elif info["generation"] >= 1:
            began = gc_start.pop(threading.get_ident(), ms)
            gc_passes.append(f"{threading.current_thread().name} gen{info['generation']} "
                             f"at {began:.0f} ms for {ms - began:.1f} ms")

    gc.callbacks.append(on_gc)
    try:
        generate_and_wait(qtbot, window, p.generate, timeout=30000)
    finally:
        gc.callbacks.remove(on_gc)
    w = worker[0]
    print(f"\nheartbeat: {len(gaps)} ticks in {sum(gaps)} ms, max gap {max(gaps)} ms; "
          f"previews drawn {w.delivered} of {w.offered}; worker held {1000 * w.held_s:.0f} ms")
    assert len(gaps) > 20 and w.delivered > 0
    worst = int(np.argmax(gaps))
    end = ticks[worst]
    assert max(gaps) < 100, (
        f"the UI thread froze {gaps[worst]} ms, from {end - gaps[worst]} to {end} ms after Generate; "
        f"previews shown at {shown} ms; the take added at {ticks[-1]} ms; gc passes (gen >= 1): "
        f"{gc_passes or 'none'}; the worker stood aside {1000 * w.held_s:.0f} ms for {w.delivered} previews "
        f"({w.holds_timed_out} holds ended by timeout); all gaps (ms): {gaps}")


def test_close_mid_generation_exits_cleanly(window, qtbot):
    p = window.prompt_panel
    p.steps_spin.setValue(1000)
    p.text_edit.setPlainText("both hands wave")
    with qtbot.waitSignal(p.sig_progress, timeout=10000):
        p.generate()
    worker = p.worker
    assert window.close()
    assert worker._thread.isFinished() and worker.offered < 1000  # cancelled, not run to the end
    assert len(window.document.takes) == 1
    qtbot.wait(50)  # the queued "cancelled" arrives after the close: ignored, nothing breaks


def test_plan_names_bad_combinations_without_qt(start_clip):
    """The planning layer (no Qt): what each option pins, and the refusals it words."""
    from hand_studio.model.generation import GenerationError, GenerationOptions, plan_generation

    doc = Document(start_clip)
    opts = GenerationOptions(prompt=Prompt("wave"), frames=T)
    assert plan_generation(doc, opts).constraints is None
    with pytest.raises(GenerationError, match="In-between needs an interval"):
        plan_generation(doc, GenerationOptions(prompt=Prompt("wave"), inbetween=True))
    C.AddKeys(doc, frame=T - 1).do()
    with pytest.raises(GenerationError, match="past the 20 frames"):
        plan_generation(doc, GenerationOptions(prompt=Prompt("wave"), frames=20))
    C.SetHandLocked(doc, "left").do()
    plan = plan_generation(doc, opts)
    assert plan.frames == T and "left hand locked" in plan.description
    with pytest.raises(GenerationError, match="the left hand is locked, so its wrist"):
        plan_generation(doc, GenerationOptions(prompt=Prompt("wave"), pin_wrists=("left",)))
    with pytest.raises(GenerationError, match="turn off locked hands"):
        plan_generation(doc, GenerationOptions(prompt=Prompt("wave"), extend=True))


def run_plan(plan, studio):
    """Engine result of ``plan`` (headless) -> (result, the new take's clip, its generated mask)."""
    raw = None
    for item in plan.start(studio):
        raw = item.get("clip", raw)
    return (raw,) + plan.finish(raw)


def test_extend_a_60fps_take_keeps_its_rate_and_frames(gen_studio, start_clip):
    """The model runs at 30 fps: it sees the context at its rate, ending on the take's last frame, and
    the new frames come back at 60 fps, one take frame per half model frame; the take is kept exactly."""
    from engine.export.rig import resample
    from hand_studio.model.generation import GenerationOptions

    src = resample(start_clip, 60.0)  # (59 frames)
    n = src.num_frames
    doc = Document(src)
    plan = plan_generation(doc, GenerationOptions(prompt=Prompt("wave"), frames=40, extend=True, context_frames=10,
                                                  steps=2))
    assert plan.frames == 5 + 20 and plan.description.startswith("Extend by 40 frames")  # 5 context + 20 new
    raw, out, gen = run_plan(plan, gen_studio)
    assert raw.fps == 30.0 and np.abs(raw.transl[:5] - src.transl[n - 9::2]).max() < 1e-5  # context at 30 fps
    assert out.fps == 60.0 and out.num_frames == n + 40 and np.array_equal(out.betas, src.betas)
    for k in ("transl", "global_orient", "hand_pose"):
        assert np.array_equal(getattr(out, k)[:n], getattr(src, k))  # bit-identical
    new = np.arange(1, 21)  # take frame n - 1 + 2j is model frame 4 + j: the model's speed, not twice it
    assert np.abs(out.transl[n - 1 + 2 * new] - raw.transl[4 + new]).max() < 1e-5
    assert np.abs(out.hand_pose[n - 1 + 2 * new] - raw.hand_pose[4 + new]).max() < 1e-4
    assert np.array_equal(gen[:n], doc.current_take.generated) and gen[n:].all()


def test_lock_hand_regenerate_on_a_60fps_take(gen_studio, start_clip):
    """A locked hand on a 60 fps take: the other hand made at 30 fps and resampled back; the take
    keeps its length, rate and the locked hand bit for bit."""
    from engine.export.rig import resample
    from hand_studio.model.generation import GenerationOptions

    src = resample(start_clip, 60.0)
    doc = Document(src)
    C.SetHandLocked(doc, "left").do()
    plan = plan_generation(doc, GenerationOptions(prompt=Prompt("the right hand waves"), steps=2))
    assert plan.frames == 30 and "left hand locked" in plan.description
    raw, out, gen = run_plan(plan, gen_studio)
    assert out.num_frames == src.num_frames and out.fps == 60.0 and np.array_equal(out.betas, src.betas)
    for a, b in zip(params(out, 0), params(src, 0)):
        assert np.array_equal(a, b)
    assert np.abs(out.hand_pose[::2, 1] - raw.hand_pose[:, 1]).max() < 1e-4  # frame 2j = model frame j
    assert np.abs(out.hand_pose[:, 1] - src.hand_pose[:, 1]).max() > 1e-3
    assert not gen[:, [0, 2]].any() and gen[:, [1, 3]].all()


def test_pinned_wrist_on_a_24fps_take_is_exact(gen_studio, start_clip):
    """A wrist path pinned on a 24 fps take: the model follows it at 30 fps and, resampled back, the
    wrist sits on the pinned path at every take frame (the translation's linear resampling is
    corrected by the pin's own offset); uncorrected, this jagged path was 28 mm off."""
    from engine.export.rig import resample
    from hand_studio.model.generation import GenerationOptions

    src = resample(start_clip, 24.0)
    doc = Document(src)
    n = src.num_frames
    s = np.linspace(0, 2 * np.pi, n)
    path = src.joints[0, 1, 0] + 0.05 * np.stack([np.cos(s) - 1, np.sin(s), np.zeros(n)], 1)
    pinned = list(range(0, n, 3))  # pinned points on every third frame; the take's wrist between them
    C.SetWristPath(doc, "right", [(f, path[f]) for f in pinned]).do()
    plan = plan_generation(doc, GenerationOptions(prompt=Prompt("the right hand draws a circle"),
                                                  pin_wrists=("right",), steps=2))
    assert 1 in plan.pins
    raw, out, gen = run_plan(plan, gen_studio)
    assert out.num_frames == n and out.fps == 24.0
    err = np.abs(out.joints[pinned, 1, 0] - path[pinned]).max()
    assert err < 1e-5, err  # metres


def test_inbetween_with_keys_on_a_60fps_take_keeps_them_exact(gen_studio, start_clip):
    from engine.export.rig import resample
    from hand_studio.model.generation import GenerationOptions

    src = resample(start_clip, 60.0)
    doc = Document(src)
    C.AddKeys(doc, frame=20).do()
    C.MoveKeys(doc, [(t, 20) for t in ("left_hand", "right_hand", "left_wrist", "right_wrist")], 11).do()
    C.SetInterval(doc, (10, 50)).do()  # a key between two model frames (31 = 15.5 at 30 fps)
    plan = plan_generation(doc, GenerationOptions(prompt=Prompt("the hands open"), inbetween=True, steps=2))
    assert plan.frames == 30
    _, out, gen = run_plan(plan, gen_studio)
    kept = np.r_[0:10, 51:src.num_frames]
    assert out.num_frames == src.num_frames and out.fps == 60.0
    for k in ("transl", "global_orient", "hand_pose"):
        assert np.array_equal(getattr(out, k)[kept], getattr(src, k)[kept])
    assert np.array_equal(out.hand_pose[31, 1], doc.key_values("right_hand", 31))
    assert np.array_equal(out.hand_pose[31, 1], src.hand_pose[20, 1])  # the moved key's pose
    assert not gen[kept].any() and not gen[31].any() and gen[30].all()


@pytest.mark.parametrize("fps", [60.0, 120.0])
def test_inbetween_edges_on_a_high_rate_take(gen_studio, start_clip, fps):
    """At 60 / 120 fps: a key on the interval's last frame, or a wrist pinned over it, once landed on
    a model frame that was already kept (a "constraints conflict" from the engine); and the model
    frame across each seam is kept at the take's value, so the take frames up to the first free one
    are interpolated, never one 1/120 s jump (QA: seam speed 3.3x its neighbours at 120 fps)."""
    from engine.export.rig import resample
    from hand_studio.model.generation import GenerationOptions

    src = resample(start_clip, fps)
    T, step = src.num_frames, int(fps // 30)  # take frames per model frame
    a, b = 2 * step + 2, T - 2 * step - 3  # the seams fall between model frames
    doc = Document(src)
    C.SetInterval(doc, (a, b)).do()
    C.AddKeys(doc, frame=b).do()
    plan = plan_generation(doc, GenerationOptions(prompt=Prompt("the hands open"), inbetween=True,
                                                  pin_wrists=("right",), steps=2))
    _, out, gen = run_plan(plan, gen_studio)
    outside = np.r_[0:a, b + 1:T]
    for k in ("transl", "global_orient", "hand_pose"):
        assert np.array_equal(getattr(out, k)[outside], getattr(src, k)[outside])
    assert np.array_equal(out.hand_pose[b], src.hand_pose[b])  # the key (the take's own pose there)
    assert np.abs(out.joints[a:b + 1, 1, 0] - src.joints[a:b + 1, 1, 0]).max() < 1e-5  # pinned wrist
    m0 = -(-a // step) * step  # the first model frame in the interval: kept, at the take's value
    assert np.abs(out.hand_pose[m0] - src.hand_pose[m0]).max() < 1e-4
    f1 = m0 + step  # the take frames to the next model frame are interpolated from there
    u = np.arange(1, step)[:, None, None] / step
    assert np.abs(out.transl[m0 + 1:f1] - ((1 - u) * out.transl[m0] + u * out.transl[f1])).max() < 1e-5


def test_clutch_plans_refuse_constraints_and_lengths_in_the_takes_frames(start_clip):
    """With the clutch model chosen, the hint line already says it takes no constraints (it used to
    describe a regenerate that the engine then refused), and lengths are in the take's frames at
    its own rate (a 120 fps Duration of 20 was refused as "got 6")."""
    from engine.export.rig import resample
    from hand_studio.model.generation import GenerationError, GenerationOptions, caption_request

    doc = Document(start_clip)
    C.SetHandLocked(doc, "left").do()
    C.AddKeys(doc, frame=5).do()
    with pytest.raises(GenerationError, match=r"takes no constraints \(locked hands, keys \(Keep keys\)\)"):
        plan_generation(doc, GenerationOptions(prompt=Prompt("wave"), model="clutch"))
    with pytest.raises(GenerationError, match="extending the take"):
        plan_generation(doc, GenerationOptions(prompt=Prompt("wave"), model="clutch", extend=True))
    free = Document(start_clip)
    with pytest.raises(GenerationError, match="the clutch model reads one text"):  # Left/Right were ignored
        plan_generation(free, GenerationOptions(prompt=Prompt("wave", "the left hand makes a fist"), model="clutch"))
    plan_generation(free, GenerationOptions(prompt=Prompt("", "the left hand makes a fist"), model="clutch"))
    fast = Document(resample(start_clip, 120.0))
    with pytest.raises(GenerationError, match="at least 29 frames at 120 fps"):
        plan_generation(fast, GenerationOptions(prompt=Prompt("wave"), model="clutch", frames=20))
    plan = plan_generation(fast, GenerationOptions(prompt=Prompt("wave"), model="clutch", frames=240))
    assert plan.frames == 61  # 2 s at 30 fps, both ends included

    class Studio:  # the clutch model's own limit, known once it is loaded
        def pipeline(self, model):
            return type("P", (), {"max_frames": 32})()
    with pytest.raises(GenerationError, match=r"at most 125 frames at 120 fps \(1.1 s\)"):
        plan.start(Studio())
    C.SetInterval(fast, (10, 21)).do()  # 12 frames at 120 fps: 3 at 30
    with pytest.raises(ValueError, match="too short to describe: 12 frames at 120 fps; at least 29"):
        caption_request(fast)
    from hand_studio.model.generation import describe_clip

    class Captioner:  # a captioner that takes at most 16 frames at 30 fps
        def pipeline(self, model):
            return type("P", (), {"max_frames": 16})()

        def caption(self, clip):
            return f"{clip.num_frames} frames"
    C.SetInterval(fast, (0, 99)).do()  # 100 frames at 120 fps: 25 at 30
    clip, what = caption_request(fast)
    with pytest.raises(ValueError, match=r"too long to describe: at most 61 frames at 120 fps \(0.5 s\)"):
        describe_clip(Captioner(), clip, 120.0, what)
    C.SetInterval(fast, (0, 40)).do()
    assert describe_clip(Captioner(), caption_request(fast)[0], 120.0, "x") == "11 frames"


def test_preview_frames_line_up_with_the_take(start_clip):
    """A preview at the playhead shows the same moment: an extension's context at the take's own
    frames (the take itself before it), a resampled regenerate at the model's frame for that time."""
    from engine.export.rig import resample
    from hand_studio.model.generation import GenerationOptions

    doc = Document(start_clip)  # 30 fps, T frames
    plan = plan_generation(doc, GenerationOptions(prompt=Prompt("wave"), extend=True, context_frames=10, frames=60))
    assert plan.preview_frame(T - 1, 70) == 9 and plan.preview_frame(T - 10, 70) == 0
    assert plan.preview_frame(0, 70) is None  # before the context: the take as it is
    fast = Document(resample(start_clip, 60.0))
    n = fast.num_frames
    plan = plan_generation(fast, GenerationOptions(prompt=Prompt("wave"), extend=True, context_frames=10, frames=20))
    assert plan.preview_frame(n - 1, plan.frames) == plan.model_at[0] - 0.5  # the context's last model frame
    plan = plan_generation(fast, GenerationOptions(prompt=Prompt("wave"), pin_wrists=("right",)))
    assert [plan.preview_frame(f, plan.frames) for f in (0, 1, 2, 40)] == [0, 1, 1, 20]


def test_menu_actions_while_generating_change_nothing(window, qtbot):
    """A Generate-menu action refused because a generation runs leaves locks, options and the undo
    stack as they were (it used to lock a hand and tick Extend before being refused); New during a
    generation drops its result rather than adding it to the new document."""
    from hand_studio.model.document import Document

    p, doc = window.prompt_panel, window.document
    p.steps_spin.setValue(500)
    p.text_edit.setPlainText("wave")
    assert p.generate()
    depth = window.undo_stack.count()
    assert window.regenerate_other("left") is False and window.extend_take() is False
    assert window.inbetween() is False and window.pin_wrist_and_regenerate("right") is False
    assert doc.locked_hands == frozenset() and not p.extend_check.isChecked()
    assert window.undo_stack.count() == depth
    window.new_project()  # discard (the fixture's answer): the running generation is for the old take
    qtbot.waitUntil(lambda: not p.running, timeout=20000)
    assert len(window.document.takes) == 1 and window.undo_stack.count() == 0 and not window.dirty


def test_extend_limit_is_refused_when_planning(start_clip):
    """The model makes at most 1800 frames per generation, context included: planning says so in
    the user's frames, before the engine would refuse a count the user never typed."""
    from hand_studio.model.generation import GenerationError, GenerationOptions

    doc = Document(start_clip)
    opts = dict(prompt=Prompt("wave"), extend=True, context_frames=10)
    with pytest.raises(GenerationError, match=r"Extend by at most 1790 frames with 10 context frames \(the model "
                                              r"makes at most 1800 frames per generation\); got 1800"):
        plan_generation(doc, GenerationOptions(frames=1800, **opts))
    plan = plan_generation(doc, GenerationOptions(frames=1790, **opts))
    assert plan.frames == 1800 and plan.model_at is None  # a 30 fps take: no resampling
    doc24 = Document(start_clip.copy(fps=24.0))  # 1800 frames at 24 fps are 2250 at 30
    with pytest.raises(GenerationError, match="Generate at most 1440 frames at 24 fps"):
        plan_generation(doc24, GenerationOptions(prompt=Prompt("wave"), frames=1800))


def test_no_model_disables_generate(qtbot, studio, small_clip, tmp_path, monkeypatch):
    import engine.api
    monkeypatch.setattr(engine.api, "resource_path", lambda rel: tmp_path / "no-resources" / rel)
    assert studio.models == {}
    w = MainWindow(studio, Document(small_clip), settings=QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat),
                   recovery_dir=tmp_path / "recovery")
    qtbot.addWidget(w)
    p = w.prompt_panel
    assert not p.generate_button.isEnabled() and not w.action_generate.isEnabled()
    assert "No generation model is installed" in p.no_model_label.text()
    assert "no generation model installed" in w.status_label.text()
    w.close()
