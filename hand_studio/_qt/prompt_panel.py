"""The prompt panel: what to generate (whole / left / right prompts, model, duration, seed, steps,
guidance), which of the document's constraints to keep, Generate / Cancel with a progress bar,
and a live preview of the denoising in the viewport.

The request is planned on the GUI thread from the Document (``hand_studio.model.generation``);
the engine runs on a ``GeneratorWorker`` (``hand_studio._qt.workers``). Previews are written into the
viewport's hand meshes (vertex buffers only), so the real document, its takes and the undo
history are untouched until the result arrives; then it becomes a new take through one
undoable ``AddTake`` (with its generated-frames mask). While the window draws a preview the
worker stands aside (``PREVIEW_HOLD_MS``; released by the GL widget's ``frameSwapped``).

"Describe take" captions the current take (its interval when one is set) with the CLUTCH
captioner (``Studio.caption``) on a worker and writes the sentence into the whole-motion prompt
field as one field edit (Ctrl+Z in the field takes it back). It is off, with a tooltip saying why,
when no captioning model is installed.
"""
from __future__ import annotations

import random
import time

import numpy as np
import torch

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPainter, QPalette, QTextCursor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout,
                               QLabel, QLineEdit, QMessageBox, QPlainTextEdit, QPushButton, QSizePolicy,
                               QSpinBox, QToolButton, QVBoxLayout, QWidget)

from engine.api import SHIPPED_CLUTCH, SHIPPED_DIFFUSION, Studio
from engine.motion.clip import Clip, Prompt
from engine.diffusion.hand_texts import derive_hand_texts
from engine.resources import resource_path
from hand_studio._qt.workers import GeneratorWorker, single_call
from hand_studio._vispy.hands_visual import _upload_positions as upload_positions
from hand_studio.model import commands as C
from hand_studio.model.document import Document
from hand_studio.model.events import Event
from hand_studio.model.generation import (GenerationError, GenerationOptions, caption_request, describe_clip,
                                          plan_generation)

MAX_SEED = 2 ** 31 - 1
EMPTY_PROMPT = "the prompt is empty: type what the hands should do (or fill Left / Right)"
DEFAULT_FRAMES = 60
# The generator worker pauses after each preview it delivers until the viewport has drawn it
# (the window's frameSwapped), at most this long: the draw's GL composition runs on threads the
# denoising would otherwise take the CPU from (issue 7; see "Holding" in workers.py).
PREVIEW_HOLD_MS = 60.0


def blank(prompt: Prompt) -> bool:
    """Nothing in the prompt but spaces: no field says what the hands should do."""
    return not any(t.strip() for t in (prompt.text, prompt.left, prompt.right))


def no_model_message() -> str:
    """What to do when no generation model is installed (shown instead of a working button)."""
    return ("No generation model is installed, so Generate is off. Train one with "
            "<code>hand-studio train diffusion --data CORPUS --out RUN</code> (a corpus comes from "
            "<code>hand-studio data</code>), then copy <code>RUN/model</code> to "
            f"<code>{resource_path(SHIPPED_DIFFUSION)}</code> and restart. "
            "<code>hand-studio info</code> lists the installed models.")


def no_captioner_message() -> str:
    """Why "Describe take" is off."""
    return ("No captioning model is installed: Describe take needs the CLUTCH model in "
            f"{resource_path(SHIPPED_CLUTCH)} (shift/ and lm/; `hand-studio train clutch` makes one)")


