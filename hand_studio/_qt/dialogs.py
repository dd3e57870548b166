"""Import and export dialogs, and the status-bar job that runs them off the GUI thread.

The dialogs only collect a request (``hand_studio.model.exchange``) and emit it; the main
window runs it with :class:`QtFileJob` on a ``GeneratorWorker`` (``hand_studio._qt.workers``).
The import dialog probes the chosen file on a worker as soon as it is picked (the real importer
with the dialog's options) and shows what was detected: format, layout, units, keypoint order,
frames, hands. Accepting reuses that result when the options have not changed since.
"""
from __future__ import annotations

import html
import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QRadioButton,
                               QSpinBox, QToolButton, QVBoxLayout, QWidget)

from engine.paths import user_path
from hand_studio._qt.prompt_panel import QtProgressBar
from hand_studio._qt.workers import GeneratorWorker
from hand_studio.model.document import Document
from hand_studio.model.exchange import (BVH_LAYOUTS, EXPORT_FORMATS, HAND_CHOICES, IMPORT_FORMATS, IMPORT_ORDERS,
                                        IMPORT_SUFFIXES, IMPORT_UNITS, MESH_SUFFIXES, ExchangeError, ExportRequest,
                                        ImportRequest, ImportResult, import_iter)

ERROR_STYLE = "color: #ff8080"
NOTE_STYLE = "color: #a0a4ab"
PROBE_DELAY_MS = 250  # typing a path: probe once it settles
IMPORT_FILTER = ("Motion files (*.npz *.npy *.json *.bvh *.fbx);;Hand Studio clips (*.npz);;"
                 "BVH (*.bvh);;FBX (*.fbx);;Arrays (*.npz *.npy *.json);;All files (*)")


def _export_filter(suffix: str) -> str:
    return f"{EXPORT_FORMATS[suffix]} (*{suffix});;All files (*)"


# --- the job in the status bar ------------------------------------------------------------
class QtFileJob(QWidget):
    """Runs one import or export generator on a worker thread, shown in the status bar as a label,
    a progress bar and Cancel. One job at a time."""

    sig_finished = Signal(str, object)
    """(kind, the generator's last item) — kind is 'import' or 'export'."""
    sig_failed = Signal(str, str)
    """(kind, message): making or running the generator raised."""
    sig_cancelled = Signal(str)
    """(kind): Cancel was honoured; nothing was written or changed."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker: GeneratorWorker | None = None
        self.kind = ""
        self.context = None  # what the caller needs when the job ends (e.g. the import mode)
        self.label = QLabel(self)
        self.label.setObjectName("job_label")
        self.progress = QtProgressBar(self)
        self.progress.setObjectName("job_progress")
        self.progress.setFixedWidth(140)
        self.cancel_button = QToolButton(self)
        self.cancel_button.setObjectName("job_cancel")
        self.cancel_button.setText("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.progress)
        layout.addWidget(self.cancel_button)
        self.setVisible(False)

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.is_running

    def start(self, kind: str, make_generator, text: str, context=None, cancel_tip: str = "") -> bool:
        """Start ``make_generator()`` on a worker; False when another job is running."""
        if self.running:
            return False
        self.kind, self.context = kind, context
        self.worker = GeneratorWorker(make_generator, parent=self)
        self.worker.sig_yielded.connect(self._on_yielded)
        self.worker.sig_finished.connect(self._on_finished)
        self.worker.sig_errored.connect(self._on_errored)
        self.worker.sig_cancelled.connect(self._on_cancelled)
        self.label.setText(text)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.cancel_button.setEnabled(True)
        self.cancel_button.setToolTip(cancel_tip or f"Stop the {kind}")
        self.setVisible(True)
        self.worker.start()
        return True

    def cancel(self) -> bool:
        if not self.running:
            return False
        self.worker.cancel()
        self.progress.setFormat("cancelling…")
        self.cancel_button.setEnabled(False)
        return True

    def _on_yielded(self, item: dict) -> None:
        self.progress.setRange(0, int(item.get("of", 1)))
        self.progress.setValue(int(item.get("step", 0)))
        self.progress.setFormat(str(item.get("text", "")))

    def _end(self):
        worker, self.worker = self.worker, None
        worker.deleteLater()
        self.setVisible(False)
        return self.kind, self.context

    def _on_finished(self, item) -> None:
        kind, _ = self._end()
        self.sig_finished.emit(kind, item)

    def _on_errored(self, message: str) -> None:
        kind, _ = self._end()
        self.sig_failed.emit(kind, message)

    def _on_cancelled(self) -> None:
        kind, _ = self._end()
        self.sig_cancelled.emit(kind)

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel a running job and wait for its thread (closing the window)."""
        if self.worker is None:
            return True
        for sig in (self.worker.sig_finished, self.worker.sig_errored, self.worker.sig_cancelled):
            sig.disconnect()
        self.worker.cancel()
        return self.worker.wait(timeout_ms)


