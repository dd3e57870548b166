"""The main window: viewport in the centre, the timeline dock at the bottom, the prompt (Generate),
Dataset and Training docks tabbed on the right above the takes dock, File / Edit / Generate / View /
Playback menus, the undo stack, projects with autosave and crash recovery. Import (Ctrl+I) and
Export (Ctrl+E) open dialogs whose work runs on a worker thread, shown in the status bar. A model
the training panel activates reloads the Studio. Closing the window pauses a training run, cancels
running work and waits for its threads. View toggles (onion skin, wrist paths) persist in QSettings.

Widgets write user actions into the Document (edits as undoable commands through the window's
QUndoStack); the viewport, the timeline and the playback bar listen to it.
"""
from __future__ import annotations

import math
import os
import shutil
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QFrame, QHBoxLayout, QLabel, QMainWindow,
                               QMessageBox, QScrollArea, QStyle, QToolButton, QVBoxLayout, QWidget)

import torch

from engine.api import Studio
from engine.hands.skeleton import KEYPOINT_NAMES
from engine.threads import KINEMATICS_THREADS
from engine.motion.clip import Clip
from engine.registry import Registry, RegistryError
from hand_studio._qt.dataset_panel import QtDatasetPanel
from hand_studio._qt.dialogs import QtExportDialog, QtFileJob, QtImportDialog
from hand_studio._qt.prompt_panel import QtPromptPanel
from hand_studio._qt.takes_panel import QtTakesPanel
from hand_studio._qt.training_panel import QtTrainingPanel
from hand_studio._qt.timeline import (CONTACT_COLOR, GENERATED_COLOR, KEYED_COLOR,
                                      QtTimelineWidget)
from hand_studio._qt.undo import QtUndoStack
from hand_studio._qt.viewport import CAMERA_PRESETS, QtViewport
from hand_studio.model import commands as C
from hand_studio.model import project as P
from hand_studio.model.document import Document
from hand_studio.model.events import Event
from hand_studio.model.exchange import (ExchangeError, ExportRequest, ImportRequest, ImportResult, export_iter,
                                        import_iter)

ORGANISATION = "HandStudio"
APPLICATION = "Hand Studio"
MAX_RECENT = 8
CLIP_FILTER = "Hand Studio clips (*.npz);;All files (*)"
PROJECT_FILTER = "Hand Studio projects (*.handproj)"
AUTOSAVE_INTERVAL_S = 60.0
ONION_SIDE_FRAMES = (1, 2, 3, 5)  # View > Onion skin frames: ghosts each side of the playhead
ONION_STEPS = (1, 2, 4, 8)  # ... and the frames between ghosts
DEFAULT_ONION_SIDE, DEFAULT_ONION_STEP = 3, 1
STUDIO_RETRY_MS = 250  # a model activated during a generation is loaded when it ends


def model_summary(studio: Studio) -> str:
    """The status bar's model text: each installed kind, with its registry name when the
    registry's active model of that kind is the one loaded (``diffusion (my-hands), clutch``)."""
    if not studio.models:
        return "no generation model installed"
    try:
        registry = Registry()
        active = {kind: registry.active(kind) for kind in studio.models}
    except (RegistryError, OSError):
        active = {}
    parts = []
    for kind, folder in studio.models.items():
        entry = active.get(kind)
        named = entry is not None and Path(entry.path).absolute() == Path(folder).absolute()
        parts.append(f"{kind} ({entry.name})" if named else kind)
    return ", ".join(parts)


def _swatch(rgb, text: str) -> str:
    r, g, b = rgb
    return f'<span style="color: rgb({r},{g},{b})">&#9632;</span>&nbsp;{text}'


class QtPlaybackBar(QWidget):
    """Play/pause, loop, the frame label and the timeline legend. Plays in real time: the playhead
    follows the wall clock from where Play (or the last scrub) left it, so when drawing cannot keep
    up frames are skipped (counted in ``dropped_frames``) instead of the clip slowing down.
    (Scrubbing is the timeline's playhead.)"""

    sig_playing_changed = Signal(bool)
    """Playback started (True) or stopped (False)."""
    sig_loop_changed = Signal(bool)
    """Looping was switched on (True) or off (False: playback stops on the last frame)."""

    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.play_button = QToolButton(self)
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.toggled.connect(self.set_playing)
        self.loop_button = QToolButton(self)
        self.loop_button.setObjectName("loop_button")
        self.loop_button.setText("Loop")
        self.loop_button.setCheckable(True)
        self.loop_button.setChecked(True)
        self.loop_button.setToolTip("Loop playback (off: stop on the last frame)")
        self.loop_button.toggled.connect(self.set_loop)
        self.label = QLabel(self)
        self.label.setObjectName("frame_label")
        self.label.setMinimumWidth(150)
        self.legend = QLabel("   ".join([_swatch(KEYED_COLOR, "keyed frame"),
                                         _swatch(GENERATED_COLOR, "generated"),
                                         _swatch(CONTACT_COLOR, "hands touch")]), self)
        self.legend.setToolTip("Click a key to select it, drag to move it; drag on empty space to "
                               "box-select; Ctrl+drag to set the interval; drag the red playhead to scrub")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.play_button)
        layout.addWidget(self.loop_button)
        layout.addWidget(self.label)
        layout.addStretch(1)
        layout.addWidget(self.legend)

        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.PreciseTimer)
        self.timer.timeout.connect(self._on_tick)
        self.clock = QElapsedTimer()
        self._anchor = 0  # the frame the clock started from
        self._last = 0  # the frame this bar last set (anything else means the user moved the playhead)
        self._last_due = 0  # the last due frame, not wrapped
        self.dropped_frames = 0
        """Frames skipped since Play because drawing fell behind the clock."""
        self.frames_advanced = 0
        """Frames the playhead moved since Play (shown or skipped)."""
        document.events.clip.connect(self._on_clip_change)
        document.events.frame.connect(self._on_frame_change)
        self._on_clip_change()
        self._update_icon()

    # --- model -> widget ------------------------------------------------------------------
    def _on_clip_change(self, event: Event | None = None) -> None:
        # two ticks per clip frame, so a frame boundary is never missed by a whole frame
        self.timer.setInterval(max(1, math.floor(500.0 / self.document.fps)))
        if self.playing:  # another take or document: go on from its playhead at its rate
            self._start_clock()
        self._on_frame_change()

    def _on_frame_change(self, event: Event | None = None) -> None:
        f = self.document.frame
        doc = self.document
        self.label.setText(f"frame {f} / {doc.num_frames - 1}   {f / doc.fps:5.2f} s")

    # --- widget -> model ------------------------------------------------------------------
    def _start_clock(self) -> None:
        self._anchor = self._last = self._last_due = self.document.frame
        if self.clock.isValid():
            self.clock.restart()
        else:
            self.clock.start()

    def _on_tick(self) -> None:
        doc = self.document
        n = doc.num_frames
        if doc.frame != self._last:  # scrubbed while playing: go on from there
            self._start_clock()
        due = self._anchor + int(self.clock.nsecsElapsed() * 1e-9 * doc.fps)
        at_end = not self.loop and due >= n - 1
        if at_end:
            due = n - 1
        if due > self._last_due:
            self.frames_advanced += due - self._last_due
            self.dropped_frames += due - self._last_due - 1
            self._last_due = due
        self._last = due % n
        doc.frame = self._last
        if at_end:
            self.set_playing(False)

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def set_playing(self, playing: bool) -> None:
        if playing == self.playing:
            return
        doc = self.document
        if playing and doc.num_frames > 1:
            if not self.loop and doc.frame == doc.num_frames - 1:
                doc.frame = 0  # at the end without looping: play from the start
            self.dropped_frames = self.frames_advanced = 0
            self._start_clock()
            self.timer.start()
        else:
            self.timer.stop()
        self.play_button.blockSignals(True)
        self.play_button.setChecked(self.playing)
        self.play_button.blockSignals(False)
        self._update_icon()
        self.sig_playing_changed.emit(self.playing)

    def toggle_playing(self) -> None:
        self.set_playing(not self.playing)

    @property
    def loop(self) -> bool:
        return self.loop_button.isChecked()

    def set_loop(self, loop: bool) -> None:
        """Loop (True) or stop on the last frame (False)."""
        loop = bool(loop)
        if loop != self.loop:
            self.loop_button.setChecked(loop)  # emits toggled -> here again, then the signal
            return
        self.sig_loop_changed.emit(loop)

    def _update_icon(self) -> None:
        icon = QStyle.SP_MediaPause if self.playing else QStyle.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))

    def close_listeners(self) -> None:
        self.timer.stop()
        self.document.events.clip.disconnect(self._on_clip_change)
        self.document.events.frame.disconnect(self._on_frame_change)


