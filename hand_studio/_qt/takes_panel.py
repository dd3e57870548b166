"""The takes list: one row per take with a thumbnail; click to switch, double-click (or F2) to
rename, Delete to remove. Every change is an undoable model command; the list listens to the
Document's ``takes`` event and rebuilds itself from the model.

Compare: Ctrl+click a second take, then Compare: the current take stays, the other one becomes
the document's ``compare_take`` (drawn as a ghost by the viewport; view state, not undoable).
"Stop compare" ends it. The compared row is shown in italics.

Thumbnails are a cheap 2D projection of the keypoints (front view: x right, y up) drawn with
QPainter: a few frames of the take, faded, so a glance shows the motion, not only one pose.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QListWidget, QListWidgetItem, QToolButton,
                               QVBoxLayout, QWidget)

from engine.hands.skeleton import KEYPOINT_PARENTS
from hand_studio.model import commands as C
from hand_studio.model.document import Document, Take
from hand_studio.model.events import Event

THUMB = QSize(72, 48)
HAND_QCOLORS = (QColor(238, 168, 128), QColor(148, 184, 238))  # warm left, cool right (as the viewport)
THUMB_FRAMES = 4  # poses drawn per thumbnail, oldest faintest
COMPARE_QCOLOR = QColor(170, 200, 170)  # the compared (ghost) take's row


def take_thumbnail(take: Take, size: QSize = THUMB) -> QPixmap:
    """A small front-view drawing of the take's bones over a few frames."""
    joints = take.clip.joints  # (T, 2, 21, 3)
    T = joints.shape[0]
    frames = np.unique(np.linspace(0, T - 1, min(THUMB_FRAMES, T)).round().astype(int))
    xy = joints[frames][..., :2].astype(np.float64)  # (F, 2, 21, 2)
    lo, hi = xy.reshape(-1, 2).min(0), xy.reshape(-1, 2).max(0)
    w, h, pad = size.width(), size.height(), 4
    scale = min((w - 2 * pad) / max(hi[0] - lo[0], 1e-3), (h - 2 * pad) / max(hi[1] - lo[1], 1e-3))
    centre = (lo + hi) / 2
    px = np.empty_like(xy)
    px[..., 0] = w / 2 + (xy[..., 0] - centre[0]) * scale
    px[..., 1] = h / 2 - (xy[..., 1] - centre[1]) * scale
    pm = QPixmap(size)
    pm.fill(QColor(29, 31, 35))
    p = QPainter(pm)
    p.setRenderHint(QPainter.Antialiasing)
    for i in range(len(frames)):
        alpha = int(255 * (i + 1) / len(frames))
        for hand in range(2):
            c = QColor(HAND_QCOLORS[hand])
            c.setAlpha(alpha)
            p.setPen(QPen(c, 1.2))
            pts = px[i, hand]
            for j, parent in enumerate(KEYPOINT_PARENTS):
                if parent >= 0:
                    p.drawLine(int(pts[j, 0]), int(pts[j, 1]), int(pts[parent, 0]), int(pts[parent, 1]))
    p.end()
    return pm