class PreviewHands:
    """Shows preview clips in the viewport without touching the document: the preview pose at the
    playhead is written straight into the hand meshes' vertex buffers (the viewport's fast path,
    no shader rebuild), and ``end()`` puts the document's current pose back."""

    def __init__(self, viewport, document: Document, hands):
        self.viewport = viewport
        self.document = document
        self.hands = hands
        self.clip: Clip | None = None
        self.shown = 0  # previews drawn since the last end()
        # take frame -> the preview clip's frame at the same moment (None: the take's own pose there)
        self.frame_map = lambda f, n: min(f, n - 1)

    @property
    def active(self) -> bool:
        return self.clip is not None

    def show(self, clip: Clip) -> bool:
        """Write ``clip``'s pose at the playhead into the meshes; True when a frame will be drawn
        for it (the viewport is on screen), so the window's ``frameSwapped`` will follow."""
        if self.viewport.hands_visual is None:  # viewport closed
            return False
        if self.clip is None:
            self.document.events.frame.connect(self._on_frame_change)  # after the visual's own listener
        self.clip = clip
        self._upload(self._at_playhead())
        self.shown += 1
        return self.on_screen()

    def on_screen(self) -> bool:
        """The viewport is shown in a window the windowing system exposes (not minimised)."""
        vp = self.viewport
        if not vp.isVisible():
            return False
        handle = vp.window().windowHandle()
        return handle is not None and handle.isExposed()

    @torch.no_grad()
    def _pose(self, clip: Clip, frame: int) -> list[np.ndarray]:
        """One frame of ``clip`` -> [left (V, 3), right (V, 3)] vertices."""
        dev = self.hands.device
        sl = slice(frame, frame + 1)
        arg = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev)  # noqa: E731
        verts, _ = self.hands(arg(clip.betas), arg(clip.global_orient[sl]), arg(clip.hand_pose[sl]),
                              arg(clip.transl[sl]))
        return [v[0].float().cpu().numpy() for v in verts]

    def _upload(self, verts: list[np.ndarray]) -> None:
        vis = self.viewport.hands_visual
        if vis is None:
            return
        for h, mesh in enumerate(vis.meshes):
            upload_positions(mesh, verts[h], vis.faces[h])

    def _at_playhead(self) -> list[np.ndarray]:
        frame = self.frame_map(self.document.frame, self.clip.num_frames)
        if frame is None:
            return self._pose(self.document.clip, self.document.frame)
        return self._pose(self.clip, frame)

    def _on_frame_change(self, event: Event | None = None) -> None:
        if self.clip is not None:
            self._upload(self._at_playhead())

    def end(self) -> None:
        """Back to the document's pose at the playhead."""
        if self.clip is None:
            return
        self.document.events.frame.disconnect(self._on_frame_change)
        self.clip = None
        self.shown = 0
        vis = self.viewport.hands_visual
        if vis is not None and len(vis.vertices):
            self._upload(vis.vertices)

    def close(self) -> None:
        self.end()