# --- export --------------------------------------------------------------------------------
class QtExportDialog(QDialog):
    """Where and how to export the current take: format, BVH layout, meshes, frame range, fps
    (resampled), hands. Accepting emits ``sig_export_requested``; the window runs it."""

    sig_export_requested = Signal(object)
    """An ExportRequest, checked against the current take."""

    def __init__(self, document: Document, settings: QSettings | None = None, start_dir: str = "",
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export take")
        self.setObjectName("export_dialog")
        self.document = document
        self.settings = settings
        self._syncing = False

        self.path_edit = QLineEdit(self)
        self.path_edit.setObjectName("export_path")
        self.path_edit.setMinimumWidth(360)
        self.browse_button = QToolButton(self)
        self.browse_button.setText("Browse…")
        self.browse_button.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)

        self.format_combo = QComboBox(self)
        self.format_combo.setObjectName("export_format")
        for suffix, text in EXPORT_FORMATS.items():
            self.format_combo.addItem(text, suffix)
        self.layout_combo = QComboBox(self)
        self.layout_combo.setObjectName("export_bvh_layout")
        for key, text in BVH_LAYOUTS.items():
            self.layout_combo.addItem(text, key)
        self.layout_combo.setToolTip("Most BVH readers take one ROOT per file; one file per hand is the safe choice")
        self.mesh_check = QCheckBox("Include the skinned hand meshes", self)
        self.mesh_check.setObjectName("export_mesh")
        self.mesh_check.setChecked(True)

        self.first_spin = QSpinBox(self)
        self.first_spin.setObjectName("export_first")
        self.last_spin = QSpinBox(self)
        self.last_spin.setObjectName("export_last")
        self.whole_button = QToolButton(self)
        self.whole_button.setText("Whole take")
        self.whole_button.clicked.connect(self.set_whole_take)
        self.interval_button = QToolButton(self)
        self.interval_button.setText("Interval")
        self.interval_button.setToolTip("The timeline's interval (Ctrl+drag on the timeline sets it)")
        self.interval_button.clicked.connect(self.set_interval_range)
        range_row = QHBoxLayout()
        range_row.addWidget(self.first_spin)
        range_row.addWidget(QLabel("to", self))
        range_row.addWidget(self.last_spin)
        range_row.addWidget(self.whole_button)
        range_row.addWidget(self.interval_button)
        range_row.addStretch(1)
        self.fps_spin = QDoubleSpinBox(self)
        self.fps_spin.setObjectName("export_fps")
        self.fps_spin.setRange(1.0, 1000.0)
        self.fps_spin.setDecimals(3)
        self.fps_spin.setSuffix(" fps")
        self.fps_spin.setToolTip("Another rate resamples the take (slerp per joint)")
        self.hands_combo = QComboBox(self)
        self.hands_combo.setObjectName("export_hands")
        for h in HAND_CHOICES:
            self.hands_combo.addItem("both hands" if h == "both" else f"{h} hand only", h)

        self.summary_label = QLabel(self)
        self.summary_label.setObjectName("export_summary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setStyleSheet(NOTE_STYLE)
        self.error_label = QLabel(self)
        self.error_label.setObjectName("export_error")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.button(QDialogButtonBox.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("File", path_row)
        form.addRow("Format", self.format_combo)
        self.layout_label = QLabel("BVH layout", self)
        form.addRow(self.layout_label, self.layout_combo)
        form.addRow("", self.mesh_check)
        form.addRow("Frames", range_row)
        form.addRow("Frame rate", self.fps_spin)
        form.addRow("Hands", self.hands_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self.path_edit.textEdited.connect(self._on_path_edited)
        self.format_combo.currentIndexChanged.connect(self._on_format_changed)
        for w in (self.layout_combo, self.hands_combo):
            w.currentIndexChanged.connect(self._update)
        for w in (self.first_spin, self.last_spin):
            w.valueChanged.connect(self._update)
        self.fps_spin.valueChanged.connect(self._update)
        self.mesh_check.toggled.connect(self._update)
        self.reset(start_dir)

    # --- state ------------------------------------------------------------------------------
    def reset(self, start_dir: str = "") -> None:
        """Fill the form from the document (range, fps) and the last export's choices."""
        doc = self.document
        s = self.settings
        suffix = str(s.value("export/format", ".fbx")) if s is not None else ".fbx"
        suffix = suffix if suffix in EXPORT_FORMATS else ".fbx"
        stem = (doc.project_path.name.removesuffix(".handproj") if doc.project_path is not None
                else doc.path.stem if doc.path is not None else "hands")
        folder = start_dir or (str(s.value("export/dir", "")) if s is not None else "") or str(Path.home())
        self._syncing = True
        try:
            self.path_edit.setText(str(Path(folder) / f"{stem}{suffix}"))
            self.format_combo.setCurrentIndex(self.format_combo.findData(suffix))
            if s is not None:
                self.layout_combo.setCurrentIndex(max(0, self.layout_combo.findData(s.value("export/bvh_layout", "per_hand"))))
                self.mesh_check.setChecked(str(s.value("export/with_mesh", "true")).lower() == "true")
            last = doc.num_frames - 1
            for spin in (self.first_spin, self.last_spin):
                spin.setRange(0, last)
            self.set_whole_take()
            self.fps_spin.setValue(doc.fps)
            self.hands_combo.setCurrentIndex(0)
        finally:
            self._syncing = False
        self.interval_button.setEnabled(doc.interval is not None)
        self._update()

    def set_whole_take(self) -> None:
        self.first_spin.setValue(0)
        self.last_spin.setValue(self.document.num_frames - 1)

    def set_interval_range(self) -> None:
        if self.document.interval is not None:
            a, b = self.document.interval
            self.first_spin.setValue(a)
            self.last_spin.setValue(b)

    def set_path(self, path: str | os.PathLike) -> None:
        """Set the target (and the format, from its extension)."""
        self.path_edit.setText(str(path))
        self._on_path_edited(str(path))

    def set_format(self, suffix: str) -> None:
        i = self.format_combo.findData(suffix)
        if i < 0:
            raise ValueError(f"export format must be one of {list(EXPORT_FORMATS)}; got {suffix!r}")
        self.format_combo.setCurrentIndex(i)

    def request(self) -> ExportRequest:
        """The form as an ExportRequest (not yet checked)."""
        fps = self.fps_spin.value()
        # The field shows the take's rate rounded to its decimals (23.976 for 24000/1001): that value
        # means the take's exact rate, not a resample to the rounded one.
        shows_take_fps = abs(fps - self.document.fps) <= 0.5 * 10.0 ** -self.fps_spin.decimals()
        return ExportRequest(
            path=user_path(self.path_edit.text().strip()), first=self.first_spin.value(),
            last=self.last_spin.value(), fps=None if shows_take_fps else fps,
            hands=self.hands_combo.currentData(),
            bvh_layout=self.layout_combo.currentData() if self.hands_combo.currentData() == "both" else "per_hand",
            with_mesh=self.mesh_check.isChecked())

    # --- widgets -> form ----------------------------------------------------------------------
    def _on_path_edited(self, text: str) -> None:
        suffix = Path(text.strip()).suffix.lower()
        i = self.format_combo.findData(suffix)
        if i >= 0 and i != self.format_combo.currentIndex():
            self._syncing = True
            try:
                self.format_combo.setCurrentIndex(i)
            finally:
                self._syncing = False
        self._update()

    def _on_format_changed(self) -> None:
        if not self._syncing:
            suffix = self.format_combo.currentData()
            text = self.path_edit.text().strip()
            if text:
                p = Path(text)
                stem = p.stem if p.suffix.lower() in EXPORT_FORMATS or not p.suffix else p.name
                self.path_edit.setText(str(p.with_name(stem + suffix)))
        self._update()

    def _browse(self) -> None:
        suffix = self.format_combo.currentData()
        path, _ = QFileDialog.getSaveFileName(self, "Export take as", self.path_edit.text(), _export_filter(suffix))
        if path:
            if not Path(path).suffix:
                path += suffix
            self.set_path(path)

    def _update(self) -> None:
        suffix = self.format_combo.currentData()
        is_bvh = suffix == ".bvh"
        self.layout_combo.setVisible(is_bvh)
        self.layout_label.setVisible(is_bvh)
        self.layout_combo.setEnabled(is_bvh and self.hands_combo.currentData() == "both")  # one hand: its own ROOT
        self.mesh_check.setVisible(suffix in MESH_SUFFIXES)
        npz = suffix == ".npz"
        if npz and self.hands_combo.currentData() != "both":
            self.hands_combo.setCurrentIndex(0)
        self.hands_combo.setEnabled(not npz)
        self.hands_combo.setToolTip("A .npz clip always holds both hands" if npz else "")
        self.last_spin.setMinimum(self.first_spin.value())
        self.error_label.clear()
        try:
            req = self.request().check(self.document.clip)
        except (ExchangeError, ValueError) as e:
            self.summary_label.setText("")
            self.error_label.setText(str(e))
            self.buttons.button(QDialogButtonBox.Ok).setEnabled(False)
            return
        text = req.describe(self.document.clip)
        existing = [p.name for p in req.output_files() if p.exists()]
        if existing:
            text += f"\nReplaces {', '.join(existing)}."
        self.summary_label.setText(text)
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(True)

    def accept(self) -> None:
        try:
            req = self.request().check(self.document.clip)
        except (ExchangeError, ValueError) as e:
            self.error_label.setText(str(e))
            return
        if self.settings is not None:
            self.settings.setValue("export/format", req.suffix)
            self.settings.setValue("export/dir", str(Path(req.path).parent))
            self.settings.setValue("export/bvh_layout", req.bvh_layout)
            self.settings.setValue("export/with_mesh", "true" if req.with_mesh else "false")
        super().accept()
        self.sig_export_requested.emit(req)


# --- import --------------------------------------------------------------------------------
class QtImportDialog(QDialog):
    """Which file(s) to import, the importer's options, what the probe detected, and where the
    result goes (a new take, or a new document). Accepting emits ``sig_import_requested``."""

    sig_import_requested = Signal(object, str, object)
    """(ImportRequest, mode 'take' | 'document', ImportResult or error message str or None)."""
    sig_probed = Signal(object)
    """A probe ended: its ImportResult, or the error message (str)."""

    MODES = ("take", "document")

    def __init__(self, start_dir: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Import motion")
        self.setObjectName("import_dialog")
        self.start_dir = start_dir
        self.probe_worker: GeneratorWorker | None = None
        self._workers: list[GeneratorWorker] = []  # every probe thread until it has stopped
        self._probe_again = False
        self.probed_request: ImportRequest | None = None
        self.probe_result: ImportResult | str | None = None  # ImportResult, an error message, or None

        self.paths_edit = QLineEdit(self)
        self.paths_edit.setObjectName("import_paths")
        self.paths_edit.setMinimumWidth(380)
        self.paths_edit.setPlaceholderText("a file, or several single-hand files separated by ';'")
        self.browse_button = QToolButton(self)
        self.browse_button.setText("Browse…")
        self.browse_button.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.paths_edit, 1)
        path_row.addWidget(self.browse_button)

        def combo(name: str, items: dict, tip: str) -> QComboBox:
            c = QComboBox(self)
            c.setObjectName(name)
            for key, text in items.items():
                c.addItem(f"{key}: {text}" if key != "auto" else f"auto ({text})", key)
            c.setToolTip(tip)
            c.currentIndexChanged.connect(self._schedule_probe)
            return c

        self.format_combo = combo("import_format", IMPORT_FORMATS, "What the file holds; auto reads its contents")
        self.units_combo = combo("import_units", IMPORT_UNITS,
                                 "Length unit of keypoints and foreign skeletons (our own files are exact)")
        self.order_combo = combo("import_order", IMPORT_ORDERS, "Keypoint order of (T, 2, 21, 3) arrays")
        self.fps_spin = QDoubleSpinBox(self)
        self.fps_spin.setObjectName("import_fps")
        self.fps_spin.setRange(0.0, 1000.0)
        self.fps_spin.setDecimals(3)
        self.fps_spin.setSpecialValueText("from the file (else 30)")
        self.fps_spin.setToolTip("Frame rate for array files that give none; BVH and FBX keep their own")
        self.fps_spin.valueChanged.connect(self._schedule_probe)
        self.hands_combo = QComboBox(self)
        self.hands_combo.setObjectName("import_hands")
        for key, text in ((None, "from the file"), ("left", "left"), ("right", "right")):
            self.hands_combo.addItem(text, key)
        self.hands_combo.setToolTip("Which hand single-hand MANO parameters belong to")
        self.hands_combo.currentIndexChanged.connect(self._schedule_probe)

        self.mode_take = QRadioButton("Add as a new take (undoable)", self)
        self.mode_take.setObjectName("import_mode_take")
        self.mode_take.setChecked(True)
        self.mode_document = QRadioButton("Open as a new document", self)
        self.mode_document.setObjectName("import_mode_document")
        self.mode_group = QButtonGroup(self)
        self.mode_group.addButton(self.mode_take)
        self.mode_group.addButton(self.mode_document)

        self.detected_label = QLabel(self)
        self.detected_label.setObjectName("import_detected")
        self.detected_label.setWordWrap(True)
        self.detected_label.setTextFormat(Qt.RichText)
        self.detected_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.detected_label.setMinimumHeight(60)
        self.detected_label.setAlignment(Qt.AlignTop | Qt.AlignLeft)
        detected_box = QGroupBox("Detected", self)
        v = QVBoxLayout(detected_box)
        v.addWidget(self.detected_label)

        self.error_label = QLabel(self)
        self.error_label.setObjectName("import_error")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel, self)
        self.buttons.button(QDialogButtonBox.Ok).setText("Import")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("File(s)", path_row)
        form.addRow("Format", self.format_combo)
        form.addRow("Units", self.units_combo)
        form.addRow("Keypoint order", self.order_combo)
        form.addRow("Frame rate", self.fps_spin)
        form.addRow("Single hand is", self.hands_combo)
        form.addRow("Result", self.mode_take)
        form.addRow("", self.mode_document)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(detected_box)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self.probe_timer = QTimer(self)
        self.probe_timer.setSingleShot(True)
        self.probe_timer.setInterval(PROBE_DELAY_MS)
        self.probe_timer.timeout.connect(self.probe)
        self.paths_edit.textChanged.connect(self._schedule_probe)
        self._show_detected()

    # --- form ---------------------------------------------------------------------------------
    def set_paths(self, *paths: str | os.PathLike) -> None:
        self.paths_edit.setText("; ".join(str(p) for p in paths))

    def set_option(self, name: str, value) -> None:
        """Set one importer option by name: format, units, order, hands (value None = from the file)."""
        c = {"format": self.format_combo, "units": self.units_combo, "order": self.order_combo,
             "hands": self.hands_combo}[name]
        i = c.findData(value)
        if i < 0:
            raise ValueError(f"{name} must be one of {[c.itemData(k) for k in range(c.count())]}; got {value!r}")
        c.setCurrentIndex(i)

    @property
    def mode(self) -> str:
        return "document" if self.mode_document.isChecked() else "take"

    def paths(self) -> tuple[Path, ...]:
        return tuple(user_path(p.strip()) for p in self.paths_edit.text().split(";") if p.strip())

    def request(self) -> ImportRequest:
        fps = self.fps_spin.value()
        return ImportRequest(self.paths(), format=self.format_combo.currentData(),
                             units=self.units_combo.currentData(), order=self.order_combo.currentData(),
                             fps=fps if fps > 0 else None, hands=self.hands_combo.currentData())

    def _browse(self) -> None:
        start = str(self.paths()[0].parent) if self.paths() else self.start_dir
        paths, _ = QFileDialog.getOpenFileNames(self, "Import motion", start, IMPORT_FILTER)
        if paths:
            self.set_paths(*paths)

    def _update_enabled(self) -> None:
        suffixes = {p.suffix.lower() for p in self.paths()}
        arrays = bool(suffixes & {".npz", ".npy", ".json"}) or not suffixes
        self.order_combo.setEnabled(arrays)
        self.hands_combo.setEnabled(arrays)
        self.fps_spin.setEnabled(arrays)

    # --- the probe ----------------------------------------------------------------------------
    def _schedule_probe(self, *args) -> None:
        self._update_enabled()
        self.probe_timer.start()

    def probe(self) -> bool:
        """Import the chosen file(s) with the form's options on a worker; the result (or the
        error) shows under Detected and is reused on accept. False when the form is not ready."""
        self.probe_timer.stop()
        if self.probing:  # one probe thread at a time: the newest form is probed when it ends
            self.probe_worker.cancel()
            self._probe_again = True
            self._show_detected(probing=True)
            return True
        try:
            request = self.request().check()
        except (ExchangeError, ValueError) as e:
            self.probed_request, self.probe_result = None, None
            self._show_detected(error=str(e) if self.paths() else "")
            return False
        self.probed_request, self.probe_result = request, None
        worker = GeneratorWorker(lambda: import_iter(request), parent=self)
        worker.sig_finished.connect(lambda item, w=worker: self._on_probe_done(w, item["result"]))
        worker.sig_errored.connect(lambda msg, w=worker: self._on_probe_done(w, msg))
        worker.sig_cancelled.connect(lambda w=worker: self._on_probe_done(w, None))
        self.probe_worker = worker
        self._workers.append(worker)
        self._show_detected(probing=True)
        worker.start()
        return True

    @property
    def probing(self) -> bool:
        return self.probe_worker is not None and self.probe_worker.is_running

    def _on_probe_done(self, worker: GeneratorWorker, outcome) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
        worker.deleteLater()
        if worker is not self.probe_worker:
            return  # abandoned (accepted or closed meanwhile)
        self.probe_worker = None
        if self._probe_again:
            self._probe_again = False
            self.probe()
            return
        if outcome is None:
            return
        self.probe_result = outcome
        self._show_detected()
        self.sig_probed.emit(outcome)

    def _show_detected(self, probing: bool = False, error: str = "") -> None:
        if probing:
            self.detected_label.setText(f'<span style="{NOTE_STYLE}">reading the file…</span>')
            return
        r = self.probe_result
        if isinstance(r, ImportResult):
            items = "".join(f"<li>{html.escape(n)}</li>" for n in r.notes)
            self.detected_label.setText(f"<b>{html.escape(r.summary())}</b><ul style='margin: 2px'>{items}</ul>")
        elif isinstance(r, str) or error:
            self.detected_label.setText(f'<span style="{ERROR_STYLE}">{html.escape(r if isinstance(r, str) else error)}</span>')
        else:
            self.detected_label.setText(f'<span style="{NOTE_STYLE}">Choose a file: {", ".join(IMPORT_SUFFIXES)}. '
                                        "What it holds is detected here before you import.</span>")

    # --- accept -------------------------------------------------------------------------------
    def accept(self) -> None:
        try:
            request = self.request().check()
        except (ExchangeError, ValueError) as e:
            self.error_label.setText(str(e))
            return
        self.error_label.clear()
        self.probe_timer.stop()
        outcome = None
        if request == self.probed_request and not self.probing:
            outcome = self.probe_result  # reuse the probe (ImportResult or its error)
        elif self.probe_worker is not None:
            self.probe_worker.cancel()
            self.probe_worker, self._probe_again = None, False
        super().accept()
        self.sig_import_requested.emit(request, self.mode, outcome)

    def open(self) -> None:
        """Show the dialog; a file chosen before is probed again (it may have changed)."""
        if self.paths():
            self._schedule_probe()
        super().open()

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel probes and wait for their threads (closing the window)."""
        self.probe_timer.stop()
        self.probe_worker, self._probe_again = None, False
        ok = True
        for w in list(self._workers):
            w.cancel()
            ok = w.wait(timeout_ms) and ok
        return ok


__all__ = ["QtFileJob", "QtExportDialog", "QtImportDialog"]
