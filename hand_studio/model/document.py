"""The open document without Qt: takes, keys, constraints, selection, prompt and playhead.

The current take's clip is ``document.clip``. Keys and constraints belong to the document, not to
a take: they are what the next generation must respect, and each take is one answer to them.
Invariant: every key, wrist-path point and the interval lie inside the current clip (changing
the clip drops what falls past its end; the command that did it restores it on undo).

Edits go through ``hand_studio.model.commands`` (undoable); the ``_set_*`` methods here are
the mutators those commands call. Events (``document.events.<name>``, value in brackets):
``clip`` (the new Clip) · ``frame`` (playhead) · ``takes`` · ``keys`` · ``selection`` ·
``constraints`` (interval, locked hands, wrist paths) · ``prompt`` · ``compare`` (the take shown
as a ghost beside the current one, or None) · ``changed`` (revision; after every edit, done or
undone).

The compared take is view state, like the selection: not an undoable edit, not saved. It is held
by its clip (renaming or reordering takes keeps it) and cleared when that take is deleted.
"""
from __future__ import annotations

import copy
import operator
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.motion.clip import Clip, Prompt
from hand_studio.model.events import EmitterGroup
from hand_studio.model.tracks import HANDS, TRACKS, check_hand, check_track, check_values

KeyId = tuple[str, int]  # (track, frame); at most one key per frame per track


@dataclass
class Take:
    """One version of the motion: a name, its clip, and which (frame, track) cells came from a
    generator (``generated`` (T, 4) bool, TRACKS order; False = imported or keyed)."""

    name: str
    clip: Clip
    generated: np.ndarray | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"take name must be a non-empty string; got {self.name!r}")
        if not isinstance(self.clip, Clip):
            raise TypeError(f"take clip must be an engine Clip; got {type(self.clip).__name__}")
        shape = (self.clip.num_frames, len(TRACKS))
        if self.generated is None:
            self.generated = np.zeros(shape, bool)
        g = np.asarray(self.generated, bool)
        if g.shape != shape:
            raise ValueError(f"take generated mask must have shape {shape}; got {g.shape}")
        self.generated = g.copy()


@dataclass
class Constraints:
    """What the next generation must keep: an interval (first, last frame, inclusive), locked
    hands, and per hand a pinned wrist path of (frame, (x, y, z)) points sorted by frame."""

    interval: tuple[int, int] | None = None
    locked_hands: frozenset = frozenset()
    wrist_paths: dict = field(default_factory=dict)  # hand -> tuple[(frame, (x, y, z)), ...]


def check_path(hand: str, points, num_frames: int) -> tuple:
    """Wrist path points -> a tuple of (frame, (x, y, z)) sorted by frame; ValueError if bad."""
    check_hand(hand)
    out = {}
    for i, p in enumerate(points):
        try:
            frame, xyz = p
            frame = operator.index(frame)
            xyz = tuple(float(c) for c in xyz)
        except (TypeError, ValueError):
            raise ValueError(f"{hand} wrist path point {i} must be (frame, (x, y, z)); got {p!r}") from None
        if len(xyz) != 3 or not np.isfinite(xyz).all():
            raise ValueError(f"{hand} wrist path point {i} must have 3 finite coordinates; got {xyz}")
        if not 0 <= frame < num_frames:
            raise ValueError(f"{hand} wrist path point {i}: frame must be in 0..{num_frames - 1}; got {frame}")
        if frame in out:
            raise ValueError(f"{hand} wrist path has two points on frame {frame}")
        out[frame] = xyz
    return tuple(sorted(out.items()))


