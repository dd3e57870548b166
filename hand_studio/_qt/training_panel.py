"""The training panel: fine-tune (or train) a model on a dataset folder as a separate process
(``engine.training.runner``), with Start / Pause & save / Resume / Cancel, live loss and validation
curves (pyqtgraph, log scale), ETA and the device; then Evaluate (base vs fine-tuned on the
dataset's held-out test split on a worker thread: ``engine.evaluation.run.evaluate_diffusion_iter``
for diffusion, ``engine.clutch.eval_run.evaluate_clutch`` for the CLUTCH LM stages,
``engine.clutch.evaluate.tokenizer_metrics_iter`` for a SHIFT run) and "Use this model" (register it
in ``engine.registry`` and make it active). A ``shift`` run trains only the tokenizer: it can be
evaluated (CLUTCH Table 4: reconstruction errors) but not used on its own, since an LM's motion
tokens belong to the tokenizer it was trained with.

The run is polled by a QTimer (``TrainingRun.poll`` never blocks); a crash in training cannot take
the app down. ``shutdown()`` pauses a running run (SIGTERM: checkpoint, exit) so it can be resumed.
"""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout,
                               QHeaderView, QLabel, QLineEdit, QMessageBox, QPushButton, QSpinBox, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from engine.paths import user_path
from engine.training import runner
from hand_studio._qt.prompt_panel import QtProgressBar
from hand_studio._qt.workers import GeneratorWorker

POLL_MS = 200
DEVICES = ("auto", "cpu", "cuda")
EVAL_COLUMNS = ("R@1", "R@2", "R@3", "FID", "KID", "MM-Dist", "Diversity", "MModality", "C-F1 intra", "C-F1 inter",
                "s/clip")
CLUTCH_EVAL_COLUMNS = ("T2M R@3", "KID", "M2T R@3", "BLEU-4", "ROUGE-L")
TOKENIZER_EVAL_COLUMNS = ("MPJPE", "PA-MPJPE", "ACCEL", "Diversity")  # CLUTCH Table 4; errors in mm
EVAL_N_DEFAULT = 64
EVAL_N_MAX = {"diffusion": 100_000}  # other kinds: EVAL_N_MAX_OTHER (the user chooses; Cancel stops it)
EVAL_N_MAX_OTHER = 2048
# CLUTCH evaluation of the shipped model on the 2-core CPU (1 torch thread, a training beside it), measured
# with 64 and 128 test clips: caption + generate 0.18-0.27 s per clip; ~12 s per model for loading and scoring
CLUTCH_EVAL_S_PER_CLIP = 0.2
CLUTCH_EVAL_S_FIXED = 12.0
SHIFT_ALONE = ("A SHIFT run trains only the motion tokenizer; it cannot be used on its own: a CLUTCH LM's motion "
               "tokens belong to the tokenizer it was trained with. Train a CLUTCH LM stage on it (clutch-pt into "
               "the same output folder, base None; then clutch-gr / clutch-ift) to get a usable model")
LOSS_PEN = (90, 160, 255)
VAL_PEN = (255, 150, 60)


def registry_kind(kind: str) -> str:
    """The registry's kind of a training kind: diffusion, or clutch for the CLUTCH stages."""
    return "diffusion" if kind == "diffusion" else "clutch"


def is_clutch_folder(path) -> bool:
    """A CLUTCH model folder: shift/ and lm/ model folders (a CLUTCH LM run's RUN/model)."""
    return path is not None and all((Path(path) / s / "config.json").is_file() for s in ("shift", "lm"))


