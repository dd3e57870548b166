"""The open document: one two-hand clip and the playhead. No Qt.

Events (``document.events``): ``clip`` (value: the new Clip) after the clip is replaced,
``frame`` (value: the new frame index) whenever the playhead moves.
"""
from __future__ import annotations

import operator
import os
from pathlib import Path

from engine.motion.clip import Clip
from hand_studio.model.events import EmitterGroup


class Document:
    """Current clip + playhead. Replacing the clip clamps the playhead into the new range."""

    def __init__(self, clip: Clip | None = None, path: str | os.PathLike | None = None):
        self.events = EmitterGroup(self, "clip", "frame")
        self._clip = clip if clip is not None else Clip.rest(1)
        if not isinstance(self._clip, Clip):
            raise TypeError(f"clip must be an engine Clip; got {type(clip).__name__}")
        self._frame = 0
        self.path: Path | None = Path(path) if path is not None else None

    # --- clip ---------------------------------------------------------------------------
    @property
    def clip(self) -> Clip:
        return self._clip

    @clip.setter
    def clip(self, clip: Clip) -> None:
        self.set_clip(clip)

    def set_clip(self, clip: Clip, path: str | os.PathLike | None = None) -> None:
        """Replace the clip (and the file it came from); emits ``clip`` then, if it moved, ``frame``."""
        if not isinstance(clip, Clip):
            raise TypeError(f"clip must be an engine Clip; got {type(clip).__name__}")
        self._clip = clip
        self.path = Path(path) if path is not None else None
        old = self._frame
        self._frame = min(self._frame, clip.num_frames - 1)
        self.events.clip.emit(clip)
        if self._frame != old:
            self.events.frame.emit(self._frame)

    @property
    def num_frames(self) -> int:
        return self._clip.num_frames

    @property
    def fps(self) -> float:
        return self._clip.fps

    # --- playhead -----------------------------------------------------------------------
    @property
    def frame(self) -> int:
        return self._frame

    @frame.setter
    def frame(self, frame: int) -> None:
        if isinstance(frame, bool):
            raise TypeError("frame must be an integer; got bool")
        try:
            frame = operator.index(frame)
        except TypeError:
            raise TypeError(f"frame must be an integer; got {type(frame).__name__}") from None
        last = self.num_frames - 1
        if not 0 <= frame <= last:
            raise ValueError(f"frame must be in 0..{last}; got {frame}")
        if frame != self._frame:
            self._frame = frame
            self.events.frame.emit(frame)

    def step(self, n: int = 1, loop: bool = True) -> int:
        """Move the playhead by ``n`` frames, wrapping (``loop``) or stopping at the ends."""
        target = self._frame + int(n)
        T = self.num_frames
        self.frame = target % T if loop else min(max(target, 0), T - 1)
        return self._frame