class MainWindow(QMainWindow):
    """Hand Studio's main window for one Document (one project)."""

    sig_clip_opened = Signal(str)
    """A clip file was opened (its path)."""
    sig_project_saved = Signal(str)
    """The project was saved (its folder)."""
    sig_export_finished = Signal(list)
    """An export wrote its files (their paths, str)."""
    sig_import_finished = Signal(str)
    """An import became a take or a document (the take's name)."""
    sig_job_failed = Signal(str)
    """An import or export failed (the message shown)."""
    sig_job_cancelled = Signal(str)
    """An import or export was cancelled ('import' or 'export'); nothing changed."""

    def __init__(self, studio: Studio, document: Document | None = None,
                 settings: QSettings | None = None, parent: QWidget | None = None,
                 autosave_interval_s: float | None = None, recovery_dir: str | os.PathLike | None = None):
        super().__init__(parent)
        # Torch work on the GUI thread (posing the hands) with one intra-op thread: with two,
        # OpenMP workers spin on a core another process holds and a 3 ms pose takes 140 ms
        # (engine/threads.py). The count is per thread; worker threads set their own.
        torch.set_num_threads(KINEMATICS_THREADS)
        self.studio = studio
        self.document = document if document is not None else Document()
        self.settings = settings if settings is not None else QSettings(ORGANISATION, APPLICATION)
        self.setWindowTitle(APPLICATION)
        self.setObjectName("MainWindow")
        self.undo_stack = QtUndoStack(self)
        self._closed = False
        self._recovered_unsaved = False  # a recovered autosave is unsaved work the stack cannot see

        self.viewport = QtViewport(self.document, studio.hands, parent=self, push=self.push)
        self.setCentralWidget(self.viewport)

        self.playback = QtPlaybackBar(self.document, self)
        self.timeline = QtTimelineWidget(self.document, self.undo_stack, self)
        self.timeline.sig_message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        dock_body = QWidget(self)
        layout = QVBoxLayout(dock_body)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.playback)
        layout.addWidget(self.timeline, 1)
        self.timeline_dock = QDockWidget("Timeline", self)
        self.timeline_dock.setObjectName("timeline_dock")
        self.timeline_dock.setWidget(dock_body)
        self.timeline_dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(Qt.BottomDockWidgetArea, self.timeline_dock)

        self.prompt_panel = QtPromptPanel(self.document, studio, self.push, self.viewport, self)
        self.prompt_panel.sig_message.connect(self._show_prompt_message)
        self.prompt_scroll = self._scroll(self.prompt_panel)  # taller than small windows: scroll, never squeeze
        self.prompt_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.prompt_scroll.setMinimumWidth(self.prompt_panel.sizeHint().width() + 16)
        self.prompt_dock = self._dock("Generate", "prompt_dock", self.prompt_scroll, Qt.RightDockWidgetArea)
        self._pending_studio: Studio | None = None  # activated while the prompt panel was busy
        self.takes_panel = QtTakesPanel(self.document, self.push, self)
        self.takes_panel.sig_message.connect(lambda m: self.statusBar().showMessage(m, 6000))
        self.job = QtFileJob(self)
        self.job.setObjectName("file_job")
        self.job.sig_finished.connect(self._on_job_finished)
        self.job.sig_failed.connect(self._on_job_failed)
        self.job.sig_cancelled.connect(self._on_job_cancelled)
        self.export_dialog: QtExportDialog | None = None
        self.import_dialog: QtImportDialog | None = None
        self.last_job_error = ""
        self._compare_shown = None  # the clip last handed to the viewport as the ghost
        self.takes_dock = self._dock("Takes", "takes_dock", self.takes_panel, Qt.RightDockWidgetArea)
        self.resizeDocks([self.prompt_dock, self.takes_dock], [700, 170], Qt.Vertical)

        self.dataset_panel = QtDatasetPanel(self.studio, parent=self)
        self.dataset_panel.sig_message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.dataset_dock = self._dock("Dataset", "dataset_dock", self._scroll(self.dataset_panel),
                                       Qt.RightDockWidgetArea)
        self.training_panel = QtTrainingPanel(parent=self)
        self.training_panel.sig_message.connect(lambda m: self.statusBar().showMessage(m, 8000))
        self.training_dock = self._dock("Training", "training_dock", self._scroll(self.training_panel),
                                        Qt.RightDockWidgetArea)
        self.dataset_panel.sig_dataset_saved.connect(self.training_panel.set_data_folder)
        self.training_panel.sig_model_activated.connect(self._on_model_activated)
        for dock in (self.dataset_dock, self.training_dock):  # tools: closed here, View brings them back
            dock.setFeatures(dock.features() | QDockWidget.DockWidgetClosable)
        self.tabifyDockWidget(self.prompt_dock, self.dataset_dock)
        self.tabifyDockWidget(self.dataset_dock, self.training_dock)
        self.prompt_dock.raise_()

        if autosave_interval_s is None:
            autosave_interval_s = float(self.settings.value("autosave/interval_s", AUTOSAVE_INTERVAL_S))
        self.autosaver = P.Autosaver(self.document, autosave_interval_s, recovery_dir)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(max(1, round(1000 * autosave_interval_s)))
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start()

        self._build_menus()
        self.status_label = QLabel(self)
        self.status_label.setObjectName("status_label")
        self._update_status_label()
        self.viewport.sig_joint_picked.connect(self._on_joint_picked)
        self.statusBar().addPermanentWidget(self.job)
        self.statusBar().addPermanentWidget(self.status_label)
        self.document.events.clip.connect(self._on_clip_change)
        self.document.events.compare.connect(self._on_compare_change)
        self.undo_stack.cleanChanged.connect(self._update_title)
        self._on_clip_change()
        self._restore_settings()

    def _scroll(self, panel: QWidget) -> QScrollArea:
        scroll = QScrollArea(self)
        scroll.setWidget(panel)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        return scroll

    def _dock(self, title: str, name: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        return dock

    # --- menus --------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.action_new = self._action(file_menu, "&New project", self.new_project, QKeySequence.New)
        self.action_open_project = self._action(file_menu, "&Open project…", self._open_project_dialog,
                                                QKeySequence.Open)
        self.action_open = self._action(file_menu, "Open &clip…", self._open_dialog, "Ctrl+Shift+O")
        self.action_import = self._action(file_menu, "&Import…", self.show_import_dialog, "Ctrl+I")
        self.action_import.setToolTip("Import motion (npz, npy, json, BVH, FBX) as a new take or document")
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        self.action_save_project = self._action(file_menu, "&Save project", self.save,
                                                QKeySequence.Save)
        self.action_save_project_as = self._action(file_menu, "Save project &as…", self.save_as,
                                                   QKeySequence.SaveAs)
        self.action_export = self._action(file_menu, "&Export…", self.show_export_dialog, "Ctrl+E")
        self.action_export.setToolTip("Export the current take as FBX, BVH, glTF or a clip file")
        file_menu.addSeparator()
        self.action_quit = self._action(file_menu, "&Quit", self.close, QKeySequence.Quit)
        self.action_quit.setMenuRole(QAction.QuitRole)

        edit_menu = self.menuBar().addMenu("&Edit")
        self.action_undo = self.undo_stack.createUndoAction(self, "&Undo")
        self.action_undo.setShortcut(QKeySequence.Undo)
        self.action_redo = self.undo_stack.createRedoAction(self, "&Redo")
        self.action_redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        edit_menu.addAction(self.action_undo)
        edit_menu.addAction(self.action_redo)
        edit_menu.addSeparator()
        tl = self.timeline
        for act in (tl.action_key, tl.action_delete, tl.action_duplicate, tl.action_select_all):
            edit_menu.addAction(act)
        edit_menu.addSeparator()
        self.lock_actions: dict[str, QAction] = {}
        for hand in ("left", "right"):
            act = self._action(edit_menu, f"Lock {hand} hand",
                               lambda checked=False, h=hand: self.set_hand_locked(h, checked))
            act.setCheckable(True)
            act.setToolTip(f"Keep the {hand} hand exactly when regenerating")
            self.lock_actions[hand] = act
        self.action_interval_from_keys = self._action(edit_menu, "Set interval from selected keys",
                                                      self.interval_from_selection, "I")
        self.action_clear_interval = self._action(edit_menu, "Clear interval", self.clear_interval,
                                                  "Shift+I")
        self.document.events.constraints.connect(self._on_constraints_change)

        gen_menu = self.menuBar().addMenu("&Generate")
        self.gen_menu = gen_menu
        self.action_generate = self._action(gen_menu, "&Generate take", lambda: self.prompt_panel.generate(),
                                            "Ctrl+Return")
        self.action_inbetween = self._action(gen_menu, "&In-between selected interval", self.inbetween,
                                             "Ctrl+B")
        self.regenerate_actions: dict[str, QAction] = {}
        for keep, other in (("left", "right"), ("right", "left")):
            self.regenerate_actions[other] = self._action(
                gen_menu, f"Lock {keep} hand and regenerate the {other}",
                lambda checked=False, k=keep: self.regenerate_other(k))
        self.pin_actions: dict[str, QAction] = {}
        for hand in ("left", "right"):
            self.pin_actions[hand] = self._action(gen_menu, f"Pin {hand} wrist path and regenerate",
                                                  lambda checked=False, h=hand: self.pin_wrist_and_regenerate(h))
        self.action_extend = self._action(gen_menu, "&Extend take", self.extend_take, "Ctrl+Shift+Return")
        self.action_describe = self._action(gen_menu, "&Describe take (into the prompt)",
                                            lambda: self.prompt_panel.describe_take(), "Ctrl+Shift+D")
        gen_menu.addSeparator()
        self.action_cancel_generation = self._action(gen_menu, "&Cancel generation",
                                                     lambda: self.prompt_panel.cancel(), "Esc")
        self.action_reroll = self._action(gen_menu, "&Re-roll seed", lambda: self.prompt_panel.reroll(), "Ctrl+R")
        self._update_generate_actions()

        view_menu = self.menuBar().addMenu("&View")
        group = QActionGroup(self)
        self.camera_actions: dict[str, QAction] = {}
        for i, name in enumerate(CAMERA_PRESETS):
            act = self._action(view_menu, name.replace("_", " ").capitalize() + " camera",
                               lambda checked=False, n=name: self.viewport.set_camera_preset(n),
                               QKeySequence(f"Ctrl+{i + 1}"))
            act.setCheckable(True)
            group.addAction(act)
            self.camera_actions[name] = act
        self.camera_actions[self.viewport.camera_preset].setChecked(True)
        self.viewport.sig_camera_preset_changed.connect(lambda n: self.camera_actions[n].setChecked(True))
        self.action_frame = self._action(view_menu, "&Frame hands", lambda: self.viewport.frame_hands(),
                                         QKeySequence("F"))
        view_menu.addSeparator()
        self.action_skeleton = self._action(view_menu, "Show &skeleton", self._set_skeleton,
                                            QKeySequence("Ctrl+K"))
        self.action_skeleton.setCheckable(True)
        self.action_stage = self._action(view_menu, "Show &grid and axes", self._set_stage,
                                         QKeySequence("Ctrl+G"))
        self.action_stage.setCheckable(True)
        self.action_stage.setChecked(True)
        view_menu.addSeparator()
        self._build_overlay_menu(view_menu)
        view_menu.addSeparator()
        self.action_show_dataset = self._action(view_menu, "&Dataset…", lambda: self.show_dock(self.dataset_dock))
        self.action_show_dataset.setToolTip("Import a folder of mocap into a reviewed, captioned training dataset")
        self.action_show_training = self._action(view_menu, "&Training…", lambda: self.show_dock(self.training_dock))
        self.action_show_training.setToolTip("Fine-tune or train a model on a dataset, evaluate it and use it")

        play_menu = self.menuBar().addMenu("&Playback")
        self.action_play = self._action(play_menu, "&Play / pause", self.playback.toggle_playing,
                                        QKeySequence(Qt.Key_Space))
        self.action_loop = self._action(play_menu, "L&oop", self.playback.set_loop)
        self.action_loop.setCheckable(True)
        self.action_loop.setChecked(self.playback.loop)
        self.playback.sig_loop_changed.connect(self.action_loop.setChecked)
        doc = self.document
        self.action_next = self._action(play_menu, "&Next frame", lambda: doc.step(1, loop=False),
                                        QKeySequence(Qt.Key_Right))
        self.action_previous = self._action(play_menu, "P&revious frame", lambda: doc.step(-1, loop=False),
                                            QKeySequence(Qt.Key_Left))
        self.action_first = self._action(play_menu, "&First frame", lambda: setattr(doc, "frame", 0),
                                         QKeySequence(Qt.Key_Home))
        self.action_last = self._action(play_menu, "&Last frame",
                                        lambda: setattr(doc, "frame", doc.num_frames - 1),
                                        QKeySequence(Qt.Key_End))
        self._update_recent_menu()

    def _build_overlay_menu(self, view_menu) -> None:
        """Onion skin and wrist paths: checkable actions that follow the viewport's signals, and
        the window's QSettings (``view/...``), restored here."""
        vp = self.viewport
        self.action_onion = self._action(view_menu, "Show &onion skin", vp.set_onion_skin_visible, "O")
        self.action_onion.setCheckable(True)
        self.action_onion.setToolTip("Ghosts of the hands before (red) and after (green) the playhead (O)")
        self.action_onion_bones = self._action(
            view_menu, "Onion skin as &bones", lambda checked: self.set_onion_skin_style("skeleton" if checked else "mesh"))
        self.action_onion_bones.setCheckable(True)
        self.action_onion_bones.setToolTip("Draw the ghosts as bones instead of translucent hands (cheaper)")
        self.onion_frames_menu = view_menu.addMenu("Onion skin &frames")
        side_group, step_group = QActionGroup(self), QActionGroup(self)
        self.onion_side_actions: dict[int, QAction] = {}
        for n in ONION_SIDE_FRAMES:
            act = self._action(self.onion_frames_menu, f"{n} frame{'s' if n > 1 else ''} each side",
                               lambda checked=False, n=n: self.set_onion_skin_range(side=n))
            act.setCheckable(True)
            side_group.addAction(act)
            self.onion_side_actions[n] = act
        self.onion_frames_menu.addSeparator()
        self.onion_step_actions: dict[int, QAction] = {}
        for n in ONION_STEPS:
            act = self._action(self.onion_frames_menu, "Every frame" if n == 1 else f"Every {n} frames",
                               lambda checked=False, n=n: self.set_onion_skin_range(step=n))
            act.setCheckable(True)
            step_group.addAction(act)
            self.onion_step_actions[n] = act
        self.action_wrist_paths = self._action(view_menu, "Show wrist &paths", vp.set_wrist_paths_visible, "P")
        self.action_wrist_paths.setCheckable(True)
        self.action_wrist_paths.setToolTip("Both wrists' motion paths with key and playhead markers (P)")
        self.path_edit_actions: dict[str, QAction] = {}
        for hand, key in (("left", "W"), ("right", "Shift+W")):
            act = self._action(view_menu, f"Edit &{hand} wrist path",
                               lambda checked, h=hand: self.set_path_edit(h, checked), key)
            act.setCheckable(True)
            act.setToolTip(f"Drag the {hand} wrist path's points in the viewport (neighbours follow); "
                           f"Shift+drag draws a new path ({key})")
            self.path_edit_actions[hand] = act
        vp.sig_onion_skin_toggled.connect(self._on_onion_skin_toggled)
        vp.sig_wrist_paths_toggled.connect(self._on_wrist_paths_toggled)
        vp.sig_path_edit_changed.connect(self._on_path_edit_changed)
        vp.sig_wrist_path_edited.connect(self._on_wrist_path_edited)

        st = self.settings
        side = int(st.value("view/onion_skin_frames", DEFAULT_ONION_SIDE, type=int))
        step = int(st.value("view/onion_skin_step", DEFAULT_ONION_STEP, type=int))
        style = str(st.value("view/onion_skin_style", "mesh"))
        self.set_onion_skin_range(side=side if side in ONION_SIDE_FRAMES else DEFAULT_ONION_SIDE,
                                  step=step if step in ONION_STEPS else DEFAULT_ONION_STEP)
        self.set_onion_skin_style(style if style in ("mesh", "skeleton") else "mesh")
        vp.set_onion_skin_visible(st.value("view/onion_skin", False, type=bool))
        vp.set_wrist_paths_visible(st.value("view/wrist_paths", False, type=bool))
        self.action_onion.setChecked(vp.onion_skin_visible)
        self.action_wrist_paths.setChecked(vp.wrist_paths_visible)

    def set_onion_skin_range(self, side: int | None = None, step: int | None = None) -> None:
        """Ghosts on each side of the playhead and the frames between them (the View menu's choices)."""
        onion = self.viewport.onion_skin
        self.viewport.set_onion_skin_range(before=side, after=side, step=step)
        if onion.before in self.onion_side_actions:
            self.onion_side_actions[onion.before].setChecked(True)
        if onion.step in self.onion_step_actions:
            self.onion_step_actions[onion.step].setChecked(True)
        self.settings.setValue("view/onion_skin_frames", onion.before)
        self.settings.setValue("view/onion_skin_step", onion.step)

    def set_onion_skin_style(self, style: str) -> None:
        """'mesh' or 'skeleton' (bones)."""
        self.viewport.set_onion_skin_style(style)
        self.action_onion_bones.setChecked(style == "skeleton")
        self.settings.setValue("view/onion_skin_style", style)

    def _on_onion_skin_toggled(self, visible: bool) -> None:
        self.action_onion.setChecked(visible)
        self.settings.setValue("view/onion_skin", visible)

    def _on_wrist_paths_toggled(self, visible: bool) -> None:
        self.action_wrist_paths.setChecked(visible)
        self.settings.setValue("view/wrist_paths", visible)

    def set_path_edit(self, hand: str, on: bool) -> None:
        """The Edit wrist path actions: edit ``hand``'s path in the viewport, or stop editing it."""
        if on:
            self.viewport.set_path_edit(hand)
        elif self.viewport.path_edit == hand:
            self.viewport.set_path_edit(None)

    def _on_path_edit_changed(self, hand: str) -> None:
        for h, act in self.path_edit_actions.items():
            act.blockSignals(True)
            act.setChecked(h == hand)
            act.blockSignals(False)
        if hand:
            self.statusBar().showMessage(f"Editing the {hand} wrist path: drag a point to move it, "
                                         "Shift+drag to draw a new path", 8000)

    def _on_wrist_path_edited(self, hand: str) -> None:
        """A path edit pinned ``hand``'s wrist: the next Generate keeps the wrist on it."""
        check = self.prompt_panel.pin_checks[hand]
        if hand not in self.document.locked_hands:
            check.setChecked(True)
        n = len(self.document.wrist_path(hand))
        self.statusBar().showMessage(f"Pinned the {hand} wrist path ({n} frames): Generate keeps the "
                                     f"{hand} wrist on it", 8000)

    def show_dock(self, dock: QDockWidget) -> None:
        """Show a dock (closed or floating), bring its tab to the front and focus it."""
        dock.show()
        dock.raise_()
        dock.widget().setFocus()

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    # --- generation (the prompt panel runs it; these set its options first) ----------------
    def _generating(self) -> bool:
        """A generation runs: a Generate-menu action is refused before it changes any option or lock."""
        if self.prompt_panel.running:
            self.prompt_panel.sig_message.emit("A generation is already running (Cancel it first)")
            return True
        return False

    def inbetween(self) -> bool:
        """Regenerate the selected interval; keys and the rest of the take stay exact."""
        if self._generating():
            return False
        self.prompt_panel.inbetween_check.setChecked(True)
        self.prompt_panel.extend_check.setChecked(False)
        return self.prompt_panel.generate()

    def regenerate_other(self, keep: str) -> bool:
        """Lock ``keep`` (unlocking the other hand) and regenerate the other hand."""
        if self._generating():
            return False
        other = "right" if keep == "left" else "left"
        if other in self.document.locked_hands:
            self.set_hand_locked(other, False)
        if keep not in self.document.locked_hands and not self.set_hand_locked(keep, True):
            return False
        self.prompt_panel.extend_check.setChecked(False)
        self.prompt_panel.pin_checks[keep].setChecked(False)
        return self.prompt_panel.generate()

    def pin_wrist_and_regenerate(self, hand: str) -> bool:
        """Pin ``hand``'s wrist to the current take (over the interval) and its pinned points."""
        if self._generating():
            return False
        self.prompt_panel.pin_checks[hand].setChecked(True)
        self.prompt_panel.extend_check.setChecked(False)
        return self.prompt_panel.generate()

    def extend_take(self) -> bool:
        if self._generating():
            return False
        self.prompt_panel.extend_check.setChecked(True)
        self.prompt_panel.inbetween_check.setChecked(False)
        for c in self.prompt_panel.pin_checks.values():
            c.setChecked(False)
        return self.prompt_panel.generate()

    def _update_generate_actions(self) -> None:
        """Enable the Generate menu by what the prompt panel (its Studio) can do."""
        pp = self.prompt_panel
        for act in (self.action_generate, self.action_inbetween, *self.regenerate_actions.values(),
                    *self.pin_actions.values(), self.action_extend):
            act.setEnabled(pp.has_model)
        self.gen_menu.setToolTipsVisible(not pp.has_model)
        self.action_generate.setToolTip("Generate a new take" if pp.has_model else "No generation model is installed")
        self.action_describe.setEnabled(pp.has_captioner)
        self.action_describe.setToolTip(pp.describe_button.toolTip())

    def _show_prompt_message(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)

    def _set_skeleton(self, checked: bool) -> None:
        self.viewport.hands_visual.skeleton_visible = checked

    def _set_stage(self, checked: bool) -> None:
        self.viewport.stage.visible = checked

    # --- joint picking ------------------------------------------------------------------
    def _on_joint_picked(self, hand: str, joint: int) -> None:
        """The viewport picked a keypoint ('left'/'right', 0..20) or cleared the pick ('', -1)."""
        if joint < 0:
            if self.statusBar().currentMessage().startswith("Picked "):
                self.statusBar().clearMessage()
            return
        self.statusBar().showMessage(f"Picked {hand} {KEYPOINT_NAMES[joint]}")

    # --- the Studio (models) ---------------------------------------------------------------
    def _update_status_label(self) -> None:
        studio = self.studio
        hands = studio.hands.info()
        self.status_label.setText(f"device: {studio.device}   hands: {hands['backend']} "
                                  f"({hands['vertices'][0]} vertices)   model: {model_summary(studio)}")

    def _on_model_activated(self, name: str) -> None:
        self.reload_studio(name)

    def reload_studio(self, name: str = "") -> bool:
        """Load the Studio again (``Studio.load`` takes the registry's active models) on the same
        device and hands, and hand it to the prompt and dataset panels. While a generation or a
        caption runs the swap waits for it; a model that cannot load changes nothing."""
        old = self.studio
        try:
            studio = Studio.load(device=old.device, hand_backend=old.hand_backend, mano_dir=old.mano_dir)
        except (OSError, ValueError, RuntimeError) as e:  # a registered folder gone missing, a bad models.json
            self.show_error("Cannot load the model", str(e))
            return False
        self._pending_studio = studio
        self._apply_pending_studio()
        if self._pending_studio is not None:
            what = f"{name} is" if name else "The new model is"
            self.statusBar().showMessage(f"{what} used when the running generation ends", 8000)
        return True

    def _apply_pending_studio(self) -> None:
        studio = self._pending_studio
        if studio is None or self._closed:
            return
        pp = self.prompt_panel
        if pp.running or pp.captioning:
            QTimer.singleShot(STUDIO_RETRY_MS, self._apply_pending_studio)
            return
        self._pending_studio = None
        self.studio = studio
        self.dataset_panel.studio = studio
        self._replace_prompt_panel(studio)
        self._update_generate_actions()
        self._update_status_label()
        self.statusBar().showMessage(f"Models: {model_summary(studio)}", 8000)

    def _replace_prompt_panel(self, studio: Studio) -> None:
        """A new prompt panel for ``studio`` in the Generate dock, keeping the old one's settings."""
        old = self.prompt_scroll.takeWidget()
        new = QtPromptPanel(self.document, studio, self.push, self.viewport, self)
        for name in ("seed_spin", "steps_spin", "guidance_spin", "frames_spin"):
            getattr(new, name).setValue(getattr(old, name).value())
        new.set_context_frames(old.context_wanted)
        for name in ("keep_keys_check", "inbetween_check", "extend_check", "close_pinches_check", "split_hands_check",
                     "joint_limits_check"):
            getattr(new, name).setChecked(getattr(old, name).isChecked())
        for hand, check in old.pin_checks.items():
            new.pin_checks[hand].setChecked(check.isChecked())
        if new.model_combo.findText(old.model_combo.currentText()) >= 0:
            new.model_combo.setCurrentText(old.model_combo.currentText())
        old.shutdown()
        old.sig_message.disconnect(self._show_prompt_message)
        old.deleteLater()
        new.sig_message.connect(self._show_prompt_message)
        self.prompt_scroll.setWidget(new)
        self.prompt_panel = new

    # --- edits --------------------------------------------------------------------------
    def push(self, make_command) -> bool:
        """Push a model command (or a function making one); a refused edit goes to the status bar."""
        return self.timeline.push(make_command)

    def set_hand_locked(self, hand: str, locked: bool) -> bool:
        ok = self.push(lambda: C.SetHandLocked(self.document, hand, locked))
        self._on_constraints_change()
        return ok

    def interval_from_selection(self) -> bool:
        frames = [f for _, f in self.document.selection]
        if not frames:
            self.statusBar().showMessage("Select keys first: the interval spans them", 6000)
            return False
        return self.push(lambda: C.SetInterval(self.document, (min(frames), max(frames))))

    def clear_interval(self) -> bool:
        if self.document.interval is None:
            return False
        return self.push(lambda: C.SetInterval(self.document, None))

    def _on_constraints_change(self, event: Event | None = None) -> None:
        for hand, act in self.lock_actions.items():
            act.blockSignals(True)
            act.setChecked(hand in self.document.locked_hands)
            act.blockSignals(False)

    # --- clips --------------------------------------------------------------------------
    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open clip", self._last_dir(), CLIP_FILTER)
        if path:
            self.open_clip(path)

    def open_clip(self, path: str | os.PathLike) -> bool:
        """Start a new document from a clip file. A ``.npz`` clip (bounded, fast to read) opens at
        once: on failure the engine's message is shown and nothing changes; unsaved changes are
        offered for saving first. Other formats go through the importer on a worker thread
        (``import_file``); then True means the import started."""
        path = Path(path)
        if path.suffix.lower() != ".npz":
            return self.import_file(path, mode="document")
        try:
            clip = Clip.load(path)
        except (ValueError, OSError) as e:  # ClipError is a ValueError
            self.show_error("Cannot open clip", str(e))
            return False
        if not self.maybe_save():
            return False
        self.playback.set_playing(False)
        self._replace_document(Document(clip, path))
        self._add_recent(path)
        self.statusBar().showMessage(f"Opened {path.name}: {clip.num_frames} frames at {clip.fps:g} fps", 5000)
        self.sig_clip_opened.emit(str(path))
        return True

    def save_clip(self, path: str | os.PathLike) -> bool:
        """Write the current take's clip at once (format by extension; scripts and tests). The
        Export dialog is the UI's way: it runs on a worker thread."""
        path = Path(path)
        try:
            saved = self.document.clip.save(path)
        except (ValueError, OSError) as e:
            self.show_error("Cannot save clip", str(e))
            return False
        if self.document.project_path is None:
            self.document.path = Path(saved)
        self._add_recent(Path(saved))
        self._update_title()
        self.statusBar().showMessage(f"Saved {Path(saved).name}", 5000)
        return True

    # --- import / export (dialogs; the work runs on the file job's worker) ----------------
    def show_export_dialog(self) -> QtExportDialog:
        """Open the export dialog (window-modal, non-blocking) filled from the current take."""
        if self.export_dialog is None:
            self.export_dialog = QtExportDialog(self.document, self.settings, parent=self)
            self.export_dialog.sig_export_requested.connect(self.start_export)
        else:
            self.export_dialog.reset()
        self.export_dialog.open()
        return self.export_dialog

    def show_import_dialog(self) -> QtImportDialog:
        """Open the import dialog (window-modal, non-blocking)."""
        if self.import_dialog is None:
            self.import_dialog = QtImportDialog(self._last_dir(), parent=self)
            self.import_dialog.sig_import_requested.connect(self.start_import)
        self.import_dialog.open()
        return self.import_dialog

    def _busy(self) -> bool:
        if self.job.running:
            self.statusBar().showMessage(f"An {self.job.kind} is running: wait for it or cancel it first", 6000)
            return True
        return False

    def start_export(self, request: ExportRequest) -> bool:
        """Export the current take (as it is now) on a worker; the files appear when it is done,
        nothing is written if it fails or is cancelled."""
        if self._busy():
            return False
        clip = self.document.clip
        try:
            request.check(clip)
        except (ExchangeError, ValueError) as e:
            return self._job_error("export", str(e))
        snapshot = clip.copy()  # edits during the export do not reach the worker
        return self.job.start("export", lambda: export_iter(snapshot, request),
                              f"Exporting {', '.join(p.name for p in request.output_files())}",
                              context=request, cancel_tip="Stop the export; nothing is written")

    def import_file(self, path: str | os.PathLike, mode: str = "take", **options) -> bool:
        """Import one file with the importer's options (auto-detected by default) on a worker."""
        return self.start_import(ImportRequest((Path(path),), **options), mode)

    def start_import(self, request: ImportRequest, mode: str = "take", outcome=None) -> bool:
        """Import on a worker (or use a probe's ``outcome``: an ImportResult or an error message),
        then add the clip as a new take (undoable) or open it as a new document."""
        if mode not in QtImportDialog.MODES:
            raise ValueError(f"import mode must be one of {QtImportDialog.MODES}; got {mode!r}")
        if isinstance(outcome, ImportResult):
            return self.apply_import(outcome, mode)
        if isinstance(outcome, str):
            return self._job_error("import", outcome, request)
        if self._busy():
            return False
        try:
            request.check()
        except (ExchangeError, ValueError) as e:
            return self._job_error("import", str(e), request)
        names = ", ".join(p.name for p in request.paths)
        return self.job.start("import", lambda: import_iter(request), f"Importing {names}",
                              context=(request, mode), cancel_tip="Stop waiting; the import is discarded")

    def apply_import(self, result: ImportResult, mode: str = "take") -> bool:
        """An imported clip into the document: a new take (undoable) or a new document."""
        request, clip = result.request, result.clip
        if mode == "document":
            if not self.maybe_save():
                return False
            self.playback.set_playing(False)
            self._replace_document(Document(clip, request.paths[0]))
            name = self.document.current_take.name
        else:
            name = self.document.unique_take_name(request.name)
            if not self.push(lambda: C.AddTake(self.document, clip, name)):
                return self._job_error("import", f"the imported clip could not become a take {name!r}", request)
        for p in request.paths:
            self._add_recent(p)
        self.statusBar().showMessage(f"Imported {name}: {result.summary()}", 8000)
        self.sig_import_finished.emit(name)
        return True

    def _on_job_finished(self, kind: str, item) -> None:
        if kind == "export":
            files = [str(p) for p in item.get("files", [])]
            self.statusBar().showMessage(f"Exported {', '.join(Path(f).name for f in files)}", 8000)
            self.sig_export_finished.emit(files)
        else:
            request, mode = self.job.context
            self.apply_import(item["result"], mode)

    def _on_job_failed(self, kind: str, message: str) -> None:
        request = self.job.context if kind == "export" else self.job.context[0]
        self._job_error(kind, message, request)

    def _on_job_cancelled(self, kind: str) -> None:
        what = "nothing was written" if kind == "export" else "nothing was imported"
        self.statusBar().showMessage(f"{kind.capitalize()} cancelled; {what}", 6000)
        self.sig_job_cancelled.emit(kind)

    def _job_error(self, kind: str, message: str, request=None) -> bool:
        """One message box naming the file and what was expected; returns False."""
        paths = ([request.path] if isinstance(request, ExportRequest)
                 else list(request.paths) if isinstance(request, ImportRequest) else [])
        if paths and not any(str(p) in message or p.name in message for p in paths):
            message = f"{paths[0]}: {message}"
        self.last_job_error = message
        self.show_error(f"Cannot {kind}", message)
        self.sig_job_failed.emit(message)
        return False

    # --- take compare -------------------------------------------------------------------
    def _on_compare_change(self, event: Event | None = None) -> None:
        """Hand the compared take's clip (None: not comparing, or it is the current take) to the
        viewport, which draws it as a translucent ghost, when the viewport can."""
        clip = self.document.compare_clip
        if clip is self._compare_shown:
            return
        self._compare_shown = clip
        can_draw = hasattr(self.viewport, "set_compare_clip")
        if can_draw:
            self.viewport.set_compare_clip(clip)
        if clip is None:
            return
        name = self.document.takes[self.document.compare_take].name
        if can_draw:
            self.statusBar().showMessage(f"Comparing {self.document.current_take.name!r} with {name!r} (the ghost)", 8000)
        else:
            self.statusBar().showMessage(f"Comparing with {name!r}: this viewport cannot draw a ghost take yet", 8000)

    # --- projects -----------------------------------------------------------------------
    @property
    def dirty(self) -> bool:
        """Unsaved changes: edits since the last save, or a recovered autosave not saved yet."""
        return self._recovered_unsaved or not self.undo_stack.isClean()

    def new_project(self) -> bool:
        if not self.maybe_save():
            return False
        self.playback.set_playing(False)
        self._replace_document(Document())
        return True

    def _open_project_dialog(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open project (a .handproj folder)", self._last_dir())
        if path:
            self.open_project(path)

    def open_project(self, path: str | os.PathLike) -> bool:
        """Open a .handproj; if its autosave is newer, offer to recover it. Errors change nothing."""
        path = Path(path).absolute()
        try:
            doc = P.load_project(path)
        except (ValueError, OSError) as e:
            self.show_error("Cannot open project", str(e))
            return False
        if not self.maybe_save():
            return False
        recovered = False
        autosave = P.find_recovery(path)
        if autosave is not None:
            if self.ask_recover(autosave):
                try:
                    doc, recovered = P.recover(autosave), True
                except (ValueError, OSError) as e:
                    self.show_error("Cannot recover the autosave", f"{e}\n\nOpening the saved project instead.")
            else:
                shutil.rmtree(autosave, ignore_errors=True)
        self.playback.set_playing(False)
        self._replace_document(doc, recovered=recovered)
        self._add_recent(path)
        msg = "Recovered unsaved changes of" if recovered else "Opened"
        self.statusBar().showMessage(f"{msg} {path.name}", 8000)
        return True

    def recover_untitled(self) -> bool:
        """At start-up: offer the newest autosave of an untitled document left by a crash."""
        found = P.find_untitled_recoveries(self.autosaver.recovery_dir)
        if not found or not self.ask_recover(found[0]):
            return False
        try:
            doc = P.recover(found[0])
        except (ValueError, OSError) as e:
            self.show_error("Cannot recover the autosave", str(e))
            return False
        self._replace_document(doc, recovered=True)
        shutil.rmtree(found[0], ignore_errors=True)
        return True

    def save(self) -> bool:
        """Save the project (asks where when it has never been saved)."""
        if self.document.project_path is None:
            return self.save_as()
        return self.save_project(self.document.project_path)

    def save_as(self) -> bool:
        path = self.ask_project_path()
        return self.save_project(path) if path is not None else False

    def save_project(self, path: str | os.PathLike) -> bool:
        old_autosave = self.autosaver.target
        try:
            saved = P.save_project(self.document, path)
        except (ValueError, OSError) as e:
            self.show_error("Cannot save project", str(e))
            return False
        shutil.rmtree(old_autosave, ignore_errors=True)
        self.autosaver.saved()
        self._recovered_unsaved = False
        self.undo_stack.setClean()
        self._add_recent(saved)
        self._update_title()
        self.statusBar().showMessage(f"Saved {saved.name}", 5000)
        self.sig_project_saved.emit(str(saved))
        return True

    def autosave(self) -> Path | None:
        """The autosave timer's slot: write the autosave when due; never interrupts the user."""
        try:
            return self.autosaver.tick()
        except (ValueError, OSError) as e:
            self.statusBar().showMessage(f"Autosave failed: {e}", 10000)
            return None

    def maybe_save(self) -> bool:
        """Before the document goes away: True to go on (saved or discarded), False to stay."""
        if not self.dirty:
            return True
        answer = self.ask_save_changes()
        if answer == "save":
            return self.save()
        if answer == "discard":
            self.autosaver.discard()
            return True
        return False

    def _replace_document(self, doc: Document, recovered: bool = False) -> None:
        """Show ``doc`` in this window: its takes, prompt and generation settings. A recovered
        autosave is written again at once under this window's autosave name, so the recovered
        changes stay on disk until they are saved (a second crash before the next autosave tick
        offers them again rather than losing them)."""
        self.prompt_panel.document_replaced()  # a running generation or caption is for the old one
        self.autosaver.discard()
        self.document.adopt(doc)
        self.undo_stack.clear()
        self.undo_stack.setClean()
        self._recovered_unsaved = recovered
        self.prompt_panel.load_settings()
        if not recovered:
            self.autosaver.saved()
        else:
            try:
                self.autosaver.save_now()
            except (ValueError, OSError) as e:
                self.document._touch()  # pending: the next autosave tries again
                self.statusBar().showMessage(f"Autosave failed: {e}", 10000)
        self._update_title()

    # --- questions (tests replace these) ------------------------------------------------
    def ask_save_changes(self) -> str:
        """'save', 'discard' or 'cancel'."""
        box = QMessageBox(QMessageBox.Warning, APPLICATION,
                          f"Save the changes to {self.document_name()} before closing it?",
                          QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, self)
        box.setDefaultButton(QMessageBox.Save)
        answer = box.exec()
        return {QMessageBox.Save: "save", QMessageBox.Discard: "discard"}.get(answer, "cancel")

    def ask_recover(self, autosave: Path) -> bool:
        when = datetime.fromtimestamp(autosave.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
        answer = QMessageBox.question(
            self, "Recover unsaved changes?",
            f"Hand Studio did not close normally. An autosave from {when} has changes that were "
            "never saved.\n\nRecover them? (No deletes the autosave.)",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.Yes)
        return answer == QMessageBox.Yes

    def ask_project_path(self) -> Path | None:
        start = str(self.document.project_path or Path(self._last_dir()) / "untitled.handproj")
        path, _ = QFileDialog.getSaveFileName(self, "Save project as", start, PROJECT_FILTER)
        return Path(path) if path else None

    def show_error(self, title: str, message: str) -> QMessageBox:
        """A window-modal error box that does not block the event loop (tests can find it)."""
        box = QMessageBox(QMessageBox.Critical, title, message, QMessageBox.Ok, self)
        box.setObjectName("error_box")
        box.setAttribute(Qt.WA_DeleteOnClose)
        box.open()
        return box

    def _last_dir(self) -> str:
        recent = self.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    # --- recent files -------------------------------------------------------------------
    def recent_files(self) -> list[str]:
        value = self.settings.value("recent_files", [])
        if isinstance(value, str):  # QSettings returns a bare string for a one-item list
            value = [value]
        return [str(v) for v in (value or [])]

    def _add_recent(self, path: Path) -> None:
        p = str(Path(path).resolve())
        files = [p] + [f for f in self.recent_files() if f != p]
        self.settings.setValue("recent_files", files[:MAX_RECENT])
        self._update_recent_menu()

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for f in files:
            act = self.recent_menu.addAction(Path(f).name)
            act.setToolTip(f)
            opener = self.open_project if P.is_project(f) else self.open_clip
            act.triggered.connect(lambda checked=False, f=f, o=opener: o(f))
        self.recent_menu.setEnabled(bool(files))

    # --- model --------------------------------------------------------------------------
    def document_name(self) -> str:
        doc = self.document
        if doc.project_path is not None:
            return P.project_name(doc.project_path)
        return doc.path.name if doc.path is not None else "Untitled"

    def _on_clip_change(self, event: Event | None = None) -> None:
        self._update_title()
        self._on_compare_change()  # switching to the compared take hides its ghost

    def _update_title(self, *args) -> None:
        self.setWindowTitle(f"{self.document_name()}{'*' if self.dirty else ''} — {APPLICATION}")

    # --- window state -------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("main_window/geometry")
        state = self.settings.value("main_window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1200, 800)
        if state is not None:
            self.restoreState(state)

    def closeEvent(self, event) -> None:
        if self._closed:  # closed before: the listeners are gone
            super().closeEvent(event)
            return
        if not self.maybe_save():
            event.ignore()
            return
        self._closed = True
        self.training_panel.shutdown()  # pause a training run (checkpoint, exit), stop an evaluation
        self.dataset_panel.shutdown()  # cancel an import or save, remove its staging folders
        self.prompt_panel.shutdown()  # cancel a running generation, wait for its thread
        self.job.shutdown()  # the same for an import or export
        if self.import_dialog is not None:
            self.import_dialog.shutdown()
        self.takes_panel.close_listeners()
        self.autosave_timer.stop()
        self.autosaver.discard()
        self.settings.setValue("main_window/geometry", self.saveGeometry())
        self.settings.setValue("main_window/state", self.saveState())
        self.settings.sync()
        self.playback.close_listeners()
        self.timeline.close_listeners()
        self.document.events.clip.disconnect(self._on_clip_change)
        self.document.events.compare.disconnect(self._on_compare_change)
        self.document.events.constraints.disconnect(self._on_constraints_change)
        self.viewport.close_visuals()
        super().closeEvent(event)