def shift_folder_of(path) -> Path | None:
    """The SHIFT tokenizer folder of a model folder (a CLUTCH folder's shift/, or a SHIFT folder
    itself: what ``train shift --from`` accepts), else None."""
    if path is None:
        return None
    from engine.clutch.shift import SHIFT_FORMAT
    folder = Path(path) / "shift" if is_clutch_folder(path) else Path(path)
    try:
        fmt = json.loads((folder / "config.json").read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None
    return folder if fmt == SHIFT_FORMAT else None


def clutch_eval_seconds(n: int, models: int) -> float:
    """The expected wall time of a CLUTCH evaluation of ``n`` clips for ``models`` models on the CPU."""
    return models * (CLUTCH_EVAL_S_FIXED + CLUTCH_EVAL_S_PER_CLIP * n)


def _no_validation(kind: str) -> bool:
    return kind in getattr(runner, "CLUTCH_STAGES", {})


def _scalar(value) -> float | None:
    """A loss event's number: the ``total`` term of a dict (else its only term), or a plain number."""
    if isinstance(value, dict):
        value = value.get("total", next(iter(value.values())) if len(value) == 1 else None)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None  # a log axis shows positive numbers only


def format_eta(seconds) -> str:
    try:
        s = int(round(float(seconds)))
    except (TypeError, ValueError):
        return "–"
    h, rem = divmod(max(s, 0), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def explain_error(event: dict) -> str:
    """A training error event -> what the user reads (what happened, what is safe, what to do)."""
    msg = str(event.get("message", "")).strip().rstrip(".") or "(no message)"
    low = msg.lower()
    if "disk space" in low:
        return f"{msg[0].upper()}{msg[1:]}. Free some space or choose another output folder; nothing was written."
    if re.search(r"\b(nan|inf|-inf|non-finite)\b", low):
        return (f"Training stopped: a loss or gradient became NaN/infinite ({msg}). The last checkpoint is "
                "untouched; lower the learning rate (in the config) and Resume, or check the data.")
    if event.get("type") == "ProcessDied":
        return f"The training process stopped unexpectedly: {msg}"
    return f"Training failed: {msg}"


def evaluate_models_iter(data: str | Path, models: dict[str, str | Path], n: int, steps: int | None,
                         mm_prompts: int = 4, mm_repeats: int = 2):
    """``hand-studio eval diffusion`` for each of ``models`` (label -> model folder) on ``data``'s test
    split: yields ``{"stage", "done", "of"}``, last ``{"done": True, "rows": {label: row, ...}}`` with
    the ground-truth row first."""
    from engine.evaluation.run import evaluate_diffusion_iter
    rows: dict[str, dict] = {}
    for k, (label, folder) in enumerate(models.items()):
        for item in evaluate_diffusion_iter(data, folder, n=n, steps=steps, mm_prompts=min(mm_prompts, n),
                                            mm_repeats=mm_repeats):
            if item.get("done") is True:
                if "Ground truth" not in rows:
                    rows["Ground truth"] = item["rows"]["Ground truth"]
                rows[label] = item["rows"]["Diffusion"]
            else:
                yield {"stage": f"{label}: {item['stage']}", "done": item["done"], "of": item["of"],
                       "model": k + 1, "models": len(models)}
    yield {"done": True, "rows": {name: {c: float(v) for c, v in row.items()} for name, row in rows.items()},
           "n": n, "steps": steps}


def _relabelled(gen, label: str, k: int, count: int):
    """Pass on ``gen``'s progress items as model ``k + 1`` of ``count`` (stage prefixed with
    ``label``); return what ``gen`` returns (use with ``yield from``)."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        yield {"stage": f"{label}: {item['stage']}", "done": item["done"], "of": item["of"],
               "model": k + 1, "models": count}


def evaluate_clutch_iter(data: str | Path, models: dict[str, str | Path], n: int, pool: int | None = None,
                         evaluator=None, seed: int = 0):
    """``engine.clutch.eval_run.evaluate_clutch`` for each of ``models`` (label -> CLUTCH folder with
    shift/ + lm/) on one test set of ``data``: the first min(``n``, usable) test clips, R-precision
    in pools of ``pool`` (default min(32, clips)). Yields ``{"stage", "done", "of"}``, last
    ``{"done": True, "rows": {label: {T2M R@3, KID, M2T R@3, BLEU-4, ROUGE-L}}, "columns", "n"}``
    with the ground-truth row first. ``evaluator``: an Evaluator or its folder (None = shipped)."""
    from engine.clutch.eval_run import _load_evaluator, clutch_test_set, evaluate_clutch
    from engine.clutch.pipeline import load_clutch
    yield {"stage": "test set", "done": 0, "of": 1}
    test = clutch_test_set(data, n=max(2, int(n)), pool=2)  # the clips there are, at most n
    pool = min(32, len(test)) if pool is None else int(pool)
    ev = _load_evaluator(evaluator)

    def flat(t2m: dict, m2t: dict) -> dict:
        row = {"T2M R@3": t2m["R@3"], "KID": t2m["KID"], "M2T R@3": m2t["R@3"]}
        row.update({k: m2t[k] for k in ("BLEU-4", "ROUGE-L") if k in m2t})
        return row
    rows: dict[str, dict] = {}
    for k, (label, folder) in enumerate(models.items()):
        yield {"stage": f"{label}: loading", "done": 0, "of": 1}
        result = yield from _relabelled(evaluate_clutch(load_clutch(folder), test, ev, n=len(test), seed=seed,
                                                        pool=pool), label, k, len(models))
        if "Ground truth" not in rows:
            rows["Ground truth"] = flat(result["ground_truth"]["t2m"], result["ground_truth"]["m2t"])
        rows[label] = flat(result["t2m"], result["m2t"])
    yield {"done": True, "rows": {name: {c: float(v) for c, v in row.items()} for name, row in rows.items()},
           "columns": CLUTCH_EVAL_COLUMNS, "n": len(test), "pool": pool}


def evaluate_tokenizers_iter(data: str | Path, models: dict[str, str | Path], n: int, chunk: int = 32):
    """CLUTCH Table 4 (``engine.clutch.evaluate.tokenizer_metrics``) for each of ``models`` (label ->
    SHIFT folder) on the first ``n`` clips of ``data``'s test split (all it has when fewer). Yields
    ``{"stage", "done", "of"}``, last ``{"done": True, "rows": {label: {MPJPE, PA-MPJPE, ACCEL,
    Diversity}}, "columns", "n"}`` with a ground-truth row (Diversity only) first; errors in mm,
    Diversity in metres."""
    from engine.clutch.evaluate import tokenizer_metrics_iter
    from engine.clutch.shift import load_shift
    from engine.hands import load_hands
    from engine.training.train_clutch import load_split
    if int(n) < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    yield {"stage": "test set", "done": 0, "of": 1}
    test = load_split(data, "test")
    n = min(int(n), len(test))
    x, betas = test.x[:n], test.betas[:n]  # (n, T, 2, 99), (n, 2, 10)
    hands = load_hands("default")
    rows: dict[str, dict] = {}
    for k, (label, folder) in enumerate(models.items()):
        yield {"stage": f"{label}: loading", "done": 0, "of": 1, "model": k + 1, "models": len(models)}
        model, _ = load_shift(folder)
        m = yield from _relabelled(tokenizer_metrics_iter(model, x, betas, hands, chunk=chunk), label, k, len(models))
        rows.setdefault("Ground truth", {"Diversity": m["diversity_gt"]})
        rows[label] = {"MPJPE": m["mpjpe_mm"], "PA-MPJPE": m["pa_mpjpe_mm"], "ACCEL": m["accel_mm"],
                       "Diversity": m["diversity"]}
    yield {"done": True, "rows": {name: {c: float(v) for c, v in row.items()} for name, row in rows.items()},
           "columns": TOKENIZER_EVAL_COLUMNS, "n": n}


class QtTrainingPanel(QWidget):
    """Train / fine-tune with live curves; evaluate; register and activate the result."""

    sig_model_activated = Signal(str)
    """A trained model was registered and made the active one of its kind (its registry name)."""
    sig_run_state_changed = Signal(str)
    """The run's state: running, pausing, paused, cancelled, done or failed."""
    sig_evaluated = Signal(object)
    """Evaluation finished: {row label: {metric: value}}."""
    sig_message = Signal(str)
    """One line for the status bar."""

    def __init__(self, parent: QWidget | None = None, poll_ms: int = POLL_MS):
        super().__init__(parent)
        self.setObjectName("training_panel")
        self.run: runner.TrainingRun | None = None
        self.run_info: dict = {}
        self.eval_worker: GeneratorWorker | None = None
        self.eval_rows: dict[str, dict] = {}
        self.eval_n = 0
        self.eval_expected = ""  # the progress text's expected time of the evaluation running
        self.clutch_evaluator = None  # CLUTCH evaluation: an Evaluator or its folder; None = the shipped one
        self.clutch_pool: int | None = None  # R-precision pool for CLUTCH; None = min(32, test clips)
        self.last_error = ""
        self.start_event: dict = {}
        self.last_done: dict = {}
        self._exited = True
        self._state = "idle"
        self._closed = False
        self.loss_steps: list[int] = []
        self.loss_values: list[float] = []
        self.val_steps: list[int] = []
        self.val_values: list[float] = []
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)
        self._build()
        self._on_kind_change()
        self._update_state()

    @property
    def modelActivated(self):  # noqa: N802 - the name main_window was promised; sig_model_activated is the same
        return self.sig_model_activated

    # --- widgets ------------------------------------------------------------------------------
    def _build(self) -> None:
        setup = QGroupBox("Run", self)
        form = QFormLayout(setup)
        self.kind_combo = QComboBox(self)
        self.kind_combo.setObjectName("training_kind")
        self.kind_combo.addItems(list(runner.SCRIPTS))
        self.kind_combo.setToolTip("What to train: the diffusion model, or a CLUTCH stage")
        self.kind_combo.currentTextChanged.connect(self._on_kind_change)
        form.addRow("Model", self.kind_combo)
        self.base_combo = QComboBox(self)
        self.base_combo.setObjectName("training_base")
        self.base_combo.setToolTip("The checkpoint to fine-tune: the shipped model, one of your registered "
                                   "models, a model folder, or none (train from scratch)")
        base_row = QWidget(self)
        bl = QHBoxLayout(base_row)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(self.base_combo, 1)
        browse = QPushButton("Folder…", base_row)
        browse.clicked.connect(self._browse_base)
        bl.addWidget(browse)
        form.addRow("Base", base_row)
        self.data_edit = QLineEdit(self)
        self.data_edit.setObjectName("training_data")
        self.data_edit.setPlaceholderText("a dataset (corpus) folder: the dataset panel's output")
        form.addRow("Data", self._with_browse(self.data_edit, "Choose the dataset folder"))
        self.out_edit = QLineEdit(self)
        self.out_edit.setObjectName("training_out")
        self.out_edit.setPlaceholderText("the run folder: checkpoints and the trained model")
        form.addRow("Output", self._with_browse(self.out_edit, "Choose the run folder"))
        self.config_edit = QLineEdit(self)
        self.config_edit.setPlaceholderText("optional: a JSON config ({\"train\": {...}})")
        form.addRow("Config", self._with_browse(self.config_edit, "Choose a config file", file=True))
        self.steps_spin = QSpinBox(self)
        self.steps_spin.setRange(1, 10_000_000)
        self.steps_spin.setValue(2000)
        form.addRow("Steps", self.steps_spin)
        self.val_spin = QSpinBox(self)
        self.val_spin.setRange(0, 1_000_000)
        self.val_spin.setValue(100)
        self.val_spin.setSpecialValueText("off")
        self.val_spin.setToolTip("Validation loss on the dataset's val split every N steps (and at step 0: the base)")
        form.addRow("Validate every", self.val_spin)
        self.device_combo = QComboBox(self)
        self.device_combo.addItems(DEVICES)
        form.addRow("Device", self.device_combo)

        self.start_button = QPushButton("Start", self)
        self.start_button.setObjectName("training_start")
        self.start_button.clicked.connect(lambda: self.start())
        self.pause_button = QPushButton("Pause && save", self)
        self.pause_button.setToolTip("Finish the current step, write a checkpoint and stop; Resume continues")
        self.pause_button.clicked.connect(self.pause)
        self.resume_button = QPushButton("Resume", self)
        self.resume_button.setToolTip("Continue from the last checkpoint")
        self.resume_button.clicked.connect(self.resume)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop now; only the steps since the last checkpoint are lost (Resume works)")
        self.cancel_button.clicked.connect(self.cancel)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.resume_button, self.cancel_button):
            buttons.addWidget(b)

        self.progress = QtProgressBar(self)
        self.state_label = QLabel("", self)
        self.eta_label = QLabel("", self)
        self.device_label = QLabel("", self)
        info = QHBoxLayout()
        info.addWidget(self.state_label, 1)
        info.addWidget(self.eta_label)
        info.addWidget(self.device_label)
        self.message_label = QLabel("", self)
        self.message_label.setObjectName("training_message")
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextSelectableByMouse)

        self.plot = pg.PlotWidget(self)
        self.plot.setObjectName("training_plot")
        self.plot.setMinimumHeight(180)
        self.plot.setLogMode(x=False, y=True)
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.addLegend(offset=(-10, 10))
        self.loss_curve = self.plot.plot([], [], pen=pg.mkPen(LOSS_PEN, width=1.5), name="training loss")
        self.val_curve = self.plot.plot([], [], pen=pg.mkPen(VAL_PEN, width=2), symbol="o", symbolSize=6,
                                        symbolBrush=VAL_PEN, symbolPen=None, name="validation loss")

        result = QGroupBox("Result", self)
        rl = QVBoxLayout(result)
        eval_row = QHBoxLayout()
        self.eval_n_spin = QSpinBox(self)
        self.eval_n_spin.setRange(32, EVAL_N_MAX["diffusion"])
        self.eval_n_spin.setValue(EVAL_N_DEFAULT)
        self.eval_n_spin.setPrefix("n ")
        self.eval_n_spin.valueChanged.connect(self._update_eval_n_tip)
        self.eval_steps_spin = QSpinBox(self)
        self.eval_steps_spin.setRange(0, 1000)
        self.eval_steps_spin.setValue(0)
        self.eval_steps_spin.setSpecialValueText("model's steps")
        self.eval_steps_spin.setToolTip("Sampler steps per generated clip")
        self.evaluate_button = QPushButton("Evaluate", self)
        self.evaluate_button.setObjectName("training_evaluate")
        self.evaluate_button.setToolTip("Base vs fine-tuned on the dataset's held-out test split")
        self.evaluate_button.clicked.connect(lambda: self.evaluate())
        eval_row.addWidget(self.eval_n_spin)
        eval_row.addWidget(self.eval_steps_spin)
        eval_row.addWidget(self.evaluate_button, 1)
        self.eval_progress = QtProgressBar(self)
        self.eval_table = QTableWidget(0, len(EVAL_COLUMNS), self)
        self.eval_table.setObjectName("training_eval_table")
        self.eval_table.setHorizontalHeaderLabels(list(EVAL_COLUMNS))
        self.eval_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.eval_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.eval_table.setMinimumHeight(110)
        use_row = QHBoxLayout()
        self.name_edit = QLineEdit(self)
        self.name_edit.setObjectName("training_model_name")
        self.name_edit.setPlaceholderText("name for the registry (letters, digits, . _ -)")
        self.use_button = QPushButton("Use this model", self)
        self.use_button.setObjectName("training_use")
        self.use_button.setToolTip("Register the trained model and generate with it from now on")
        self.use_button.clicked.connect(lambda: self.use_model())
        use_row.addWidget(self.name_edit, 1)
        use_row.addWidget(self.use_button)
        rl.addLayout(eval_row)
        rl.addWidget(self.eval_progress)
        rl.addWidget(self.eval_table)
        rl.addLayout(use_row)

        layout = QVBoxLayout(self)
        layout.addWidget(setup)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addLayout(info)
        layout.addWidget(self.message_label)
        layout.addWidget(self.plot, 1)
        layout.addWidget(result)

    def _with_browse(self, edit: QLineEdit, title: str, file: bool = False) -> QWidget:
        box = QWidget(self)
        lay = QHBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(edit, 1)
        button = QPushButton("Browse…", box)

        def browse():
            start = edit.text() or str(Path.home())
            path = (QFileDialog.getOpenFileName(self, title, start, "JSON (*.json)")[0] if file
                    else QFileDialog.getExistingDirectory(self, title, start))
            if path:
                edit.setText(path)
        button.clicked.connect(browse)
        lay.addWidget(button)
        return box

    # --- base models ------------------------------------------------------------------------------
    def _on_kind_change(self, *args) -> None:
        self.refresh_bases()
        no_val = _no_validation(self.kind)
        self.val_spin.setEnabled(not no_val)
        self.val_spin.setToolTip("The CLUTCH stages have no validation loss" if no_val else self.val_spin.toolTip())
        self._update_state()

    @property
    def kind(self) -> str:
        return self.kind_combo.currentText()

    def refresh_bases(self) -> None:
        """Fill the base list for the chosen kind: shipped, registered, folders added, from scratch."""
        from engine.api import SHIPPED_CLUTCH, SHIPPED_DIFFUSION
        from engine.registry import Registry, RegistryError, check_model_folder
        from engine.resources import resource_path
        kept = [self.base_combo.itemData(i) for i in range(self.base_combo.count())]
        folders = [d for d in kept if d and d.get("origin") == "folder"]
        current = self.base_combo.currentData()
        rk = registry_kind(self.kind)
        items = []
        shipped = resource_path(SHIPPED_DIFFUSION if rk == "diffusion" else SHIPPED_CLUTCH)
        try:
            check_model_folder(rk, shipped)
            items.append((f"Shipped {rk} model", {"path": str(shipped), "label": "shipped", "origin": "shipped"}))
        except RegistryError:
            pass
        try:
            entries = Registry().list(rk)
        except RegistryError as e:
            entries = []
            self.sig_message.emit(str(e))
        for e in entries:
            items.append((f"Registered: {e.name}", {"path": e.path, "label": e.name, "origin": "registry"}))
        for d in folders:
            items.append((f"Folder: {Path(d['path']).name}", d))
        items.append(("None (train from scratch)", {"path": None, "label": None, "origin": "scratch"}))
        self.base_combo.blockSignals(True)
        self.base_combo.clear()
        for text, data in items:
            self.base_combo.addItem(text, data)
            self.base_combo.setItemData(self.base_combo.count() - 1, data["path"] or "", Qt.ToolTipRole)
        self.base_combo.blockSignals(False)
        if current is not None:
            for i in range(self.base_combo.count()):
                if self.base_combo.itemData(i) == current:
                    self.base_combo.setCurrentIndex(i)
                    break

    def add_base_folder(self, path: str | Path) -> None:
        """Add a model folder to the base list and choose it (what "Folder…" does)."""
        path = str(user_path(path).absolute())
        data = {"path": path, "label": path, "origin": "folder"}
        for i in range(self.base_combo.count()):
            if self.base_combo.itemData(i) == data:
                self.base_combo.setCurrentIndex(i)
                return
        self.base_combo.insertItem(self.base_combo.count() - 1, f"Folder: {Path(path).name}", data)
        self.base_combo.setItemData(self.base_combo.count() - 2, path, Qt.ToolTipRole)
        self.base_combo.setCurrentIndex(self.base_combo.count() - 2)

    def _browse_base(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a model folder", str(Path.home()))
        if path:
            self.add_base_folder(path)

    def set_data_folder(self, path: str | Path) -> None:
        """Use this dataset (the dataset panel's sig_dataset_saved connects here)."""
        self.data_edit.setText(str(path))
        if not self.out_edit.text().strip():
            p = Path(path)
            self.out_edit.setText(str(p.parent / f"{p.name}_run"))

    # --- state ----------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def running(self) -> bool:
        return self.run is not None and not self._exited

    @property
    def model_folder(self) -> Path | None:
        """The trained model of a finished run."""
        if self.run is None or self._state != "done":
            return None
        return Path(self.last_done.get("model") or Path(self.run_info["out"]) / "model")

    def _evaluable(self) -> tuple[str | None, str]:
        """(what the finished run can be evaluated as: "diffusion", "clutch", "shift" or None, why not).
        Only "diffusion" and "clutch" can be used (``_usable``)."""
        kind = self.run_info.get("kind", "diffusion")
        folder = self.model_folder
        if folder is None:
            return None, ""
        if kind == "diffusion":
            return "diffusion", ""
        if kind == "shift":
            if shift_folder_of(folder) == folder:
                return "shift", ""
            return None, f"{folder} is not a SHIFT model folder"
        if is_clutch_folder(folder):
            return "clutch", ""
        return None, f"{folder} is not a CLUTCH model folder (shift/ + lm/)"

    def _usable(self) -> tuple[bool, str]:
        """(whether the finished run's model can be registered and used, why not)."""
        what, why = self._evaluable()
        if what == "shift":
            return False, SHIFT_ALONE
        return what is not None, why

    def _eval_kind(self) -> str:
        """The kind an evaluation is about: the run's, else the one chosen for the next run."""
        return self.run_info.get("kind") or self.kind

    def _update_eval_n_tip(self, *args) -> None:
        kind = self._eval_kind()
        n = self.eval_n_spin.value()
        if kind == "diffusion":
            tip = "Test prompts per model (R-precision needs at least 32)"
        elif kind == "shift":
            tip = ("Test clips the tokenizers reconstruct (all the test split has, if fewer); a few seconds "
                   "per model")
        else:
            t = clutch_eval_seconds(n, 2)
            tip = (f"Test clips per model (all the usable test split has, if fewer). CLUTCH captions and generates "
                   f"every clip: about {CLUTCH_EVAL_S_PER_CLIP:.2f} s per clip per model on a CPU, so n {n} takes "
                   f"about {format_eta(t)} (base + fine-tuned); Cancel stops it")
        self.eval_n_spin.setToolTip(tip)

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.sig_run_state_changed.emit(state)
        self._update_state()

    def _update_state(self) -> None:
        s, busy = self._state, self.running
        evaluating = self.eval_worker is not None
        self.start_button.setEnabled(not busy and not evaluating)
        self.pause_button.setEnabled(busy and s == "running")
        self.resume_button.setEnabled(self.run is not None and not busy and s in ("paused", "cancelled", "failed"))
        self.cancel_button.setEnabled(busy and s in ("running", "pausing"))
        for w in (self.kind_combo, self.base_combo, self.data_edit, self.out_edit, self.config_edit,
                  self.steps_spin, self.device_combo):
            w.setEnabled(not busy and not evaluating)
        self.val_spin.setEnabled(not busy and not evaluating and not _no_validation(self.kind))
        done = s == "done" and not busy
        what, why = self._evaluable() if done else (None, "")
        usable, why_not_use = self._usable() if done else (False, "")
        self.evaluate_button.setEnabled(what is not None and not evaluating)
        self.use_button.setEnabled(usable and not evaluating)
        self.name_edit.setEnabled(usable)
        n_max = EVAL_N_MAX.get(self._eval_kind(), EVAL_N_MAX_OTHER)
        if self.eval_n_spin.maximum() != n_max:
            self.eval_n_spin.setMaximum(n_max)
        self._update_eval_n_tip()
        self.eval_steps_spin.setEnabled(self._eval_kind() == "diffusion")  # sampler steps: diffusion only
        if what == "clutch":
            self.evaluate_button.setToolTip("Base vs fine-tuned CLUTCH on the dataset's held-out test split: "
                                            "text -> motion and motion -> text on n clips (see n's tooltip for "
                                            "the expected time)")
            self.use_button.setToolTip("Register the trained CLUTCH model (shift/ + lm/) and use it from now on")
        elif what == "shift":
            self.evaluate_button.setToolTip("Base vs fine-tuned SHIFT tokenizer on the dataset's held-out test split: "
                                            "reconstruction MPJPE, PA-MPJPE, ACCEL (mm) and Diversity (CLUTCH "
                                            "Table 4)")
            self.use_button.setToolTip(why_not_use)
        elif why:
            self.evaluate_button.setToolTip(why)
            self.use_button.setToolTip(why)
        else:
            self.evaluate_button.setToolTip("Base vs fine-tuned on the dataset's held-out test split")
            self.use_button.setToolTip("Register the trained model and generate with it from now on")
        step = self.loss_steps[-1] if self.loss_steps else self.last_done.get("step", 0)
        of = self.run_info.get("steps", 0)
        words = {"idle": "", "running": "training", "pausing": "pausing (finishing the step, saving)…",
                 "paused": "paused (saved)", "cancelled": "cancelled", "done": "done", "failed": "failed"}
        self.state_label.setText(f"{words.get(s, s)}" + (f" — step {step} / {of}" if self.run is not None else ""))

    # --- run control ----------------------------------------------------------------------------
    def start(self) -> bool:
        """Start a run with the fields shown (its own process); False with a message if refused."""
        if self.running:
            self.sig_message.emit("A run is going; pause or cancel it first")
            return False
        kind = self.kind
        data_text, out_text = self.data_edit.text().strip(), self.out_edit.text().strip()
        if not data_text:
            return self._fail("Choose the dataset folder to train on")
        try:
            data = user_path(data_text)
            out = user_path(out_text).absolute() if out_text else None
            config = self.config_edit.text().strip() or None
            config_path = user_path(config) if config is not None else None
        except ValueError as e:
            return self._fail(str(e))
        if not (data / "meta.json").is_file():
            return self._fail(f"{data} is not a dataset folder (no meta.json); save one from the dataset panel "
                              "or `hand-studio data import`")
        if not out_text:
            return self._fail("Choose the output (run) folder")
        if config_path is not None and not config_path.is_file():
            return self._fail(f"config file not found: {config}")
        base = self.base_combo.currentData() or {"path": None, "label": None}
        resume = True
        if runner.state_folder(kind, out).is_dir():
            answer = self.ask_existing_run(out)
            if answer == "cancel":
                return False
            resume = answer == "continue"
        val_every = None if _no_validation(kind) else (self.val_spin.value() or None)
        device = None if self.device_combo.currentText() == "auto" else self.device_combo.currentText()
        try:
            argv = runner.build_command(kind, data, out, init_from=base["path"], config=config,
                                        steps=self.steps_spin.value(), val_every=val_every, device=device,
                                        resume=resume)
            run = runner.TrainingRun(argv, out)
        except (ValueError, OSError) as e:
            return self._fail(str(e))
        self.run = run
        self.run_info = {"kind": kind, "data": str(data), "out": str(out), "base_path": base["path"],
                         "base_label": base["label"], "steps": self.steps_spin.value(), "started": time.time()}
        self._reset_curves()
        self.eval_rows, self.eval_n = {}, 0
        self.eval_table.setRowCount(0)
        self.start_event, self.last_done, self.last_error = {}, {}, ""
        self.message_label.setText("")
        self.eta_label.setText("")
        self.device_label.setText("starting…")
        self.progress.setRange(0, max(1, self.steps_spin.value()))
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        if not self.name_edit.text().strip():
            self.name_edit.setText(self._default_name(out))
        self._exited = False
        self.timer.start()
        self._set_state("running")
        self.sig_message.emit(f"Training {kind} on {data.name} into {out}")
        return True

    def pause(self) -> bool:
        """Checkpoint after the current step and stop (Resume continues)."""
        if not self.running or self._state != "running":
            return False
        self.run.pause()
        self._set_state("pausing")
        return True

    def resume(self) -> bool:
        """Start the run again on its folder; it continues from its last checkpoint."""
        if self.run is None or self.running:
            return False
        try:
            self.run.resume()
        except (RuntimeError, OSError) as e:
            return self._fail(str(e))
        previous = self.run_info.get("previous_run")  # where a start-over put the old run stays in view
        self.message_label.setText(f"The previous run's checkpoints and model are in {previous}" if previous else "")
        self.last_error = ""
        self.device_label.setText("starting…")
        self.progress.setFormat("resuming…")
        self._exited = False
        self.timer.start()
        self._set_state("running")
        return True

    def cancel(self) -> bool:
        """Stop now (SIGKILL); the last checkpoint stays valid, so Resume works."""
        if not self.running:
            return False
        self.run.cancel()
        self._set_state("cancelled")
        self.progress.setFormat("cancelled")
        return True

    # --- events -----------------------------------------------------------------------------------
    def poll(self) -> list[dict]:
        """Take the run's new events (the timer calls this; never blocks)."""
        if self.run is None:
            self.timer.stop()
            return []
        events = self.run.poll()
        for ev in events:
            handler = getattr(self, f"_on_{ev['event']}", None)
            if handler is not None:
                handler(ev)
        if events:
            self._redraw()
            self._set_state(self.run.state if self.run.state != "idle" else self._state)
        return events

    def _on_start(self, ev: dict) -> None:
        self.start_event = ev
        if ev.get("previous_run"):
            self.run_info["previous_run"] = str(ev["previous_run"])
            note = f"Started over; the previous run's checkpoints and model were moved to {ev['previous_run']}"
            self.message_label.setText(note)
            self.sig_message.emit(note)
        dev = ev.get("device", "?")
        ws = ev.get("world_size", 1)
        windows = ev.get("windows")
        hardware = f" ({ev['hardware']})" if ev.get("hardware") else ""  # e.g. the GPU's name, when reported
        stage = f" — stage {ev['stage']}" if ev.get("stage") else ""
        self.device_label.setText(f"{dev}{hardware}" + (f" × {ws}" if ws and ws > 1 else "")
                                  + (f", {windows} windows" if windows else "") + stage)
        self.progress.setFormat("training…")

    def _on_step(self, ev: dict) -> None:
        step, of = int(ev.get("step", 0)), int(ev.get("of", 0) or self.run_info.get("steps", 1))
        while self.loss_steps and self.loss_steps[-1] >= step:  # resumed from an earlier checkpoint
            self.loss_steps.pop()
            self.loss_values.pop()
        v = _scalar(ev.get("loss"))
        if v is not None:
            self.loss_steps.append(step)
            self.loss_values.append(v)
        self.run_info["steps"] = of
        self.progress.setRange(0, max(1, of))
        self.progress.setValue(step)
        self.progress.setFormat(f"step {step} / {of}" + (f", loss {v:.4g}" if v is not None else ""))
        if "eta_s" in ev:
            self.eta_label.setText(f"ETA {format_eta(ev['eta_s'])}")
        if "device" in ev and not self.start_event:
            self.device_label.setText(str(ev["device"]))

    def _on_val(self, ev: dict) -> None:
        step = int(ev.get("step", 0))
        while self.val_steps and self.val_steps[-1] >= step:
            self.val_steps.pop()
            self.val_values.pop()
        v = _scalar(ev.get("val"))
        if v is not None:
            self.val_steps.append(step)
            self.val_values.append(v)

    def _on_checkpoint(self, ev: dict) -> None:
        self.sig_message.emit(f"Checkpoint at step {ev.get('step')}")

    def _on_done(self, ev: dict) -> None:
        self.last_done = ev
        if ev.get("paused"):
            self.progress.setFormat(f"paused at step {ev.get('step')} (saved)")
            self.sig_message.emit(f"Training paused at step {ev.get('step')}; Resume continues")
        else:
            self.progress.setFormat("done")
            self.eta_label.setText("")
            self.sig_message.emit(f"Training done: {ev.get('model')}")

    def _on_error(self, ev: dict) -> None:
        text = explain_error(ev)
        self.last_error = text
        self.message_label.setText(f'<span style="color:#ff7b6b">{text}</span>')
        self.progress.setFormat("failed")
        self.sig_message.emit(text)

    def _on_exit(self, ev: dict) -> None:
        self._exited = True
        self.timer.stop()
        if self.run.state == "cancelled":
            self.progress.setFormat("cancelled; Resume continues from the last checkpoint")

    def _reset_curves(self) -> None:
        self.loss_steps, self.loss_values, self.val_steps, self.val_values = [], [], [], []
        self._redraw()

    def _redraw(self) -> None:
        self.loss_curve.setData(self.loss_steps, self.loss_values)
        self.val_curve.setData(self.val_steps, self.val_values)

    # --- evaluation ---------------------------------------------------------------------------------
    def evaluate(self) -> bool:
        """Base vs fine-tuned on the dataset's test split, on a worker thread (generates ``n`` clips
        per model, so it takes a while on a CPU)."""
        if self.eval_worker is not None:
            self.sig_message.emit("An evaluation is running")
            return False
        folder = self.model_folder
        if folder is None:
            return self._fail("Train a model to the end first")
        what, why = self._evaluable()
        if what is None:
            return self._fail(why, "Cannot evaluate")
        models = {}
        base_path = self.run_info.get("base_path")
        if what == "shift":
            base_path = shift_folder_of(base_path)  # a CLUTCH base's shift/, or a SHIFT folder
        if base_path and (what in ("diffusion", "shift") or is_clutch_folder(base_path)):
            label = self.run_info.get("base_label")
            models[f"Base ({label})" if label and label != self.run_info.get("base_path") else "Base"] = str(base_path)
        models["Fine-tuned"] = str(folder)
        data, n = self.run_info["data"], self.eval_n_spin.value()
        expected = ""
        if what == "clutch":
            evaluator, pool = self.clutch_evaluator, self.clutch_pool
            expected = f" (about {format_eta(clutch_eval_seconds(n, len(models)))} for n {n})"
            job = lambda: evaluate_clutch_iter(data, models, n, pool=pool, evaluator=evaluator)  # noqa: E731
        elif what == "shift":
            job = lambda: evaluate_tokenizers_iter(data, models, n)  # noqa: E731
        else:
            steps = self.eval_steps_spin.value() or None
            job = lambda: evaluate_models_iter(data, models, n, steps)  # noqa: E731
        self.eval_worker = GeneratorWorker(job, max_rate=10.0, parent=self)
        self.eval_worker.sig_yielded.connect(self._on_eval_progress)
        self.eval_worker.sig_finished.connect(self._on_eval_finished)
        self.eval_worker.sig_errored.connect(self._on_eval_errored)
        self.eval_worker.sig_cancelled.connect(self._on_eval_cancelled)
        self.eval_progress.setRange(0, 1)
        self.eval_progress.setValue(0)
        self.eval_progress.setFormat(f"loading…{expected}")
        self.eval_expected = expected
        self.eval_worker.start()
        self._update_state()
        return True

    def _on_eval_progress(self, item: dict) -> None:
        if self._closed or item.get("done") is True:  # the result comes with sig_finished
            return
        self.eval_progress.setRange(0, max(1, int(item["of"])))
        self.eval_progress.setValue(int(item["done"]))
        self.eval_progress.setFormat(f"{item['stage']} {item['done']} / {item['of']}{self.eval_expected}")

    def _end_eval(self, text: str) -> None:
        self.eval_progress.setFormat(text)
        self.eval_worker.deleteLater()
        self.eval_worker = None
        self._update_state()

    def _on_eval_finished(self, item: dict) -> None:
        if self._closed:
            return
        self._end_eval("done")
        self.eval_rows = item["rows"]
        self.eval_n = int(item.get("n", self.eval_n_spin.value()))
        columns = list(item.get("columns", EVAL_COLUMNS))
        self.eval_table.setColumnCount(len(columns))
        self.eval_table.setHorizontalHeaderLabels(columns)
        self.eval_table.setRowCount(len(self.eval_rows))
        self.eval_table.setVerticalHeaderLabels(list(self.eval_rows))
        for r, row in enumerate(self.eval_rows.values()):
            for c, col in enumerate(columns):
                cell = QTableWidgetItem(f"{row[col]:.3f}" if col in row else "–")
                cell.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.eval_table.setItem(r, c, cell)
        if self.run_info.get("kind") == "shift":
            self.sig_message.emit(f"Tokenizers evaluated on {item['n']} test clips. {self._usable()[1]}")
        else:
            self.sig_message.emit(f"Evaluated on {item['n']} test prompts")
        self.sig_evaluated.emit(self.eval_rows)

    def _on_eval_errored(self, message: str) -> None:
        if self._closed:
            return
        self._end_eval("failed")
        self._fail(message, "Cannot evaluate")

    def _on_eval_cancelled(self) -> None:
        if not self._closed:
            self._end_eval("cancelled")

    # --- registry -----------------------------------------------------------------------------------
    def _default_name(self, out: Path) -> str:
        from engine.registry import NAME_RE, Registry, RegistryError
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", out.name).strip("-._")[:56] or "model"
        try:
            taken = {e.name for e in Registry().list()}
        except RegistryError:
            taken = set()
        name, k = base, 2
        while name in taken or not NAME_RE.match(name):
            name, k = f"{base}-{k}", k + 1
        return name

    def metrics(self) -> dict:
        """What the registry records about the run: the last validation loss, steps, evaluation rows."""
        m: dict = {"steps": int(self.last_done.get("step", 0))}
        if self.val_values:
            m["val_loss"] = self.val_values[-1]
            m["val_loss_start"] = self.val_values[0]
        if self.eval_rows:
            m["eval"] = self.eval_rows
            m["eval_n"] = self.eval_n or self.eval_n_spin.value()
        return m

    def use_model(self, name: str | None = None) -> bool:
        """Register the trained model (name, base, data, date, metrics) and make it the active one."""
        from engine.registry import Registry, RegistryError
        folder = self.model_folder
        if folder is None:
            return self._fail("Train a model to the end first", "Cannot use the model")
        usable, why = self._usable()
        if not usable:
            return self._fail(why, "Cannot use the model")
        name = (name or self.name_edit.text()).strip()
        if not name:
            return self._fail("Give the model a name", "Cannot use the model")
        reg = Registry()
        try:
            entry = reg.register(name, registry_kind(self.run_info["kind"]), folder,
                                 base=self.run_info.get("base_label"), data=self.run_info.get("data"),
                                 metrics=self.metrics())
            reg.use(entry.name)
        except (RegistryError, OSError) as e:
            return self._fail(str(e), "Cannot use the model")
        self.name_edit.setText(entry.name)
        self.refresh_bases()
        self.sig_message.emit(f"{entry.name} registered ({entry.date[:10]}) and active for {entry.kind}")
        self.sig_model_activated.emit(entry.name)
        return True

    # --- questions (tests replace these) --------------------------------------------------------------
    def ask_existing_run(self, out: Path) -> str:
        """'continue', 'restart' or 'cancel' when the output folder already holds a run."""
        box = QMessageBox(QMessageBox.Question, "A run is already there",
                          f"{out} holds a training run. Continue it from its last checkpoint, or start over "
                          "(its checkpoints and model are moved to a previous/ folder there, nothing is "
                          "deleted)?", QMessageBox.NoButton, self)
        cont = box.addButton("Continue", QMessageBox.AcceptRole)
        restart = box.addButton("Start over", QMessageBox.DestructiveRole)
        box.addButton(QMessageBox.Cancel)
        box.exec()
        return "continue" if box.clickedButton() is cont else "restart" if box.clickedButton() is restart else "cancel"

    def _fail(self, message: str, title: str = "Cannot train") -> bool:
        self.last_error = message
        self.message_label.setText(f'<span style="color:#ff7b6b">{message}</span>')
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self.window())
        box.setObjectName("error_box")
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        self.sig_message.emit(message)
        return False

    # --- shutdown -------------------------------------------------------------------------------------
    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Pause a running run (checkpoint + exit, so it can be resumed later; killed if it does not stop
        within ``timeout_s``), cancel an evaluation and wait for its thread. Idempotent."""
        ok = True
        self.timer.stop()
        if self.eval_worker is not None:
            self.eval_worker.cancel()
            ok = self.eval_worker.wait(int(timeout_s * 1000))
        if self.run is not None and self.run.running:
            self.run.pause()
            try:
                self.run.wait(timeout_s)
            except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: do not leave it running unattended
                self.run.cancel()
                ok = False
        self._closed = True
        return ok


TrainingPanel = QtTrainingPanel

__all__ = ["QtTrainingPanel", "TrainingPanel", "clutch_eval_seconds", "evaluate_clutch_iter", "evaluate_models_iter",
           "evaluate_tokenizers_iter", "explain_error", "format_eta", "is_clutch_folder", "registry_kind",
           "shift_folder_of"]