class Document:
    """Takes (the current one's clip is ``clip``), keys, constraints, selection, playhead."""

    def __init__(self, clip: Clip | None = None, path: str | os.PathLike | None = None):
        self.events = EmitterGroup(self, "clip", "frame", "takes", "keys", "selection",
                                   "constraints", "prompt", "compare", "changed")
        clip = clip if clip is not None else Clip.rest(1)
        if not isinstance(clip, Clip):
            raise TypeError(f"clip must be an engine Clip; got {type(clip).__name__}")
        self._takes: list[Take] = [Take("Take 1", clip)]
        self._current = 0
        self._frame = 0
        self._keys: dict[str, dict[int, np.ndarray]] = {t: {} for t in TRACKS}
        self._selection: frozenset[KeyId] = frozenset()
        self._constraints = Constraints()
        self._prompt = Prompt()
        self._compare_clip: Clip | None = None  # the compared take, held by its clip
        self.generation: dict = {}  # UI-independent generation settings (model, seed, steps...)
        self.path: Path | None = Path(path) if path is not None else None  # the clip file it came from
        self.project_path: Path | None = None  # the .handproj it was loaded from / saved to
        self.revision = 0

    # --- clip and takes -------------------------------------------------------------------
    @property
    def clip(self) -> Clip:
        return self._takes[self._current].clip

    @clip.setter
    def clip(self, clip: Clip) -> None:
        self.set_clip(clip)

    def set_clip(self, clip: Clip, path: str | os.PathLike | None = None) -> None:
        """Replace the current take's clip without undo (the ``SetClip`` command is the undoable
        edit); drops keys past the new end. Emits ``clip`` then, if it moved, ``frame``."""
        if not isinstance(clip, Clip):
            raise TypeError(f"clip must be an engine Clip; got {type(clip).__name__}")
        takes = list(self._takes)
        takes[self._current] = Take(self.current_take.name, clip)
        self.path = Path(path) if path is not None else None
        self._set_takes(takes, self._current)

    @property
    def takes(self) -> tuple[Take, ...]:
        return tuple(self._takes)

    @property
    def current_take_index(self) -> int:
        return self._current

    @property
    def current_take(self) -> Take:
        return self._takes[self._current]

    def take_index(self, name: str) -> int:
        for i, t in enumerate(self._takes):
            if t.name == name:
                return i
        raise ValueError(f"no take named {name!r}; takes: {[t.name for t in self._takes]}")

    def unique_take_name(self, base: str = "Take") -> str:
        names = {t.name for t in self._takes}
        if base not in names and base != "Take":
            return base
        n = len(self._takes) + 1
        while f"{base} {n}" in names:
            n += 1
        return f"{base} {n}"

    @property
    def num_frames(self) -> int:
        return self.clip.num_frames

    @property
    def fps(self) -> float:
        return self.clip.fps

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

    # --- keys ---------------------------------------------------------------------------
    def key_frames(self, track: str) -> list[int]:
        """Sorted frames that hold a key on ``track``."""
        return sorted(self._keys[check_track(track)])

    def key_values(self, track: str, frame: int) -> np.ndarray:
        try:
            return self._keys[check_track(track)][frame].copy()
        except KeyError:
            raise ValueError(f"no key on {track} at frame {frame}") from None

    def has_key(self, track: str, frame: int) -> bool:
        return frame in self._keys[check_track(track)]

    def all_keys(self) -> list[KeyId]:
        """Every key as (track, frame), track order then frame order."""
        return [(t, f) for t in TRACKS for f in sorted(self._keys[t])]

    @property
    def num_keys(self) -> int:
        return sum(len(k) for k in self._keys.values())

    # --- selection ------------------------------------------------------------------------
    @property
    def selection(self) -> frozenset[KeyId]:
        return self._selection

    def select(self, keys, mode: str = "replace") -> None:
        """Select keys: ``mode`` 'replace', 'add' or 'toggle'. Unknown keys are an error.
        Selection is view state: not an undoable edit and not a change to save."""
        keys = frozenset((check_track(t), int(f)) for t, f in keys)
        missing = [k for k in keys if not self.has_key(*k)]
        if missing:
            raise ValueError(f"cannot select keys that do not exist: {sorted(missing)}")
        if mode == "replace":
            new = keys
        elif mode == "add":
            new = self._selection | keys
        elif mode == "toggle":
            new = self._selection ^ keys
        else:
            raise ValueError(f"mode must be 'replace', 'add' or 'toggle'; got {mode!r}")
        self._set_selection(new)

    # --- constraints --------------------------------------------------------------------
    @property
    def interval(self) -> tuple[int, int] | None:
        return self._constraints.interval

    @property
    def locked_hands(self) -> frozenset[str]:
        return self._constraints.locked_hands

    def wrist_path(self, hand: str) -> tuple:
        """((frame, (x, y, z)), ...) pinned for ``hand``; empty when none."""
        return self._constraints.wrist_paths.get(check_hand(hand), ())

    # --- take compare ---------------------------------------------------------------------
    @property
    def compare_take(self) -> int | None:
        """Index of the take shown as a ghost for comparison; None when not comparing."""
        if self._compare_clip is None:
            return None
        for i, t in enumerate(self._takes):
            if t.clip is self._compare_clip:
                return i
        return None

    @property
    def compare_clip(self) -> Clip | None:
        """The compared take's clip, or None when not comparing or when it is the current take."""
        i = self.compare_take
        return None if i is None or i == self._current else self._takes[i].clip

    def set_compare_take(self, index: int | None) -> None:
        """Show take ``index`` as a ghost beside the current take (None stops comparing).
        View state: no undo, not saved. Emits ``compare`` (the index) when it changes."""
        if index is None:
            clip = None
        else:
            if isinstance(index, bool):
                raise TypeError("compare take must be an integer index or None; got bool")
            try:
                index = operator.index(index)
            except TypeError:
                raise TypeError(f"compare take must be an integer index or None; got {type(index).__name__}") from None
            if not 0 <= index < len(self._takes):
                raise ValueError(f"compare take must be in 0..{len(self._takes) - 1}; got {index}")
            clip = self._takes[index].clip
        if clip is not self._compare_clip:
            self._compare_clip = clip
            self.events.compare.emit(self.compare_take)

    # --- prompt -------------------------------------------------------------------------
    @property
    def prompt(self) -> Prompt:
        return self._prompt

    def set_prompt(self, prompt: Prompt | str) -> None:
        """The prompt fields (saved with the project; text fields keep their own undo)."""
        prompt = Prompt(text=prompt) if isinstance(prompt, str) else prompt
        if not isinstance(prompt, Prompt):
            raise TypeError(f"prompt must be a Prompt or str; got {type(prompt).__name__}")
        if prompt != self._prompt:
            self._prompt = prompt
            self.events.prompt.emit(prompt)
            self._touch()

    # --- mutators for commands ------------------------------------------------------------
    def _touch(self) -> None:
        """Count one edit (done or undone); autosave compares revisions."""
        self.revision += 1
        self.events.changed.emit(self.revision)

    def _set_takes(self, takes: list[Take], current: int) -> None:
        if not takes:
            raise ValueError("a document needs at least one take")
        if not 0 <= current < len(takes):
            raise ValueError(f"current take must be in 0..{len(takes) - 1}; got {current}")
        old_clip = self.clip
        self._takes = list(takes)
        self._current = current
        compare_gone = self._compare_clip is not None and self.compare_take is None
        if compare_gone:
            self._compare_clip = None
        self.events.takes.emit(self.takes)
        if compare_gone:
            self.events.compare.emit(None)
        if self.clip is not old_clip:
            self._trim_to(self.clip.num_frames)
            old_frame = self._frame
            self._frame = min(self._frame, self.clip.num_frames - 1)
            self.events.clip.emit(self.clip)
            if self._frame != old_frame:
                self.events.frame.emit(self._frame)

    def _set_keys(self, keys: dict[str, dict[int, np.ndarray]]) -> None:
        """Replace every key ({track: {frame: values}}); drops selected keys that went away."""
        new = {t: {} for t in TRACKS}
        for t, frames in keys.items():
            for f, v in frames.items():
                if not 0 <= f < self.num_frames:
                    raise ValueError(f"key frame must be in 0..{self.num_frames - 1}; got {t} at {f}")
                new[check_track(t)][int(f)] = check_values(t, v)
        self._keys = new
        self.events.keys.emit(self.all_keys())
        sel = frozenset(k for k in self._selection if self.has_key(*k))
        if sel != self._selection:
            self._set_selection(sel)

    def _keys_copy(self) -> dict[str, dict[int, np.ndarray]]:
        return {t: {f: v.copy() for f, v in k.items()} for t, k in self._keys.items()}

    def _set_selection(self, selection: frozenset[KeyId]) -> None:
        if selection != self._selection:
            self._selection = frozenset(selection)
            self.events.selection.emit(self._selection)

    def _set_constraints(self, constraints: Constraints) -> None:
        self._constraints = constraints
        self.events.constraints.emit(constraints)

    def _snapshot(self) -> dict:
        """Keys, selection and constraints (what a clip change may trim), for undo."""
        return {"keys": self._keys_copy(), "selection": self._selection,
                "constraints": copy.deepcopy(self._constraints)}

    def _restore(self, snap: dict) -> None:
        self._set_keys(snap["keys"])
        self._set_selection(snap["selection"])
        self._set_constraints(copy.deepcopy(snap["constraints"]))

    def _trim_to(self, num_frames: int) -> None:
        """Drop keys, path points and interval frames at or past ``num_frames``."""
        if any(f >= num_frames for k in self._keys.values() for f in k):
            self._set_keys({t: {f: v for f, v in k.items() if f < num_frames} for t, k in self._keys.items()})
        c = self._constraints
        interval = c.interval
        if interval is not None:
            a, b = interval
            interval = None if a >= num_frames else (a, min(b, num_frames - 1))
        paths = {h: tuple(p for p in pts if p[0] < num_frames) for h, pts in c.wrist_paths.items()}
        paths = {h: p for h, p in paths.items() if p}
        if interval != c.interval or paths != c.wrist_paths:
            self._set_constraints(Constraints(interval, c.locked_hands, paths))

    def adopt(self, other: "Document") -> None:
        """Take over all of ``other``'s state (open project / new), keeping this object and its
        listeners; emits every event once."""
        self._takes, self._current = list(other._takes), other._current
        self._keys = other._keys_copy()
        self._selection = frozenset()
        self._constraints = copy.deepcopy(other._constraints)
        self._prompt, self.generation = other._prompt, dict(other.generation)
        self._compare_clip = None
        self.path, self.project_path = other.path, other.project_path
        self._frame = min(other._frame, self.clip.num_frames - 1)
        self.events.takes.emit(self.takes)
        self.events.clip.emit(self.clip)
        self.events.frame.emit(self._frame)
        self.events.keys.emit(self.all_keys())
        self.events.selection.emit(self._selection)
        self.events.constraints.emit(self._constraints)
        self.events.prompt.emit(self._prompt)
        self.events.compare.emit(None)
        self._touch()


__all__ = ["Document", "Take", "Constraints", "KeyId", "check_path", "HANDS"]
