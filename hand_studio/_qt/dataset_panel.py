"""The dataset panel: a folder of mocap (BVH from other tools, MANO parameter npz, keypoint arrays,
our clips) -> the ``hand-studio data import`` pipeline (import, clean, auto-caption) with every
cleaning threshold adjustable -> a per-step report of what cleaning removed -> a caption table to
review (tick to accept, double-click a caption to edit) -> "Save dataset" writes the accepted
clips as a corpus folder the trainers read.

The state lives in ``hand_studio.model.dataset`` (no Qt); import and save run on a
``GeneratorWorker`` (``hand_studio._qt.workers``) with progress and Cancel. An import is staged as
a corpus in ``staging_dir`` (default ``<user data folder>/staging``) until the panel shuts down or
the next import replaces it; Cancel and failures leave nothing there.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QMessageBox, QPushButton,
                               QSpinBox, QSplitter, QTableView, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from engine.paths import user_path
from hand_studio._qt.prompt_panel import QtProgressBar
from hand_studio._qt.workers import GeneratorWorker
from hand_studio.model.dataset import (DatasetState, check_output, cleaning_config, cleaning_fields,
                                       clutch_captioner_available, import_dataset_iter, output_is_occupied,
                                       write_dataset_iter)
from hand_studio.model.events import Event

UNITS = ("auto", "m", "cm", "mm")
STAGING_PREFIX = "import-"
STALE_STAGING_S = 24 * 3600


def default_staging_dir() -> Path:
    """Where imports are staged until saved: ``<user data folder>/staging``."""
    from engine.registry import data_dir
    return data_dir() / "staging"


def sweep_staging(folder: Path, keep: Path | None = None, older_than_s: float = STALE_STAGING_S) -> None:
    """Remove staging folders a crashed session left behind (untouched for a day), except ``keep``."""
    now = time.time()
    for p in folder.glob(f"{STAGING_PREFIX}*"):
        try:
            if p != keep and p.is_dir() and now - p.stat().st_mtime > older_than_s:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


class QtCaptionTableModel(QAbstractTableModel):
    """The review table over a ``DatasetState``: accepted (checkbox), clip, split, duration, caption
    (editable). Edits go to the state; the state's events repaint the rows."""

    COLUMNS = ("Use", "Clip", "Split", "Duration", "Caption")
    ACCEPT, CLIP, SPLIT, DURATION, CAPTION = range(5)

    sig_message = Signal(str)
    """An edit was refused (why)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.state: DatasetState | None = None

    def set_state(self, state: DatasetState | None) -> None:
        self.beginResetModel()
        if self.state is not None:
            self.state.events.disconnect(self._on_clips_change)
            self.state.events.disconnect(self._on_clip_change)
        self.state = state
        if state is not None:
            state.events.clips.connect(self._on_clips_change)
            state.events.clip.connect(self._on_clip_change)
        self.endResetModel()

    def _on_clips_change(self, event: Event) -> None:
        if self.rowCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, len(self.COLUMNS) - 1))

    def _on_clip_change(self, event: Event) -> None:
        row = int(event.value)
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(self.COLUMNS) - 1))

    # --- Qt model -----------------------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() or self.state is None else len(self.state)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if role == Qt.DisplayRole and orientation == Qt.Horizontal:
            return self.COLUMNS[section]
        return None

    def flags(self, index):
        if not index.isValid():
            return Qt.NoItemFlags
        f = Qt.ItemIsEnabled | Qt.ItemIsSelectable
        if index.column() == self.ACCEPT:
            f |= Qt.ItemIsUserCheckable
        elif index.column() == self.CAPTION:
            f |= Qt.ItemIsEditable
        return f

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid() or self.state is None:
            return None
        c, col = self.state.clips[index.row()], index.column()
        if role == Qt.CheckStateRole and col == self.ACCEPT:
            return Qt.Checked if c.accepted else Qt.Unchecked
        if role in (Qt.DisplayRole, Qt.EditRole):
            if col == self.CLIP:
                return c.label
            if col == self.SPLIT:
                return c.split
            if col == self.DURATION:
                return f"{c.seconds:.1f} s"
            if col == self.CAPTION:
                return c.caption
            return None
        if role == Qt.ToolTipRole:
            if col == self.CAPTION:
                where = {"events": "from the measured kinematic events", "clutch": "by CLUTCH"}[c.caption_source]
                return (f"{c.caption}\n\nEdited; the automatic caption ({where}) was:\n{c.auto_caption}" if c.edited
                        else f"{c.caption}\n\nAutomatic caption, {where}. Double-click to edit.")
            if col == self.ACCEPT:
                return "Ticked clips are saved; unticked ones are left out"
        if role == Qt.FontRole and col == self.CAPTION and c.edited:
            font = QFont()
            font.setItalic(True)
            return font
        if role == Qt.ForegroundRole and not c.accepted:
            return QColor(128, 128, 128)
        return None

    def setData(self, index, value, role=Qt.EditRole) -> bool:
        if not index.isValid() or self.state is None:
            return False
        if index.column() == self.ACCEPT and role == Qt.CheckStateRole:
            checked = value if isinstance(value, bool) else Qt.CheckState(value) == Qt.Checked
            self.state.set_accepted(index.row(), checked)
            return True
        if index.column() == self.CAPTION and role == Qt.EditRole:
            try:
                self.state.set_caption(index.row(), str(value))
            except ValueError as e:
                self.sig_message.emit(str(e))
                return False
            return True
        return False


class QtDatasetPanel(QWidget):
    """Import a folder of mocap into a reviewed, captioned training corpus."""

    sig_import_finished = Signal(int)
    """An import ended with this many clips to review."""
    sig_dataset_saved = Signal(str)
    """A dataset (corpus folder) was written (its path)."""
    sig_cancelled = Signal(str)
    """Cancel stopped a job ("import" or "save"); nothing of it was kept."""
    sig_message = Signal(str)
    """One line for the status bar."""

    def __init__(self, studio=None, staging_dir: str | Path | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("dataset_panel")
        self.studio = studio  # for CLUTCH captions; None = load one when asked
        # Imports are staged on disk (a corpus as big as the result), not in /tmp, which may be RAM.
        self.staging_dir = Path(staging_dir) if staging_dir is not None else default_staging_dir()
        self.worker: GeneratorWorker | None = None
        self.job = ""  # "import" | "save" while a worker runs
        self.state: DatasetState | None = None
        self.last_error = ""
        self.last_saved: Path | None = None
        self._staging_root: Path | None = None  # the reviewed state's staging corpus lives here
        self._pending_root: Path | None = None  # an import in progress writes here
        self._save_force = False
        self._started_at = 0.0
        self._closed = False
        self._build()
        self._update_state()

    # --- widgets ------------------------------------------------------------------------------
    def _build(self) -> None:
        source = QGroupBox("Mocap folder", self)
        form = QFormLayout(source)
        self.source_edit = QLineEdit(self)
        self.source_edit.setObjectName("dataset_source")
        self.source_edit.setPlaceholderText("a folder of .bvh / .fbx / .npz / .npy / .json files (recursive)")
        form.addRow("Folder", self._with_browse(self.source_edit, "Choose the mocap folder"))
        self.fps_spin = QDoubleSpinBox(self)
        self.fps_spin.setRange(0.0, 1000.0)
        self.fps_spin.setDecimals(2)
        self.fps_spin.setSpecialValueText("from the files")
        self.fps_spin.setToolTip("Frame rate for files that do not give one (everything is resampled to 30 fps)")
        self.units_combo = QComboBox(self)
        self.units_combo.addItems(UNITS)
        self.units_combo.setToolTip("Length unit of keypoints and foreign skeletons (auto: from the hand size)")
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, 2 ** 31 - 1)
        self.seed_spin.setToolTip("Chooses the train / val / test split of each file and the caption wording")
        options = QHBoxLayout()
        for text, w in (("Frame rate", self.fps_spin), ("Units", self.units_combo), ("Seed", self.seed_spin)):
            options.addWidget(QLabel(text, self))
            options.addWidget(w, 1)
        form.addRow(options)

        cleaning = QGroupBox("Cleaning thresholds", self)
        grid = QGridLayout(cleaning)
        self.cleaning_spins: dict[str, QSpinBox | QDoubleSpinBox] = {}
        self._specs = cleaning_fields()
        for k, spec in enumerate(self._specs):
            spin = QSpinBox(self) if spec.is_int else QDoubleSpinBox(self)
            if not spec.is_int:
                spin.setDecimals(spec.decimals)
            spin.setRange(spec.minimum, spec.maximum)
            spin.setSingleStep(spec.step)
            spin.setValue(spec.default)
            if spec.unit:
                spin.setSuffix(f" {spec.unit}")
            spin.setToolTip(spec.tooltip)
            spin.setObjectName(f"cleaning_{spec.name}")
            self.cleaning_spins[spec.name] = spin
            label = QLabel(spec.label, self)
            label.setToolTip(spec.tooltip)
            row, col = divmod(k, 2)  # two columns: the panel lives in a dock
            grid.addWidget(label, row, 2 * col)
            grid.addWidget(spin, row, 2 * col + 1)
        self.defaults_button = QPushButton("Defaults", self)
        self.defaults_button.setToolTip("The papers' thresholds (HandX intensity 25 / 30 deg/s)")
        self.defaults_button.clicked.connect(self.reset_cleaning)
        grid.addWidget(self.defaults_button, (len(self._specs) + 1) // 2, 2, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)

        self.clutch_check = QCheckBox("Caption with CLUTCH", self)
        self.clutch_available = clutch_captioner_available()
        self.clutch_check.setEnabled(self.clutch_available)
        self.clutch_check.setToolTip("Captions written by the CLUTCH model instead of from the measured events"
                                     if self.clutch_available else
                                     "No CLUTCH model is installed: captions come from the measured kinematic events")

        self.import_button = QPushButton("Import", self)
        self.import_button.setObjectName("dataset_import")
        self.import_button.setToolTip("Import, clean and caption every file in the folder")
        self.import_button.clicked.connect(self.start_import)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QtProgressBar(self)
        self.status_label = QLabel("", self)
        self.status_label.setWordWrap(True)
        run_row = QHBoxLayout()
        run_row.addWidget(self.import_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress, 1)

        report = QGroupBox("What cleaning removed", self)
        rlay = QVBoxLayout(report)
        self.scope_combo = QComboBox(self)
        self.scope_combo.setToolTip("All files together, or one file")
        self.scope_combo.currentTextChanged.connect(self._fill_report)
        self.report_table = QTableWidget(0, 4, self)
        self.report_table.setObjectName("cleaning_report")
        self.report_table.setHorizontalHeaderLabels(["Step", "Removed", "Unit", "Why"])
        self.report_table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.report_table.verticalHeader().setVisible(False)
        self.report_table.horizontalHeader().setSectionResizeMode(3, QHeaderView.Stretch)
        self.report_table.setWordWrap(True)
        rlay.addWidget(self.scope_combo)
        rlay.addWidget(self.report_table)

        captions = QGroupBox("Clips and captions", self)
        clay = QVBoxLayout(captions)
        self.caption_model = QtCaptionTableModel(self)
        self.caption_model.sig_message.connect(self._on_refused_edit)
        self.caption_model.dataChanged.connect(self._update_summary)
        self.caption_model.modelReset.connect(self._update_summary)
        self.caption_table = QTableView(self)
        self.caption_table.setObjectName("caption_table")
        self.caption_table.setModel(self.caption_model)
        self.caption_table.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed
                                           | QAbstractItemView.AnyKeyPressed)
        self.caption_table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.caption_table.verticalHeader().setVisible(False)
        head = self.caption_table.horizontalHeader()
        for col in range(4):
            head.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        head.setSectionResizeMode(QtCaptionTableModel.CAPTION, QHeaderView.Stretch)
        self.accept_all_button = QPushButton("Tick all", self)
        self.accept_all_button.clicked.connect(lambda: self.state is not None and self.state.set_all_accepted(True))
        self.reject_all_button = QPushButton("Untick all", self)
        self.reject_all_button.clicked.connect(lambda: self.state is not None and self.state.set_all_accepted(False))
        self.summary_label = QLabel("", self)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_all_button)
        buttons.addWidget(self.reject_all_button)
        buttons.addWidget(self.summary_label, 1)
        clay.addWidget(self.caption_table)
        clay.addLayout(buttons)

        save = QGroupBox("Save", self)
        sform = QFormLayout(save)
        self.out_edit = QLineEdit(self)
        self.out_edit.setObjectName("dataset_out")
        self.out_edit.setPlaceholderText("the corpus folder to write (e.g. my_hands_dataset)")
        sform.addRow("Dataset folder", self._with_browse(self.out_edit, "Choose where to save the dataset"))
        self.save_button = QPushButton("Save dataset", self)
        self.save_button.setObjectName("dataset_save")
        self.save_button.setToolTip("Write the ticked clips with their captions as a corpus the trainers read")
        self.save_button.clicked.connect(lambda: self.save_dataset())
        sform.addRow("", self.save_button)

        splitter = QSplitter(Qt.Vertical, self)
        splitter.addWidget(report)
        splitter.addWidget(captions)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)

        layout = QVBoxLayout(self)
        layout.addWidget(source)
        layout.addWidget(cleaning)
        layout.addWidget(self.clutch_check)
        layout.addLayout(run_row)
        layout.addWidget(self.status_label)
        layout.addWidget(splitter, 1)
        layout.addWidget(save)

    def _with_browse(self, edit: QLineEdit, title: str) -> QWidget:
        box = QWidget(self)
        lay = QHBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(edit, 1)
        button = QPushButton("Browse…", box)
        button.clicked.connect(lambda: self._browse(edit, title))
        lay.addWidget(button)
        return box

    def _browse(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title, edit.text() or str(Path.home()))
        if path:
            edit.setText(path)

    # --- state ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.worker is not None

    def cleaning_values(self) -> dict:
        return {name: spin.value() for name, spin in self.cleaning_spins.items()}

    def set_cleaning(self, **values) -> None:
        """Set thresholds by field name (what typing into the spin boxes does)."""
        for name, v in values.items():
            if name not in self.cleaning_spins:
                raise ValueError(f"no cleaning threshold {name!r}; known: {sorted(self.cleaning_spins)}")
            self.cleaning_spins[name].setValue(v)

    def reset_cleaning(self) -> None:
        for spec in self._specs:
            self.cleaning_spins[spec.name].setValue(spec.default)

    def _update_state(self) -> None:
        busy = self.running
        self.import_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        has = self.state is not None and len(self.state) > 0
        self.save_button.setEnabled(has and not busy)
        for w in (self.accept_all_button, self.reject_all_button):
            w.setEnabled(has and not busy)
        self._update_summary()

    def _update_summary(self, *args) -> None:
        self.summary_label.setText(self.state.summary() if self.state is not None else "")

    def _fill_report(self, scope: str | None = None) -> None:
        self.report_table.setRowCount(0)
        if self.state is None:
            return
        rows = self.state.step_rows(scope or self.scope_combo.currentText() or "All files")
        self.report_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, v in enumerate((row.step, str(row.removed), row.unit, row.reasons)):
                item = QTableWidgetItem(v)
                if c == 1:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if c == 3:
                    item.setToolTip(v)
                self.report_table.setItem(r, c, item)
        self.report_table.resizeColumnsToContents()
        self.report_table.horizontalHeader().setSectionResizeMode(3, QHeaderView.Stretch)
        self.report_table.resizeRowsToContents()

    def report_rows(self) -> list[tuple[str, int, str, str]]:
        """The report table as shown (tests, diagnostics)."""
        t = self.report_table
        return [(t.item(r, 0).text(), int(t.item(r, 1).text()), t.item(r, 2).text(), t.item(r, 3).text())
                for r in range(t.rowCount())]

    # --- import ---------------------------------------------------------------------------------
    def start_import(self) -> bool:
        """Run the import pipeline on the folder with the thresholds shown, on a worker thread."""
        if self.running:
            self.sig_message.emit("The dataset panel is busy (Cancel it first)")
            return False
        text = self.source_edit.text().strip()
        if not text:
            return self._fail("Choose the folder of mocap files to import first")
        try:
            src = user_path(text)
        except ValueError as e:
            return self._fail(str(e))
        if not src.is_dir():
            return self._fail(f"source folder not found: {src}")
        try:
            cfg = cleaning_config(self.cleaning_values())
        except ValueError as e:
            return self._fail(str(e))
        fps = self.fps_spin.value() or None
        units, seed = self.units_combo.currentText(), self.seed_spin.value()
        use_clutch = self.clutch_check.isChecked() and self.clutch_available
        studio = self.studio
        try:
            self.staging_dir.mkdir(parents=True, exist_ok=True)
            sweep_staging(self.staging_dir, keep=self._staging_root)
            root = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.staging_dir))
        except OSError as e:
            return self._fail(f"cannot create a staging folder in {self.staging_dir}: {e}")
        self._pending_root = root

        def make():
            clutch = None
            if use_clutch:
                import torch

                from engine.api import Studio
                clutch = studio if studio is not None else Studio(torch.device("cpu"))
            return import_dataset_iter(src, root / "corpus", cfg, fps=fps, units=units, seed=seed,
                                       clutch_studio=clutch)
        self._start_worker("import", make, f"importing {src.name}…")
        return True

    def _start_worker(self, job: str, make, text: str) -> None:
        self.job = job
        self.last_error = ""
        self.worker = GeneratorWorker(make, max_rate=10.0, parent=self)
        self.worker.sig_yielded.connect(self._on_yielded)
        self.worker.sig_finished.connect(self._on_finished)
        self.worker.sig_errored.connect(self._on_errored)
        self.worker.sig_cancelled.connect(self._on_cancelled)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat(text)
        self._started_at = time.monotonic()
        self.worker.start()
        self._update_state()

    def cancel(self) -> bool:
        """Stop the running import or save; nothing it was writing is left behind."""
        if not self.running:
            return False
        self.worker.cancel()
        self.progress.setFormat("cancelling…")
        return True

    def _on_yielded(self, item: dict) -> None:
        if self._closed:
            return
        of, done = max(1, int(item.get("of", 1))), int(item.get("done", 0))
        self.progress.setRange(0, of)
        self.progress.setValue(done)
        if self.job == "import":
            stage = "captioning" if item.get("stage") == "caption" else "files"
            self.progress.setFormat(f"{stage} {done} / {of}, {item.get('clips', 0)} clips")
            errors = item.get("errors") or []
            if errors:
                self.status_label.setText(f"{len(errors)} file(s) skipped; last: {errors[-1]}")
        else:
            self.progress.setFormat(f"writing {done} / {of} clips")

    def _end_worker(self, text: str) -> str:
        self.progress.setFormat(text)
        if self.worker is not None:
            self.worker.deleteLater()
        self.worker = None
        job, self.job = self.job, ""
        self._update_state()
        return job

    def _on_finished(self, item: dict) -> None:
        if self._closed:
            return
        took = time.monotonic() - self._started_at
        job = self._end_worker("done")
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        if job == "import":
            self._adopt(item["state"], self._pending_root)
            self._pending_root = None
            errors = item.get("errors") or []
            text = (f"Imported {len(self.state)} clips of {self.state.meta['frames']} frames from "
                    f"{item['of']} source(s) in {took:.1f} s" + (f"; {len(errors)} file(s) skipped" if errors else ""))
            self.status_label.setText(text)
            self.sig_message.emit(text)
            self.sig_import_finished.emit(len(self.state))
        else:
            self.last_saved = Path(item["path"])
            s = item["splits"]
            text = (f"Saved {sum(s.values())} clips (train {s['train']}, val {s['val']}, test {s['test']}) "
                    f"to {item['path']}")
            self.status_label.setText(text)
            self.sig_message.emit(text)
            self.sig_dataset_saved.emit(item["path"])

    def _adopt(self, state: DatasetState, root: Path) -> None:
        old = self._staging_root
        self.state, self._staging_root = state, root
        self.caption_model.set_state(state)
        self.scope_combo.blockSignals(True)
        self.scope_combo.clear()
        self.scope_combo.addItems(state.report_scopes())
        self.scope_combo.blockSignals(False)
        self._fill_report("All files")
        src = state.source_dir
        if not self.out_edit.text().strip() and src is not None:
            self.out_edit.setText(str(src.parent / f"{src.name}_dataset"))
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._update_state()

    def _on_errored(self, message: str) -> None:
        if self._closed:
            return
        job = self._end_worker("failed")
        self._drop_pending()
        self._fail(message, "Cannot import" if job == "import" else "Cannot save the dataset")

    def _on_cancelled(self) -> None:
        if self._closed:
            return
        job = self._end_worker("cancelled")
        self._drop_pending()
        text = "Import cancelled; nothing was kept" if job == "import" else "Save cancelled; nothing was written"
        self.status_label.setText(text)
        self.sig_message.emit(text)
        self.sig_cancelled.emit(job)

    def _drop_pending(self) -> None:
        if self._pending_root is not None:
            shutil.rmtree(self._pending_root, ignore_errors=True)
            self._pending_root = None

    # --- review ---------------------------------------------------------------------------------
    def edit_caption(self, row: int, text: str) -> bool:
        """What typing a caption into the table does (for scripts; the table edits the same way)."""
        return self.caption_model.setData(self.caption_model.index(row, QtCaptionTableModel.CAPTION), text)

    def _on_refused_edit(self, message: str) -> None:
        self.status_label.setText(message)
        self.sig_message.emit(message)

    # --- save -----------------------------------------------------------------------------------
    def save_dataset(self, out: str | Path | None = None) -> bool:
        """Write the ticked clips with their captions to ``out`` (default: the folder field) on a
        worker; a non-empty folder is replaced only after asking."""
        if self.running:
            self.sig_message.emit("The dataset panel is busy (Cancel it first)")
            return False
        if self.state is None:
            return self._fail("Import a folder first")
        text = str(out) if out is not None else self.out_edit.text().strip()
        if not text:
            return self._fail("Choose the dataset folder to write")
        try:
            path = check_output(text, self.state)
        except ValueError as e:
            return self._fail(str(e), "Cannot save the dataset")
        force = False
        if output_is_occupied(path):
            if not path.is_dir():
                return self._fail(f"{path} exists and is not a folder", "Cannot save the dataset")
            if not self.ask_replace(path):
                return False
            force = True
        snap = self.state.snapshot()
        if not snap:
            return self._fail("No clip is ticked; tick at least one clip to save a dataset", "Cannot save the dataset")
        self.out_edit.setText(str(path))
        state = self.state
        self._start_worker("save", lambda: write_dataset_iter(state, path, force=force, snapshot=snap),
                           f"saving {len(snap)} clips…")
        return True

    # --- questions (tests replace these) --------------------------------------------------------
    def ask_replace(self, path: Path) -> bool:
        answer = QMessageBox.question(self, "Replace the folder?",
                                      f"{path} is not empty. Replace it with the new dataset? (It is replaced only "
                                      "once the new one is complete.)", QMessageBox.Yes | QMessageBox.No,
                                      QMessageBox.No)
        return answer == QMessageBox.Yes

    def _fail(self, message: str, title: str = "Cannot import") -> bool:
        self.last_error = message
        self.status_label.setText(message)
        box = QMessageBox(QMessageBox.Warning, title, message, QMessageBox.Ok, self.window())
        box.setObjectName("error_box")
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        self.sig_message.emit(message)
        return False

    # --- shutdown -------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel running work, wait for its thread, delete the staging folders. Idempotent."""
        ok = True
        if self.worker is not None:
            self.worker.cancel()
            ok = self.worker.wait(timeout_ms)
        self._closed = True
        self.caption_model.set_state(None)
        for root in (self._pending_root, self._staging_root):
            if root is not None:
                shutil.rmtree(root, ignore_errors=True)
        self._pending_root = self._staging_root = None
        return ok


DatasetPanel = QtDatasetPanel

__all__ = ["DatasetPanel", "QtCaptionTableModel", "QtDatasetPanel"]
