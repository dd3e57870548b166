"""The main window: viewport in the centre, a playback dock at the bottom, File and View menus.

Widgets write user actions into the Document; the viewport and the playback bar listen to it.
"""
from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QHBoxLayout, QLabel, QMainWindow,
                               QMessageBox, QSlider, QStyle, QToolButton, QWidget)

from engine.api import Studio
from engine.motion.clip import Clip
from hand_studio._qt.viewport import CAMERA_PRESETS, QtViewport
from hand_studio.model.document import Document
from hand_studio.model.events import Event

ORGANISATION = "HandStudio"
APPLICATION = "Hand Studio"
MAX_RECENT = 8
CLIP_FILTER = "Hand Studio clips (*.npz);;All files (*)"


class QtPlaybackBar(QWidget):
    """Frame slider, frame label and play/pause; loops at the clip's fps."""

    sig_playing_changed = Signal(bool)
    """Playback started (True) or stopped (False)."""

    def __init__(self, document: Document, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.play_button = QToolButton(self)
        self.play_button.setCheckable(True)
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.toggled.connect(self.set_playing)
        self.slider = QSlider(Qt.Horizontal, self)
        self.slider.setObjectName("frame_slider")
        self.slider.valueChanged.connect(self._on_slider_moved)
        self.label = QLabel(self)
        self.label.setMinimumWidth(130)
        self.label.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.play_button)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)

        self.timer = QTimer(self)
        self.timer.timeout.connect(self._on_tick)
        document.events.clip.connect(self._on_clip_change)
        document.events.frame.connect(self._on_frame_change)
        self._on_clip_change()
        self._update_icon()

    # --- model -> widget ------------------------------------------------------------------
    def _on_clip_change(self, event: Event | None = None) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, self.document.num_frames - 1)
        self.slider.blockSignals(False)
        self.timer.setInterval(max(1, round(1000.0 / self.document.fps)))
        self._on_frame_change()

    def _on_frame_change(self, event: Event | None = None) -> None:
        f = self.document.frame
        if self.slider.value() != f:
            self.slider.blockSignals(True)
            self.slider.setValue(f)
            self.slider.blockSignals(False)
        doc = self.document
        self.label.setText(f"frame {f} / {doc.num_frames - 1}   {f / doc.fps:5.2f} s")

    # --- widget -> model ------------------------------------------------------------------
    def _on_slider_moved(self, value: int) -> None:
        self.document.frame = value

    def _on_tick(self) -> None:
        self.document.step(1, loop=True)

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def set_playing(self, playing: bool) -> None:
        if playing == self.playing:
            return
        if playing and self.document.num_frames > 1:
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

    def _update_icon(self) -> None:
        icon = QStyle.SP_MediaPause if self.playing else QStyle.SP_MediaPlay
        self.play_button.setIcon(self.style().standardIcon(icon))

    def close_listeners(self) -> None:
        self.timer.stop()
        self.document.events.clip.disconnect(self._on_clip_change)
        self.document.events.frame.disconnect(self._on_frame_change)


class MainWindow(QMainWindow):
    """Hand Studio's main window for one Document."""

    sig_clip_opened = Signal(str)
    """A clip file was opened (its path)."""

    def __init__(self, studio: Studio, document: Document | None = None,
                 settings: QSettings | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.studio = studio
        self.document = document if document is not None else Document()
        self.settings = settings if settings is not None else QSettings(ORGANISATION, APPLICATION)
        self.setWindowTitle(APPLICATION)
        self.setObjectName("MainWindow")

        self.viewport = QtViewport(self.document, studio.hands, parent=self)
        self.setCentralWidget(self.viewport)

        self.playback = QtPlaybackBar(self.document, self)
        self.playback_dock = QDockWidget("Playback", self)
        self.playback_dock.setObjectName("playback_dock")
        self.playback_dock.setWidget(self.playback)
        self.playback_dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(Qt.BottomDockWidgetArea, self.playback_dock)

        self._build_menus()
        hands = studio.hands.info()
        self.status_label = QLabel(f"device: {studio.device}   hands: {hands['backend']} "
                                   f"({hands['vertices'][0]} vertices)")
        self.statusBar().addPermanentWidget(self.status_label)
        self.document.events.clip.connect(self._on_clip_change)
        self._on_clip_change()
        self._restore_settings()

    # --- menus --------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.action_open = self._action(file_menu, "&Open clip…", self._open_dialog, QKeySequence.Open)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.action_save_as = self._action(file_menu, "Save clip &as…", self._save_dialog, QKeySequence.SaveAs)
        file_menu.addSeparator()
        self.action_quit = self._action(file_menu, "&Quit", self.close, QKeySequence.Quit)
        self.action_quit.setMenuRole(QAction.QuitRole)

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
        self.action_frame = self._action(view_menu, "&Frame hands", self.viewport.frame_hands,
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
        self.action_play = self._action(view_menu, "&Play / pause", self.playback.toggle_playing,
                                        QKeySequence(Qt.Key_Space))
        self._update_recent_menu()

    def _action(self, menu, text: str, slot, shortcut=None) -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(slot)
        menu.addAction(act)
        return act

    def _set_skeleton(self, checked: bool) -> None:
        self.viewport.hands_visual.skeleton_visible = checked

    def _set_stage(self, checked: bool) -> None:
        self.viewport.stage.visible = checked

    # --- files --------------------------------------------------------------------------
    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open clip", self._last_dir(), CLIP_FILTER)
        if path:
            self.open_clip(path)

    def _save_dialog(self) -> None:
        start = str(self.document.path) if self.document.path else self._last_dir()
        path, _ = QFileDialog.getSaveFileName(self, "Save clip as", start, CLIP_FILTER)
        if path:
            self.save_clip(path)

    def open_clip(self, path: str | os.PathLike) -> bool:
        """Load a clip into the document. On failure shows the engine's message; nothing changes."""
        path = Path(path)
        try:
            clip = Clip.load(path)
        except (ValueError, OSError) as e:  # ClipError is a ValueError
            self.show_error("Cannot open clip", str(e))
            return False
        self.playback.set_playing(False)
        self.document.set_clip(clip, path)
        self._add_recent(path)
        self.statusBar().showMessage(f"Opened {path.name}: {clip.num_frames} frames at {clip.fps:g} fps", 5000)
        self.sig_clip_opened.emit(str(path))
        return True

    def save_clip(self, path: str | os.PathLike) -> bool:
        path = Path(path)
        try:
            saved = self.document.clip.save(path)
        except (ValueError, OSError) as e:
            self.show_error("Cannot save clip", str(e))
            return False
        self.document.path = Path(saved)
        self._add_recent(Path(saved))
        self._on_clip_change()
        self.statusBar().showMessage(f"Saved {Path(saved).name}", 5000)
        return True

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
            act.triggered.connect(lambda checked=False, f=f: self.open_clip(f))
        self.recent_menu.setEnabled(bool(files))

    # --- model --------------------------------------------------------------------------
    def _on_clip_change(self, event: Event | None = None) -> None:
        path = self.document.path
        self.setWindowTitle(f"{path.name} — {APPLICATION}" if path else APPLICATION)

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
        self.settings.setValue("main_window/geometry", self.saveGeometry())
        self.settings.setValue("main_window/state", self.saveState())
        self.settings.sync()
        self.playback.close_listeners()
        self.document.events.clip.disconnect(self._on_clip_change)
        self.viewport.close_visuals()
        super().closeEvent(event)