class QtTakesPanel(QWidget):
    """The document's takes; edits go through ``push`` (a function taking a command factory)."""

    sig_message = Signal(str)
    """An edit was refused (one line for the status bar)."""

    def __init__(self, document: Document, push, parent: QWidget | None = None):
        super().__init__(parent)
        self.document = document
        self._push = push
        self._thumbs: dict[int, tuple] = {}  # id(clip) -> (clip, thumbnail)
        self._rebuilding = False
        self.list = QListWidget(self)
        self.list.setObjectName("takes_list")
        self.list.setIconSize(THUMB)
        self.list.setMinimumHeight(2 * (THUMB.height() + 8))  # two takes visible at least
        self.list.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.list.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self.list.setToolTip("Click a take to switch to it; Ctrl+click a second one to compare; "
                             "double-click (F2) to rename; Del deletes it")
        self.list.itemSelectionChanged.connect(self._on_selection_changed)
        self.list.itemChanged.connect(self._on_item_changed)
        self.compare_button = self._button("Compare", "Select two takes (Ctrl+click) to show the other one as "
                                           "a ghost over the current take", self.toggle_compare)
        self.compare_button.setObjectName("compare_button")
        self.compare_button.setCheckable(True)
        self.rename_button = self._button("Rename", "Rename the selected take (F2)", self._rename_current)
        self.delete_button = self._button("Delete", "Delete the selected take", self.delete_current)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(self.compare_button)
        buttons.addStretch(1)
        buttons.addWidget(self.rename_button)
        buttons.addWidget(self.delete_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        document.events.takes.connect(self._on_takes_change)
        document.events.compare.connect(self._on_compare_change)
        self._on_takes_change()

    def _button(self, text: str, tip: str, slot) -> QToolButton:
        b = QToolButton(self)
        b.setText(text)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    # --- model -> widget ----------------------------------------------------------------
    def _on_takes_change(self, event: Event | None = None) -> None:
        doc = self.document
        self._rebuilding = True
        try:
            self.list.clear()
            live = set()
            for i, take in enumerate(doc.takes):
                key = id(take.clip)
                live.add(key)
                if key not in self._thumbs or self._thumbs[key][0] is not take.clip:
                    self._thumbs[key] = (take.clip, take_thumbnail(take))
                item = QListWidgetItem(QIcon(self._thumbs[key][1]), take.name)
                item.setFlags(item.flags() | Qt.ItemIsEditable)
                gen = int(take.generated.any(axis=1).sum())
                prompt = take.clip.prompt
                text = "; ".join(f"{k}: {getattr(prompt, k)}" for k in ("text", "left", "right") if getattr(prompt, k))
                item.setToolTip(f"{take.name}: {take.clip.num_frames} frames, {gen} generated"
                                + (f"\n{text}" if text else ""))
                self.list.addItem(item)
            self._thumbs = {k: v for k, v in self._thumbs.items() if k in live}
            self.list.setCurrentRow(doc.current_take_index)
        finally:
            self._rebuilding = False
        self.delete_button.setEnabled(len(doc.takes) > 1)
        self._on_compare_change()

    def _on_compare_change(self, event: Event | None = None) -> None:
        compare = self.document.compare_take
        self._rebuilding = True  # item data changes emit itemChanged: not a rename
        try:
            for row in range(self.list.count()):
                item = self.list.item(row)
                font = item.font()
                font.setItalic(row == compare)
                item.setFont(font)
                item.setForeground(QBrush(COMPARE_QCOLOR) if row == compare else QBrush())
        finally:
            self._rebuilding = False
        self._update_compare_button()

    def _update_compare_button(self) -> None:
        comparing = self.document.compare_take is not None
        self.compare_button.blockSignals(True)
        self.compare_button.setChecked(comparing)
        self.compare_button.blockSignals(False)
        self.compare_button.setText("Stop compare" if comparing else "Compare")
        self.compare_button.setEnabled(comparing or len(self.selected_rows()) == 2)

    # --- widget -> model ----------------------------------------------------------------
    def _on_selection_changed(self) -> None:
        """One row selected (a click, the arrow keys): switch to it. Two (Ctrl/Shift+click): the
        takes to compare; no switch. (The current row changes before the selection does, so
        switching on the selection is what tells the two apart.)"""
        if self._rebuilding:
            return
        rows = self.selected_rows()
        if len(rows) == 1 and rows[0] != self.document.current_take_index:
            self.switch_to(rows[0])
            return
        self._update_compare_button()

    def selected_rows(self) -> list[int]:
        return sorted(self.list.row(i) for i in self.list.selectedItems())

    def compare(self, a: int, b: int) -> bool:
        """Compare two takes: the current one stays (if neither is current, ``a`` becomes
        current) and the other becomes the ghost."""
        doc = self.document
        if a == b:
            self.sig_message.emit("Pick two different takes to compare")
            return False
        cur = doc.current_take_index
        if cur not in (a, b):
            if not self.switch_to(a):
                return False
            cur = a
        doc.set_compare_take(b if cur == a else a)
        return True

    def toggle_compare(self) -> bool:
        """The Compare button: compare the two selected takes, or stop comparing."""
        if self.document.compare_take is not None:
            self.document.set_compare_take(None)
            return True
        rows = self.selected_rows()
        if len(rows) != 2:
            self.sig_message.emit("Select two takes to compare (Ctrl+click the second)")
            self._update_compare_button()
            return False
        cur = self.document.current_take_index
        a, b = (cur, rows[1] if rows[0] == cur else rows[0]) if cur in rows else rows
        return self.compare(a, b)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._rebuilding:
            return
        row = self.list.row(item)
        if row < 0:
            return
        name, old = item.text(), self.document.takes[row].name
        if name.strip() == old:  # unchanged but for spaces (the command would strip them): no edit
            if name != old:
                self._rebuilding = True
                try:
                    item.setText(old)
                finally:
                    self._rebuilding = False
        elif not self.rename(row, name):
            self._on_takes_change()  # put the old name back

    def switch_to(self, index: int) -> bool:
        return self._push(lambda: C.SwitchTake(self.document, index))

    def rename(self, index: int, name: str) -> bool:
        return self._push(lambda: C.RenameTake(self.document, index, name))

    def delete_current(self) -> bool:
        return self._push(lambda: C.DeleteTake(self.document, self.document.current_take_index))

    def _rename_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def close_listeners(self) -> None:
        if self._on_takes_change in self.document.events.takes.callbacks:
            self.document.events.takes.disconnect(self._on_takes_change)
        if self._on_compare_change in self.document.events.compare.callbacks:
            self.document.events.compare.disconnect(self._on_compare_change)


__all__ = ["QtTakesPanel", "take_thumbnail"]
