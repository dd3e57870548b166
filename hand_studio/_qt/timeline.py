"""The timeline (pyqtgraph): ruler, playhead, key diamonds per track, interval, bands, contacts.

Rows, top to bottom: a contact bar (red where the hands touch), then the left hand, right hand,
left wrist and right wrist tracks. Each track's background is tinted where a generator made the
frames and (differently) on keyed frames. Mouse, all in ``_TimelineViewBox`` so that a key under
the playhead or an interval edge still wins: click a diamond to select it (Shift toggles), drag
keys (snapped to frames, one undo per drag), drag on empty space to box-select (Shift adds),
Ctrl+drag to set the interval, drag an interval edge to change it, drag the playhead (or click
the contact row / empty space) to scrub, wheel to zoom time. Keys: Del, Ctrl+D, Ctrl+A.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeySequence, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QVBoxLayout, QWidget

from hand_studio._qt.undo import QtUndoStack
from hand_studio.model import commands as C
from hand_studio.model.contact import contact_frames
from hand_studio.model.document import Document
from hand_studio.model.events import Event
from hand_studio.model.tracks import TRACK_LABELS, TRACKS

CONTACT_ROW = 0
TRACK_ROWS = {t: i + 1 for i, t in enumerate(TRACKS)}
NUM_ROWS = len(TRACKS) + 1
PICK_PX = 8  # a click within this many pixels of a diamond hits it
EDGE_PX = 5  # ... of the playhead or an interval edge grabs it

BACKGROUND = "#1d1f23"
ROW_COLORS = ((38, 40, 44), (44, 46, 51))  # alternating track backgrounds
GENERATED_COLOR = (36, 74, 92)  # frames a generator made
KEYED_COLOR = (104, 84, 40)  # frames that hold a key on that track
CONTACT_COLOR = (214, 72, 64)
CONTACT_BASE = (30, 31, 34)
KEY_COLORS = {"left": "#f0a060", "right": "#69aef5"}  # warm left / cool right, as in the viewport
SELECTED_COLOR = "#fff06a"
PLAYHEAD_COLOR = "#ff5050"


def track_band_image(num_frames: int, generated: np.ndarray, keyed: dict[str, list[int]],
                     contact: np.ndarray) -> np.ndarray:
    """Row backgrounds as an RGBA image (T, NUM_ROWS, 4) uint8, indexed [frame, row]."""
    img = np.zeros((num_frames, NUM_ROWS, 4), np.uint8)
    img[..., 3] = 255
    img[:, CONTACT_ROW, :3] = CONTACT_BASE
    img[contact, CONTACT_ROW, :3] = CONTACT_COLOR
    for k, track in enumerate(TRACKS):
        row = TRACK_ROWS[track]
        img[:, row, :3] = ROW_COLORS[row % 2]
        img[generated[:, k], row, :3] = GENERATED_COLOR
        img[keyed[track], row, :3] = KEYED_COLOR
    return img


class _TimelineViewBox(pg.ViewBox):
    """Frames along x, rows along y (0 at the top); owns every mouse gesture of the timeline."""

    def __init__(self, timeline: "QtTimelineWidget"):
        super().__init__(enableMenu=False, invertY=True)
        self.timeline = timeline
        self.setMouseEnabled(x=True, y=False)
        self._drag: dict | None = None
        self.box = QGraphicsRectItem()
        self.box.setPen(pg.mkPen("#e0e0e0", width=1, style=Qt.DashLine))
        self.box.setBrush(pg.mkBrush(255, 255, 255, 30))
        self.box.setZValue(100)
        self.box.hide()
        self.addItem(self.box, ignoreBounds=True)

    # --- picking --------------------------------------------------------------------------
    def key_at(self, scene_pos: QPointF):
        """The (track, frame) key whose diamond is nearest ``scene_pos`` within PICK_PX, or None."""
        keys = self.timeline.document.all_keys()
        if not keys:
            return None
        p = self.mapSceneToView(scene_pos)
        px, py = self.viewPixelSize()  # view units per pixel
        frames = np.array([f for _, f in keys], float)
        rows = np.array([TRACK_ROWS[t] for t, _ in keys], float)
        d = np.hypot((frames - p.x()) / px, (rows - p.y()) / py)
        i = int(np.argmin(d))
        return keys[i] if d[i] <= PICK_PX else None

    def _near_x(self, scene_pos: QPointF, x: float) -> bool:
        return abs(self.mapSceneToView(scene_pos).x() - x) / self.viewPixelSize()[0] <= EDGE_PX

    def frame_at(self, scene_pos: QPointF) -> int:
        """The nearest frame to ``scene_pos``, clamped into the clip."""
        x = self.mapSceneToView(scene_pos).x()
        return int(min(max(round(x), 0), self.timeline.document.num_frames - 1))

    # --- mouse ----------------------------------------------------------------------------
    def mouseClickEvent(self, ev) -> None:
        if ev.button() != Qt.LeftButton:
            ev.ignore()
            return
        ev.accept()
        doc = self.timeline.document
        shift = bool(ev.modifiers() & Qt.ShiftModifier)
        key = self.key_at(ev.scenePos())
        if key is not None:
            doc.select([key], mode="toggle" if shift else "replace")
            return
        if not shift:
            doc.select([])
        doc.frame = self.frame_at(ev.scenePos())

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() != Qt.LeftButton:
            super().mouseDragEvent(ev, axis)  # middle/right: pan and zoom time
            return
        ev.accept()
        if ev.isStart():
            self._drag = self._start_drag(ev)
        if self._drag is None:
            return
        mode = self._drag["mode"]
        getattr(self, f"_drag_{mode}")(ev)
        if ev.isFinish():
            self._drag = None

    def _start_drag(self, ev) -> dict:
        doc = self.timeline.document
        start = ev.buttonDownScenePos()
        mods = ev.modifiers()
        presses = getattr(self.scene(), "clickEvents", None)  # the gesture's mode is set at the press
        if presses:
            mods |= presses[0].modifiers()
        shift = bool(mods & Qt.ShiftModifier)
        key = self.key_at(start)
        if key is not None:
            if key not in doc.selection:
                doc.select([key], mode="add" if shift else "replace")
            return {"mode": "keys", "press": self.frame_at(start), "applied": 0, "id": C.new_drag_id()}
        if mods & Qt.ControlModifier:
            return {"mode": "interval", "anchor": self.frame_at(start), "id": C.new_drag_id()}
        if self._near_x(start, doc.frame) or self.mapSceneToView(start).y() < CONTACT_ROW + 0.5:
            return {"mode": "scrub"}
        if doc.interval is not None:
            a, b = doc.interval
            for edge, x in (("first", a - 0.5), ("last", b + 0.5)):
                if self._near_x(start, x):
                    # the other edge stays put for the whole drag, even when this one passes it
                    return {"mode": "edge", "fixed": b if edge == "first" else a, "id": C.new_drag_id()}
        return {"mode": "box", "add": shift, "start": self.mapSceneToView(start)}

    def _drag_keys(self, ev) -> None:
        d, doc = self._drag, self.timeline.document
        keys = sorted(doc.selection)
        if not keys:
            return
        frames = [f for _, f in keys]
        target = self.frame_at(ev.scenePos()) - d["press"]
        # clamp so the whole selection stays inside the clip
        target = min(max(target, d["applied"] - min(frames)),
                     d["applied"] + doc.num_frames - 1 - max(frames))
        step = target - d["applied"]
        if step:
            if self.timeline.push(lambda: C.MoveKeys(doc, keys, step, drag_id=d["id"])):
                d["applied"] = target

    def _drag_scrub(self, ev) -> None:
        self.timeline.document.frame = self.frame_at(ev.scenePos())

    def _drag_interval(self, ev) -> None:
        d = self._drag
        f = self.frame_at(ev.scenePos())
        interval = (min(d["anchor"], f), max(d["anchor"], f))
        if interval != self.timeline.document.interval:
            self.timeline.push(lambda: C.SetInterval(self.timeline.document, interval, drag_id=d["id"]))

    def _drag_edge(self, ev) -> None:
        d, doc = self._drag, self.timeline.document
        f = self.frame_at(ev.scenePos())
        interval = (min(f, d["fixed"]), max(f, d["fixed"]))
        if interval != doc.interval:
            self.timeline.push(lambda: C.SetInterval(doc, interval, drag_id=d["id"]))

    def _drag_box(self, ev) -> None:
        p0, p1 = self._drag["start"], self.mapSceneToView(ev.scenePos())
        rect = QRectF(p0, p1).normalized()
        if ev.isFinish():
            self.box.hide()
            doc = self.timeline.document
            inside = [(t, f) for t, f in doc.all_keys()
                      if rect.left() <= f <= rect.right() and rect.top() <= TRACK_ROWS[t] <= rect.bottom()]
            doc.select(inside, mode="add" if self._drag["add"] else "replace")
        else:
            self.box.setRect(rect)
            self.box.show()


class QtTimelineWidget(QWidget):
    """The document's timeline; edits go through ``undo_stack`` as model commands."""

    sig_message = Signal(str)
    """An edit was refused or needs explaining (one line for the status bar)."""

    def __init__(self, document: Document, undo_stack: QtUndoStack, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self.undo_stack = undo_stack
        self.view_box = _TimelineViewBox(self)
        self.plot = pg.PlotWidget(parent=self, viewBox=self.view_box, background=BACKGROUND)
        self.plot.setObjectName("timeline_plot")
        self.plot.setMinimumHeight(180)
        item = self.plot.getPlotItem()
        item.hideButtons()
        item.showAxis("top")
        item.hideAxis("bottom")
        item.getAxis("top").setLabel("frame")
        left = item.getAxis("left")
        left.setWidth(118)
        left.setStyle(tickLength=0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

        self.bands = pg.ImageItem()
        self.bands.setZValue(-10)
        self.region = pg.LinearRegionItem(orientation="vertical", movable=False,
                                          brush=pg.mkBrush(120, 170, 255, 45),
                                          pen=pg.mkPen("#8fb8ff", width=2))
        for line in self.region.lines:
            line.setMovable(False)
        self.region.setZValue(5)
        self.keys_item = pg.ScatterPlotItem(symbol="d", size=14, pxMode=True, hoverable=False)
        self.keys_item.mouseClickEvent = lambda ev: ev.ignore()  # the view box picks keys
        self.keys_item.setZValue(20)
        self.path_item = pg.ScatterPlotItem(symbol="o", size=6, pen=None, brush=pg.mkBrush("#d0d0d0"))
        self.path_item.mouseClickEvent = lambda ev: ev.ignore()
        self.path_item.setZValue(15)
        self.playhead = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(PLAYHEAD_COLOR, width=2))
        self.playhead.setZValue(30)
        for it in (self.bands, self.region, self.path_item, self.keys_item, self.playhead):
            self.view_box.addItem(it, ignoreBounds=it is not self.bands)

        self._build_actions()
        self._contact, self._contact_clip = np.zeros(document.num_frames, bool), None
        ev = document.events
        self._listeners = [(ev.clip, self._on_clip_change), (ev.takes, self._on_bands_change),
                           (ev.keys, self._on_keys_change), (ev.selection, self._on_keys_change),
                           (ev.frame, self._on_frame_change), (ev.constraints, self._on_constraints_change)]
        for emitter, cb in self._listeners:
            emitter.connect(cb)
        self._on_clip_change()

    def _build_actions(self) -> None:
        def action(text, slot, shortcut, tip):
            act = QAction(text, self)
            act.setShortcut(QKeySequence(shortcut))
            act.setShortcutContext(Qt.WindowShortcut)
            act.setToolTip(tip)
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        self.action_delete = action("&Delete keys", self.delete_selected, QKeySequence.Delete,
                                    "Delete the selected keys (Del)")
        self.action_duplicate = action("D&uplicate keys", self.duplicate_selected, "Ctrl+D",
                                       "Copy the selected keys to the playhead, or right after them (Ctrl+D)")
        self.action_select_all = action("Select &all keys", self.select_all, QKeySequence.SelectAll,
                                        "Select every key (Ctrl+A)")
        self.action_key = action("&Key current pose", self.key_current_pose, "K",
                                 "Key all four tracks at the playhead from the current pose (K)")

    # --- edits ----------------------------------------------------------------------------
    def push(self, command_or_factory) -> bool:
        """Push a model command; a refused edit (ValueError) goes to ``sig_message`` instead."""
        try:
            command = command_or_factory() if callable(command_or_factory) else command_or_factory
        except ValueError as e:
            self.sig_message.emit(str(e))
            return False
        self.undo_stack.push_command(command)
        return True

    def delete_selected(self) -> bool:
        if not self.document.selection:
            self.sig_message.emit("No keys selected to delete")
            return False
        return self.push(lambda: C.DeleteKeys(self.document))

    def duplicate_selected(self) -> bool:
        doc = self.document
        if not doc.selection:
            self.sig_message.emit("No keys selected to duplicate")
            return False
        return self.push(lambda: C.DuplicateKeys(doc, doc.selection, C.duplicate_offset(doc, doc.selection)))

    def select_all(self) -> None:
        self.document.select(self.document.all_keys())

    def key_current_pose(self) -> bool:
        return self.push(lambda: C.AddKeys(self.document))

    # --- model -> view ----------------------------------------------------------------------
    def _on_clip_change(self, event: Event | None = None) -> None:
        doc = self.document
        T = doc.num_frames
        vb = self.view_box
        pad = max(1.0, 0.015 * T)  # room for the diamonds on the first and last frame
        vb.setLimits(xMin=-0.5 - pad, xMax=T - 0.5 + pad, yMin=-0.5, yMax=NUM_ROWS - 0.5,
                     minXRange=min(T, 5))
        vb.setRange(xRange=(-0.5 - pad, T - 0.5 + pad), yRange=(-0.5, NUM_ROWS - 0.5), padding=0)
        self._on_constraints_change()
        self._on_keys_change()
        self._on_frame_change()

    def _on_bands_change(self, event: Event | None = None) -> None:
        doc = self.document
        if self._contact_clip is not doc.clip:
            self._contact = contact_frames(doc.clip.joints)
            self._contact_clip = doc.clip
        keyed = {t: doc.key_frames(t) for t in TRACKS}
        img = track_band_image(doc.num_frames, doc.current_take.generated, keyed, self._contact)
        self.bands.setImage(img, levels=None, autoLevels=False)
        self.bands.setRect(QRectF(-0.5, -0.5, doc.num_frames, NUM_ROWS))

    def _on_keys_change(self, event: Event | None = None) -> None:
        doc = self.document
        keys = doc.all_keys()
        sel = doc.selection
        spots = []
        for t, f in keys:
            selected = (t, f) in sel
            color = SELECTED_COLOR if selected else KEY_COLORS[t.split("_")[0]]
            spots.append({"pos": (f, TRACK_ROWS[t]), "data": (t, f), "brush": pg.mkBrush(color),
                          "pen": pg.mkPen("#ffffff" if selected else "#15161a", width=2 if selected else 1),
                          "size": 16 if selected else 14})
        self.keys_item.setData(spots)
        self._on_bands_change()

    def _on_frame_change(self, event: Event | None = None) -> None:
        self.playhead.setValue(self.document.frame)

    def _on_constraints_change(self, event: Event | None = None) -> None:
        doc = self.document
        if doc.interval is None:
            self.region.hide()
        else:
            a, b = doc.interval
            self.region.setRegion((a - 0.5, b + 0.5))
            self.region.show()
        pts = [(f, TRACK_ROWS[f"{h}_wrist"]) for h in ("left", "right") for f, _ in doc.wrist_path(h)]
        self.path_item.setData(pos=np.array(pts, float).reshape(-1, 2))
        left = self.plot.getPlotItem().getAxis("left")
        labels = [(CONTACT_ROW, "Contact")]
        for t in TRACKS:
            locked = t.split("_")[0] in doc.locked_hands
            labels.append((TRACK_ROWS[t], TRACK_LABELS[t] + (" (locked)" if locked else "")))
        left.setTicks([labels, []])

    # --- helpers for tests and tools --------------------------------------------------------
    def view_point(self, frame: float, row: float) -> QPoint:
        """Widget coordinates (of ``plot.viewport()``) of a frame on a row (``TRACK_ROWS``)."""
        scene = self.view_box.mapViewToScene(QPointF(frame, row))
        return self.plot.mapFromScene(scene)

    @property
    def contact(self) -> np.ndarray:
        """(T,) bool: frames where the contact bar is lit."""
        return self._contact.copy()

    def close_listeners(self) -> None:
        for emitter, cb in self._listeners:
            if cb in emitter.callbacks:
                emitter.disconnect(cb)