class QtProgressBar(QWidget):
    """A progress bar whose updates are deferred (``update()``), unlike QProgressBar, whose
    ``setValue`` repaints at once: in a window holding the GL viewport every synchronous repaint
    re-composites the whole window (~20 ms on llvmpipe), once per denoising step."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._min, self._max, self._value, self._format = 0, 1, 0, ""
        self.setMinimumHeight(20)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    def setRange(self, lo: int, hi: int) -> None:
        self._min, self._max = int(lo), max(int(lo), int(hi))
        self.update()

    def setValue(self, value: int) -> None:
        self._value = min(max(int(value), self._min), self._max)
        self.update()

    def setFormat(self, text: str) -> None:
        self._format = text
        self.update()

    def value(self) -> int:
        return self._value

    def maximum(self) -> int:
        return self._max

    def text(self) -> str:
        return self._format

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        r = self.rect().adjusted(0, 0, -1, -1)
        pal = self.palette()
        p.setPen(pal.color(QPalette.Mid))
        p.setBrush(pal.color(QPalette.Base))
        p.drawRoundedRect(r, 3, 3)
        span = self._max - self._min
        frac = (self._value - self._min) / span if span > 0 else 0.0
        if frac > 0:
            fill = r.adjusted(1, 1, -1, -1)
            fill.setWidth(max(1, round(fill.width() * frac)))
            p.setPen(Qt.NoPen)
            p.setBrush(pal.color(QPalette.Highlight))
            p.drawRoundedRect(fill, 2, 2)
        p.setPen(pal.color(QPalette.Text))
        p.drawText(r, Qt.AlignCenter, self._format)
        p.end()


class QtPromptPanel(QWidget):
    """Prompt fields, generation settings, constraint options, Generate / Cancel and progress."""

    sig_generation_started = Signal(str)
    """A generation started (its description)."""
    sig_progress = Signal(int, int)
    """A preview arrived: (step, of)."""
    sig_generation_finished = Signal(str)
    """The result became a new take (its name)."""
    sig_generation_failed = Signal(str)
    """Planning or the engine refused the request (the message shown)."""
    sig_generation_cancelled = Signal()
    """Cancel stopped the generation; nothing was added."""
    sig_message = Signal(str)
    """One line for the status bar."""
    sig_caption_finished = Signal(str)
    """Describe take wrote this sentence into the prompt field."""
    sig_caption_failed = Signal(str)
    """Describe take failed (the message shown)."""

    def __init__(self, document: Document, studio: Studio, push, viewport=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.studio = studio
        self._push = push
        self.viewport = viewport
        self.preview = PreviewHands(viewport, document, studio.hands) if viewport is not None else None
        frame_swapped = getattr(getattr(getattr(viewport, "canvas", None), "native", None), "frameSwapped", None)
        if frame_swapped is not None:  # the window composited a frame: a preview is on screen
            frame_swapped.connect(self._on_frame_swapped)
        self._hold_ms = PREVIEW_HOLD_MS if frame_swapped is not None else 0.0
        self.worker: GeneratorWorker | None = None
        self.caption_worker: GeneratorWorker | None = None
        self.plan = None
        self._closed = False
        self._writing_prompt = False
        self._epoch = 0  # bumped when the window shows another document (New, Open, Recover)
        self._run_epoch = self._caption_epoch = 0  # the document a generation / caption was for
        self.last_error = ""
        self.started_at = 0.0
        self._build()
        ev = document.events
        self._listeners = [(ev.prompt, self._on_prompt_change), (ev.constraints, self._on_constraints_change),
                           (ev.clip, self._on_constraints_change), (ev.keys, self._on_constraints_change)]
        for emitter, cb in self._listeners:
            emitter.connect(cb)
        self._on_prompt_change()
        self._on_constraints_change()
        self.load_settings()
        self._update_state()

    # --- widgets ------------------------------------------------------------------------
    def _build(self) -> None:
        self.text_edit = QPlainTextEdit(self)
        self.text_edit.setObjectName("prompt_text")
        self.text_edit.setPlaceholderText("What both hands do, e.g. the left hand holds still while the "
                                          "right hand drums its fingers")
        self.text_edit.setFixedHeight(64)
        self.text_edit.setTabChangesFocus(True)
        self.left_edit = QLineEdit(self)
        self.left_edit.setObjectName("prompt_left")
        self.left_edit.setPlaceholderText("left hand (optional)")
        self.right_edit = QLineEdit(self)
        self.right_edit.setObjectName("prompt_right")
        self.right_edit.setPlaceholderText("right hand (optional)")
        for w in (self.left_edit, self.right_edit):
            w.textChanged.connect(self._write_prompt)
        self.text_edit.textChanged.connect(self._write_prompt)
        self.text_edit.textChanged.connect(self._update_hand_placeholders)

        self.describe_button = QToolButton(self)
        self.describe_button.setObjectName("describe_button")
        self.describe_button.setText("Describe take")
        self.describe_button.clicked.connect(lambda: self.describe_take())
        self.describe_status = QLabel(self)
        self.describe_status.setObjectName("describe_status")
        self.describe_status.setStyleSheet("color: #a0a4ab")
        describe_row = QHBoxLayout()
        describe_row.addWidget(self.describe_button)
        describe_row.addWidget(self.describe_status, 1)

        prompt_box = QGroupBox("Prompt", self)
        form = QFormLayout(prompt_box)
        form.addRow(self.text_edit)
        form.addRow(describe_row)
        form.addRow("Left", self.left_edit)
        form.addRow("Right", self.right_edit)

        self.model_combo = QComboBox(self)
        self.model_combo.setObjectName("model_combo")
        for name, folder in self.studio.models.items():
            self.model_combo.addItem(name)
            self.model_combo.setItemData(self.model_combo.count() - 1, folder, Qt.ToolTipRole)
        self.model_combo.currentTextChanged.connect(self._update_hand_placeholders)
        self.frames_spin = QSpinBox(self)
        self.frames_spin.setRange(8, 1800)
        self.frames_spin.setValue(DEFAULT_FRAMES)
        self.frames_spin.setSuffix(" frames")
        self.frames_spin.setToolTip("Length of a new take; with Extend, the frames added")
        self.seconds_label = QLabel(self)
        self.frames_spin.valueChanged.connect(self._update_seconds)
        frames_row = QHBoxLayout()
        frames_row.addWidget(self.frames_spin, 1)
        frames_row.addWidget(self.seconds_label)
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, MAX_SEED)
        self.reroll_button = QToolButton(self)
        self.reroll_button.setText("Re-roll")
        self.reroll_button.setToolTip("A new random seed (another answer to the same prompt)")
        self.reroll_button.clicked.connect(self.reroll)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.reroll_button)
        self.steps_spin = QSpinBox(self)
        self.steps_spin.setRange(0, 1000)
        self.steps_spin.setSpecialValueText("model default")
        self.steps_spin.setToolTip("Denoising steps: more is slower and usually smoother")
        self.guidance_spin = QDoubleSpinBox(self)
        self.guidance_spin.setRange(0.0, 20.0)
        self.guidance_spin.setSingleStep(0.5)
        self.guidance_spin.setSpecialValueText("model default")
        self.guidance_spin.setToolTip("Classifier-free guidance: how strongly the prompt is followed")

        settings_box = QGroupBox("Settings", self)
        form = QFormLayout(settings_box)
        form.addRow("Model", self.model_combo)
        form.addRow("Duration", frames_row)
        form.addRow("Seed", seed_row)
        form.addRow("Steps", self.steps_spin)
        form.addRow("Guidance", self.guidance_spin)

        self.keep_keys_check = QCheckBox("Keep keys exact", self)
        self.keep_keys_check.setChecked(True)
        self.keep_keys_check.setToolTip("Keyed poses stay exactly as keyed")
        self.close_pinches_check = QCheckBox("Close named pinches", self)
        self.close_pinches_check.setChecked(True)
        self.close_pinches_check.setToolTip("When the prompt says the thumb meets a fingertip (\"pinch the thumb "
                                            "and ring finger\", \"OK sign\"), bend that thumb and finger until "
                                            "the tips touch where the model brings them closest")
        self.split_hands_check = QCheckBox("Each hand its own action", self)
        self.split_hands_check.setChecked(True)
        self.split_hands_check.setToolTip("When Left and Right give each hand a separate action at the same time "
                                          "(\"the right hand waves while the left hand makes a fist\"), generate "
                                          "each hand from its own field (both fields, its own first, as the "
                                          "prompt), so one hand's action does not leak into the other")
        self.joint_limits_check = QCheckBox("Keep joints in limits", self)
        self.joint_limits_check.setChecked(True)
        self.joint_limits_check.setToolTip("Ease any finger joint the model bends past its anatomical limit back "
                                           "inside over a few frames (kept keys and locked hands are not touched); "
                                           "off: the model's poses as they are")
        self.inbetween_check = QCheckBox("In-between the interval only", self)
        self.inbetween_check.setToolTip("Regenerate only the selected interval; the rest of the take and "
                                        "every key stay exact (Ctrl+drag on the timeline sets the interval)")
        self.lock_checks = {}
        self.pin_checks = {}
        for hand in ("left", "right"):
            lock = QCheckBox(f"Lock {hand} hand", self)
            lock.setToolTip(f"Keep the {hand} hand exactly and regenerate the other")
            lock.toggled.connect(lambda on, h=hand: self._set_locked(h, on))
            self.lock_checks[hand] = lock
            pin = QCheckBox(f"Pin {hand} wrist path", self)
            pin.setToolTip(f"The {hand} wrist follows the current take over the interval (the whole take "
                           "when there is none) and any pinned wrist points")
            self.pin_checks[hand] = pin
        self.extend_check = QCheckBox("Extend the take", self)
        self.extend_check.setToolTip("Continue the current take by Duration frames with this prompt")
        self.context_spin = QSpinBox(self)
        self.context_spin.setRange(1, 60)
        self.context_spin.setValue(10)
        self.context_spin.setSuffix(" context frames")
        self.context_spin.setToolTip("How many frames at the end of the take the continuation starts from "
                                     "(at most the take's length)")
        # What the user asked for: a short take lowers the maximum (and so the shown value) for a
        # while, and a longer one brings the asked-for count back.
        self.context_wanted = 10
        self._clamping_context = False
        self.context_spin.valueChanged.connect(self._remember_context)
        self.constraint_hint = QLabel(self)
        self.constraint_hint.setObjectName("constraint_hint")
        self.constraint_hint.setWordWrap(True)
        self.constraint_hint.setStyleSheet("color: #a0a4ab")
        # the hint follows the prompt ("the prompt is empty" comes and goes), Duration and the context
        # (the extend limit depends on them)
        for w in (self.text_edit, self.left_edit, self.right_edit):
            w.textChanged.connect(self._update_hint)
        for spin in (self.frames_spin, self.context_spin):
            spin.valueChanged.connect(self._update_hint)
        for w in (self.inbetween_check, self.extend_check, self.keep_keys_check, *self.pin_checks.values()):
            w.toggled.connect(self._on_constraints_change)

        constraints_box = QGroupBox("Keep", self)
        grid = QVBoxLayout(constraints_box)
        grid.addWidget(self.keep_keys_check)
        grid.addWidget(self.close_pinches_check)
        grid.addWidget(self.split_hands_check)
        grid.addWidget(self.joint_limits_check)
        grid.addWidget(self.inbetween_check)
        row = QHBoxLayout()
        row.addWidget(self.lock_checks["left"])
        row.addWidget(self.lock_checks["right"])
        grid.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.pin_checks["left"])
        row.addWidget(self.pin_checks["right"])
        grid.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.extend_check)
        row.addWidget(self.context_spin)
        grid.addLayout(row)
        grid.addWidget(self.constraint_hint)

        self.generate_button = QPushButton("Generate", self)
        self.generate_button.setObjectName("generate_button")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(lambda: self.generate())
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)
        self.progress = QtProgressBar(self)
        self.progress.setObjectName("generate_progress")
        self.progress.setFormat("idle")
        self.no_model_label = QLabel(no_model_message(), self)
        self.no_model_label.setObjectName("no_model_label")
        self.no_model_label.setWordWrap(True)
        self.no_model_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.no_model_label.setStyleSheet("color: #f0c060")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(prompt_box)  # the prompt and its buttons first: visible in small windows
        layout.addWidget(self.no_model_label)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(settings_box)
        layout.addWidget(constraints_box)
        layout.addStretch(1)
        self._update_seconds()

    def load_settings(self) -> None:
        """Seed, steps, guidance, duration and model from the document's last generation (a
        project keeps them; a new document has none: the defaults)."""
        g = self.document.generation
        self.seed_spin.setValue(int(g.get("seed", 0)))
        self.steps_spin.setValue(int(g.get("steps") or 0))
        self.guidance_spin.setValue(float(g.get("guidance") or 0.0))
        self.frames_spin.setValue(int(g.get("frames", DEFAULT_FRAMES)))
        model = g.get("model")
        if model and self.model_combo.findText(model) >= 0:
            self.model_combo.setCurrentText(model)

    # --- state --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.is_running

    @property
    def has_model(self) -> bool:
        return self.model_combo.count() > 0

    @property
    def has_captioner(self) -> bool:
        return "clutch" in self.studio.models

    @property
    def captioning(self) -> bool:
        return self.caption_worker is not None and self.caption_worker.is_running

    def _update_state(self) -> None:
        running = self.running
        self.generate_button.setEnabled(self.has_model and not running)
        self.generate_button.setToolTip("Generate a new take (Ctrl+Return)" if self.has_model
                                        else "No generation model is installed (see the note above)")
        self.no_model_label.setVisible(not self.has_model)
        self.cancel_button.setEnabled(running)
        can_caption = self.has_captioner
        self.describe_button.setEnabled(can_caption and not self.captioning)
        self.describe_button.setToolTip(
            "Caption the current take (its interval when one is set) with CLUTCH and put the sentence "
            "in the prompt" if can_caption else no_captioner_message())

    def _update_seconds(self) -> None:
        self.seconds_label.setText(f"{self.frames_spin.value() / self.document.fps:.2f} s")

    def reroll(self) -> int:
        self.seed_spin.setValue(random.randint(0, MAX_SEED))
        return self.seed_spin.value()

    # --- model -> widgets -----------------------------------------------------------------
    def _on_prompt_change(self, event: Event | None = None) -> None:
        if self._writing_prompt:
            return
        p = self.document.prompt
        self._writing_prompt = True
        try:
            if self.text_edit.toPlainText() != p.text:
                self.text_edit.setPlainText(p.text)
            for w, v in ((self.left_edit, p.left), (self.right_edit, p.right)):
                if w.text() != v:
                    w.setText(v)
        finally:
            self._writing_prompt = False

    def _update_hand_placeholders(self) -> None:
        """An empty Left/Right field shows what the diffusion model will read there: the clauses of
        the prompt that name that hand (engine.diffusion.hand_texts), so the split is never hidden."""
        derived = ("", "")
        if (self.model_combo.currentText() or "diffusion") == "diffusion":
            derived = derive_hand_texts(self.text_edit.toPlainText().strip())
        for w, hand, text in ((self.left_edit, "left", derived[0]), (self.right_edit, "right", derived[1])):
            w.setPlaceholderText(f"from the prompt: {text}" if text else f"{hand} hand (optional)")
            w.setToolTip(f"Empty: the model reads \"{text}\" here (from the prompt)" if text
                         else f"What the {hand} hand does (optional)")  # the placeholder is cut in a narrow dock

    def _on_constraints_change(self, event=None) -> None:
        doc = self.document
        for hand, check in self.lock_checks.items():
            check.blockSignals(True)
            check.setChecked(hand in doc.locked_hands)
            check.blockSignals(False)
        self._clamp_context(doc.num_frames)
        self.constraint_hint.setText(self.describe())
        self._update_seconds()

    def _remember_context(self, value: int) -> None:
        if not self._clamping_context:
            self.context_wanted = value

    def _clamp_context(self, num_frames: int) -> None:
        """At most the take's frames; the user's own count again once the take is long enough."""
        self._clamping_context = True
        try:
            self.context_spin.setMaximum(max(1, num_frames))
            self.context_spin.setValue(min(self.context_wanted, self.context_spin.maximum()))
        finally:
            self._clamping_context = False

    def set_context_frames(self, n: int) -> None:
        """The asked-for context (shown clamped to the take's length until the take is long enough)."""
        self.context_wanted = max(1, int(n))
        self._clamp_context(self.document.num_frames)

    def _update_hint(self, *args) -> None:
        self.constraint_hint.setText(self.describe())

    def describe(self) -> str:
        """What Generate would do now, in one line (or why it cannot)."""
        try:
            plan = plan_generation(self.document, self.options())
        except (GenerationError, ValueError) as e:
            return f"Cannot generate: {e}"
        if blank(self.current_prompt()):
            return f"Cannot generate: {EMPTY_PROMPT}"
        problem = self._length_problem(plan)
        return f"Cannot generate: {problem}" if problem else plan.description

    def _length_problem(self, plan) -> str | None:
        """The engine's verdict on the prompt's length for this plan, without loading the model
        (None when it fits, or when it cannot be judged here: the engine then says it at Generate)."""
        if self.studio is None or not self.has_model:
            return None
        try:
            return self.studio.prompt_problem(plan.prompt, plan.frames, plan.model)
        except Exception:  # noqa: BLE001 - a hint never breaks the panel; Generate reports the real error
            return None

    # --- widgets -> model -----------------------------------------------------------------
    def _write_prompt(self) -> None:
        if self._writing_prompt:
            return
        self._writing_prompt = True
        try:
            self.document.set_prompt(self.current_prompt())
        finally:
            self._writing_prompt = False

    def current_prompt(self) -> Prompt:
        return Prompt(self.text_edit.toPlainText(), self.left_edit.text(), self.right_edit.text())

    def _set_locked(self, hand: str, locked: bool) -> None:
        ok = self._push(lambda: C.SetHandLocked(self.document, hand, locked))
        if not ok:
            self._on_constraints_change()  # refused (both hands): show the document's state again

    def options(self, **overrides) -> GenerationOptions:
        """The panel's settings as GenerationOptions (``overrides`` replace fields)."""
        kw = dict(prompt=self.current_prompt(), frames=self.frames_spin.value(), seed=self.seed_spin.value(),
                  steps=self.steps_spin.value() or None, guidance=self.guidance_spin.value() or None,
                  model=self.model_combo.currentText() or "diffusion", keep_keys=self.keep_keys_check.isChecked(),
                  inbetween=self.inbetween_check.isChecked(),
                  pin_wrists=tuple(h for h, c in self.pin_checks.items() if c.isChecked()),
                  extend=self.extend_check.isChecked(), context_frames=self.context_spin.value(),
                  close_pinches=self.close_pinches_check.isChecked(),
                  split_hands=self.split_hands_check.isChecked(),
                  joint_limits=self.joint_limits_check.isChecked())
        kw.update(overrides)
        return GenerationOptions(**kw)

    # --- generation -----------------------------------------------------------------------
    def generate(self, **overrides) -> bool:
        """Plan from the document and the panel and start the engine on a worker thread.
        A refused request shows a message box naming the problem and returns False."""
        if self.running:
            self.sig_message.emit("A generation is already running (Cancel it first)")
            return False
        if not self.has_model:
            return self._fail(no_model_message().replace("<code>", "").replace("</code>", ""))
        try:
            plan = plan_generation(self.document, self.options(**overrides))
        except (GenerationError, ValueError, TypeError) as e:
            return self._fail(str(e))
        if blank(plan.prompt):
            return self._fail(EMPTY_PROMPT)  # said now, not after the model has loaded
        problem = self._length_problem(plan)
        if problem:
            return self._fail(problem)
        self.plan = plan
        self._run_epoch = self._epoch
        if self.preview is not None:
            self.preview.frame_map = plan.preview_frame
        self.document.generation = {"model": plan.model, "seed": plan.seed, "steps": plan.steps,
                                    "guidance": plan.guidance, "frames": self.frames_spin.value()}
        studio = self.studio
        self.worker = GeneratorWorker(lambda: plan.start(studio), parent=self, max_hold_ms=self._hold_ms)
        self.worker.sig_yielded.connect(self._on_yielded)
        self.worker.sig_finished.connect(self._on_finished)
        self.worker.sig_errored.connect(self._on_errored)
        self.worker.sig_cancelled.connect(self._on_cancelled)
        self.progress.setRange(0, 1)  # not a busy animation: each of its frames would re-composite
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.started_at = time.monotonic()
        self.worker.start()
        self._update_state()
        self.sig_message.emit(plan.description)
        self.sig_generation_started.emit(plan.description)
        return True

    def document_replaced(self) -> None:
        """The window shows another document (New, Open, Recover): a running generation or caption
        is cancelled, and a result that still arrives is dropped, never added to the new document."""
        self._epoch += 1
        self.cancel()
        if self.captioning:
            self.caption_worker.cancel()

    def cancel(self) -> bool:
        """Stop the running generation at its next step; no take is added."""
        if not self.running:
            return False
        self.worker.cancel()
        self.progress.setFormat("cancelling…")
        return True

    def _on_yielded(self, item: dict) -> None:
        if self._closed:
            return
        step, of = int(item.get("step", 0)), int(item.get("of", 1))
        self.progress.setRange(0, of)
        self.progress.setValue(step)
        self.progress.setFormat(f"step {step} / {of}")
        preview = item.get("preview")
        drawing = self.preview is not None and isinstance(preview, Clip) and self.preview.show(preview)
        if not drawing and self.worker is not None:
            self.worker.release()  # no frame will follow: the worker need not wait for one
        self.sig_progress.emit(step, of)

    def _on_frame_swapped(self) -> None:
        """The window showed a frame (with the last preview): the worker goes on."""
        if self.worker is not None:
            self.worker.release()

    def _finish_ui(self, text: str) -> None:
        if self.preview is not None:
            self.preview.end()
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if text == "done" else 0)
        self.progress.setFormat(text)
        self.worker.deleteLater()
        self.worker = None
        self._update_state()

    def _on_finished(self, item: dict) -> None:
        if self._closed:
            return
        self._finish_ui("done")
        if self._run_epoch != self._epoch:
            self.sig_message.emit("The generation for the previous document was dropped")
            return
        try:
            clip, generated = self.plan.finish(item["clip"])
            name = self.document.unique_take_name()
        except (KeyError, TypeError, ValueError) as e:
            self._fail(f"the generation result could not become a take: {e}")
            return
        if not self._push(lambda: C.AddTake(self.document, clip, name, generated=generated)):
            self._fail(f"the generation result could not become a take {name!r}")
            return
        took = time.monotonic() - self.started_at
        closed = [f"{r['hand']} thumb-{r['finger']}" + ("" if r["action"] == "closed" else
                                                         f" {r['gap_before_mm']:.0f} -> {r['gap_after_mm']:.0f} mm")
                  for r in item.get("pinches", []) if r.get("action") in ("closed", "nearer")]
        pinched = f"; pinch closed: {', '.join(closed)}" if closed else ""
        limits = item.get("limits") or {}
        if limits.get("joint_frames"):
            pinched += (f"; {100 * limits['share']:.1f} % of finger joint-frames eased inside their limits "
                        f"(up to {limits['max_excess_deg']:.1f} deg past)")
        self.sig_message.emit(f"{name}: {self.plan.description} ({took:.1f} s{pinched})")
        self.sig_generation_finished.emit(name)

    def _on_errored(self, message: str) -> None:
        if self._closed:
            return
        self._finish_ui("failed")
        self._fail(message)

    def _on_cancelled(self) -> None:
        if self._closed:
            return
        self._finish_ui("cancelled")
        self.sig_message.emit("Generation cancelled; nothing was added")
        self.sig_generation_cancelled.emit()

    def _fail(self, message: str) -> bool:
        self.last_error = message
        box = QMessageBox(QMessageBox.Warning, "Cannot generate", message, QMessageBox.Ok, self.window())
        box.setObjectName("error_box")
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()  # window-modal, does not block the event loop
        self.sig_generation_failed.emit(message)
        return False

    # --- describe take (motion -> text) -------------------------------------------------------
    def describe_take(self) -> bool:
        """Caption the current take on a worker; the sentence replaces the whole-motion prompt."""
        if self.captioning:
            self.sig_message.emit("Describe take is already running")
            return False
        if not self.has_captioner:
            return self._caption_fail(no_captioner_message())
        try:
            clip, what = caption_request(self.document)
        except ValueError as e:
            return self._caption_fail(str(e))
        studio, fps = self.studio, self.document.fps
        self._caption_epoch = self._epoch
        self.caption_worker = GeneratorWorker(
            lambda: single_call(describe_clip, studio, clip, fps, what, text=f"describing {what}…"), parent=self)
        self.caption_worker.sig_finished.connect(self._on_caption_finished)
        self.caption_worker.sig_errored.connect(self._on_caption_errored)
        self.caption_worker.sig_cancelled.connect(self._on_caption_cancelled)
        self.describe_status.setText(f"describing {what}…")
        self.caption_worker.start()
        self._update_state()
        return True

    def _end_caption(self) -> None:
        self.caption_worker.deleteLater()
        self.caption_worker = None
        self.describe_status.setText("")
        self._update_state()

    def _on_caption_finished(self, item: dict) -> None:
        if self._closed:
            return
        self._end_caption()
        if self._caption_epoch != self._epoch:
            self.sig_message.emit("The description of the previous document's take was dropped")
            return
        text = str(item["result"]).strip()
        cursor = self.text_edit.textCursor()  # one edit in the field's own undo history
        cursor.beginEditBlock()
        cursor.select(QTextCursor.Document)
        cursor.insertText(text)
        cursor.endEditBlock()
        self.text_edit.setTextCursor(cursor)
        self.sig_message.emit(f"Described the take: {text}")
        self.sig_caption_finished.emit(text)

    def _on_caption_errored(self, message: str) -> None:
        if self._closed:
            return
        self._end_caption()
        self._caption_fail(message)

    def _on_caption_cancelled(self) -> None:
        if not self._closed:
            self._end_caption()

    def _caption_fail(self, message: str) -> bool:
        self.last_error = message
        box = QMessageBox(QMessageBox.Warning, "Cannot describe the take", message, QMessageBox.Ok, self.window())
        box.setObjectName("error_box")
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        self.sig_caption_failed.emit(message)
        return False

    # --- shutdown -------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel running work and wait for its thread; stop listening. Idempotent."""
        ok = True
        for worker in (self.worker, self.caption_worker):
            if worker is not None:
                worker.cancel()
                ok = worker.wait(timeout_ms) and ok
        self._closed = True
        if self.preview is not None:
            self.preview.close()
        for emitter, cb in self._listeners:
            if cb in emitter.callbacks:
                emitter.disconnect(cb)
        return ok


__all__ = ["QtPromptPanel", "QtProgressBar", "PreviewHands", "no_model_message", "no_captioner_message"]
