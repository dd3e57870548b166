"""Every document edit as an undoable command, plus a pure-Python undo history. No Qt.

A command checks its input against the document when it is made (a bad edit raises
``ValueError`` there and changes nothing), then ``do()`` / ``undo()`` flip the document between
the two states. Continuous drags push one command per mouse move with the same ``drag_id``;
``merge_with`` folds them so one undo reverts the whole drag. ``hand_studio._qt.undo`` wraps
these in QUndoCommands for the window's QUndoStack; ``UndoHistory`` is the same stack for tests
and scripts without Qt.
"""
from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path


from engine.motion.clip import Clip
from hand_studio.model.document import Constraints, Document, KeyId, Take, check_path
from hand_studio.model.tracks import HANDS, TRACKS, check_hand, check_track, track_values

_drag_ids = itertools.count(1)


def new_drag_id() -> int:
    """A fresh id for one continuous drag (its commands merge; the next drag's do not)."""
    return next(_drag_ids)


class Command:
    """Base: subclasses set ``text`` and implement ``_do`` / ``_undo``."""

    text = "Edit"
    merge_id = -1  # >= 0: consecutive commands of one class with equal drag_id may merge

    def __init__(self, document: Document):
        if not isinstance(document, Document):
            raise TypeError(f"document must be a Document; got {type(document).__name__}")
        self.document = document

    def do(self) -> None:
        self._do()
        self.document._touch()

    def undo(self) -> None:
        self._undo()
        self.document._touch()

    def merge_with(self, other: "Command") -> bool:
        """Fold ``other`` (already done) into this one; True when merged."""
        return False

    def _do(self) -> None:
        raise NotImplementedError

    def _undo(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.text!r}>"


def _check_keys(document: Document, keys) -> list[KeyId]:
    keys = sorted({(check_track(t), int(f)) for t, f in keys})
    if not keys:
        raise ValueError("no keys given (select keys first)")
    missing = [k for k in keys if not document.has_key(*k)]
    if missing:
        raise ValueError(f"no such keys: {missing}")
    return keys


def _fmt_track(track: str) -> str:
    return track.replace("_", " ")


# --- keys -------------------------------------------------------------------------------
class AddKeys(Command):
    """Key the current pose: on each of ``tracks`` at ``frame`` (default: the playhead) store
    the clip's values there, replacing a key already on that frame. Selects the new keys."""

    def __init__(self, document: Document, tracks=TRACKS, frame: int | None = None):
        super().__init__(document)
        frame = document.frame if frame is None else int(frame)
        tracks = [check_track(t) for t in tracks]
        if not tracks:
            raise ValueError("no tracks given to key")
        values = {t: track_values(document.clip, t, frame) for t in tracks}  # checks the frame
        self.before, self.sel_before = document._keys_copy(), document.selection
        self.after = document._keys_copy()
        for t, v in values.items():
            self.after[t][frame] = v
        self.new_selection = frozenset((t, frame) for t in tracks)
        self.text = f"Add key at frame {frame}"

    def _do(self):
        self.document._set_keys(self.after)
        self.document._set_selection(self.new_selection)

    def _undo(self):
        self.document._set_keys(self.before)
        self.document._set_selection(self.sel_before)


class DeleteKeys(Command):
    """Remove keys (default: the selection)."""

    def __init__(self, document: Document, keys=None):
        super().__init__(document)
        self.keys = _check_keys(document, document.selection if keys is None else keys)
        self.before, self.sel_before = document._keys_copy(), document.selection
        self.after = document._keys_copy()
        for t, f in self.keys:
            del self.after[t][f]
        self.text = f"Delete {len(self.keys)} key{'s' * (len(self.keys) != 1)}"

    def _do(self):
        self.document._set_keys(self.after)

    def _undo(self):
        self.document._set_keys(self.before)
        self.document._set_selection(self.sel_before)


def _shifted(document: Document, keys: list[KeyId], delta: int, what: str, moving: bool) -> list[KeyId]:
    """Keys shifted by ``delta`` frames; ValueError if one leaves the clip or lands on another
    key (keys that move away free their frames when ``moving``)."""
    last = document.num_frames - 1
    out = []
    for t, f in keys:
        g = f + delta
        if not 0 <= g <= last:
            edge = "past the clip end" if g > last else "before the first frame"
            raise ValueError(f"cannot {what} keys {edge}: the key on {_fmt_track(t)} at frame {f} "
                             f"would land on frame {g}; the clip has frames 0..{last}")
        out.append((t, g))
    leaving = set(keys) if moving else set()
    for t, g in out:
        if document.has_key(t, g) and (t, g) not in leaving:
            raise ValueError(f"cannot {what} keys onto frame {g} of {_fmt_track(t)}: a key is already there "
                             "(one key per frame per track)")
    return out


class MoveKeys(Command):
    """Shift keys by whole frames, values unchanged. A drag pushes one per mouse move with the
    same ``drag_id``; they merge into one command."""

    merge_id = 1

    def __init__(self, document: Document, keys, delta: int, drag_id: int | None = None):
        super().__init__(document)
        self.src = _check_keys(document, keys)
        self.delta = int(delta)
        if self.delta != delta:
            raise ValueError(f"delta must be a whole number of frames; got {delta}")
        self.dst = _shifted(document, self.src, self.delta, "move", moving=True)
        self.drag_id = drag_id
        self.sel_before = document.selection
        self._text()

    def _text(self):
        n = len(self.src)
        self.text = f"Move {n} key{'s' * (n != 1)} by {self.delta:+d} frame{'s' * (abs(self.delta) != 1)}"

    def _move(self, src, dst, selection):
        doc = self.document
        keys = doc._keys_copy()
        values = [keys[t].pop(f) for t, f in src]
        for (t, g), v in zip(dst, values):
            keys[t][g] = v
        doc._set_keys(keys)
        doc._set_selection(selection)

    def _do(self):
        self._move(self.src, self.dst, frozenset(self.dst))

    def _undo(self):
        self._move(self.dst, self.src, self.sel_before)

    def merge_with(self, other: Command) -> bool:
        if not (isinstance(other, MoveKeys) and self.drag_id is not None and other.drag_id == self.drag_id
                and sorted(other.src) == sorted(self.dst)):
            return False
        moved = dict(zip(self.dst, self.src))  # current position -> original
        self.src = [moved[k] for k in other.src]
        self.dst = list(other.dst)
        self.delta += other.delta
        self._text()
        return True


class DuplicateKeys(Command):
    """Copy keys ``offset`` frames later (or earlier); the copies become the selection."""

    def __init__(self, document: Document, keys, offset: int):
        super().__init__(document)
        self.src = _check_keys(document, keys)
        if int(offset) == 0:
            raise ValueError("duplicate offset must not be 0 (the copies would land on the keys)")
        self.dst = _shifted(document, self.src, int(offset), "duplicate", moving=False)
        self.before, self.sel_before = document._keys_copy(), document.selection
        self.after = document._keys_copy()
        for (t, f), (_, g) in zip(self.src, self.dst):
            self.after[t][g] = self.after[t][f].copy()
        self.text = f"Duplicate {len(self.src)} key{'s' * (len(self.src) != 1)}"

    def _do(self):
        self.document._set_keys(self.after)
        self.document._set_selection(frozenset(self.dst))

    def _undo(self):
        self.document._set_keys(self.before)
        self.document._set_selection(self.sel_before)


def duplicate_offset(document: Document, keys) -> int:
    """Where Duplicate puts copies: starting at the playhead, or right after the selection when
    the playhead is on its first key or the copies would not fit there."""
    frames = [f for _, f in keys]
    first, last = min(frames), max(frames)
    to_playhead = document.frame - first
    if to_playhead != 0:
        try:
            _shifted(document, sorted(keys), to_playhead, "duplicate", moving=False)
            return to_playhead
        except ValueError:
            pass
    return last - first + 1


# --- constraints ------------------------------------------------------------------------
class _ConstraintsCommand(Command):
    def __init__(self, document: Document, after: Constraints):
        super().__init__(document)
        self.before = copy.deepcopy(document._constraints)
        self.after = after

    def _do(self):
        self.document._set_constraints(copy.deepcopy(self.after))

    def _undo(self):
        self.document._set_constraints(copy.deepcopy(self.before))


class SetInterval(_ConstraintsCommand):
    """Select the interval [first, last] (inclusive) to in-between or regenerate; None clears it.
    Region drags merge by ``drag_id``."""

    merge_id = 2

    def __init__(self, document: Document, interval: tuple[int, int] | None, drag_id: int | None = None):
        if interval is not None:
            a, b = (int(v) for v in interval)
            last = document.num_frames - 1
            if not (0 <= a <= b <= last):
                raise ValueError(f"interval must satisfy 0 <= first <= last <= {last}; got {a}..{b}")
            interval = (a, b)
        c = document._constraints
        super().__init__(document, Constraints(interval, c.locked_hands, dict(c.wrist_paths)))
        self.drag_id = drag_id
        self.text = "Clear interval" if interval is None else f"Set interval {interval[0]}..{interval[1]}"

    def merge_with(self, other: Command) -> bool:
        if isinstance(other, SetInterval) and self.drag_id is not None and other.drag_id == self.drag_id:
            self.after, self.text = other.after, other.text
            return True
        return False


class SetHandLocked(_ConstraintsCommand):
    """Lock a hand (keep it exactly when regenerating) or unlock it."""

    def __init__(self, document: Document, hand: str, locked: bool = True):
        check_hand(hand)
        c = document._constraints
        locked_hands = c.locked_hands | {hand} if locked else c.locked_hands - {hand}
        if locked and locked_hands == frozenset(HANDS):
            raise ValueError("cannot lock both hands: nothing would be left to generate")
        super().__init__(document, Constraints(c.interval, frozenset(locked_hands), dict(c.wrist_paths)))
        self.text = f"{'Lock' if locked else 'Unlock'} {hand} hand"


class SetWristPath(_ConstraintsCommand):
    """Pin a wrist to a path of (frame, (x, y, z)) points; an empty list clears it. A viewport
    drag pushes one per mouse move with the same ``drag_id`` (and hand); they merge into one."""

    merge_id = 3

    def __init__(self, document: Document, hand: str, points, drag_id: int | None = None):
        path = check_path(hand, points, document.num_frames)
        c = document._constraints
        paths = dict(c.wrist_paths)
        if path:
            paths[hand] = path
        else:
            paths.pop(hand, None)
        super().__init__(document, Constraints(c.interval, c.locked_hands, paths))
        self.hand = hand
        self.drag_id = drag_id
        self.text = f"Pin {hand} wrist path ({len(path)} points)" if path else f"Clear {hand} wrist path"
        if drag_id is not None and path:
            self.text = f"Drag {hand} wrist path"

    def merge_with(self, other: Command) -> bool:
        if (isinstance(other, SetWristPath) and self.drag_id is not None and other.drag_id == self.drag_id
                and other.hand == self.hand):
            self.after, self.text = other.after, other.text
            return True
        return False


# --- takes and clips --------------------------------------------------------------------
class _TakesCommand(Command):
    """Replaces the takes list / current take; a shorter clip trims keys, restored on undo."""

    def __init__(self, document: Document, takes: list[Take], current: int):
        super().__init__(document)
        self.before = (list(document._takes), document.current_take_index)
        self.after = (list(takes), current)
        self.snapshot = document._snapshot()
        self.path_before = self.path_after = document.path

    def _do(self):
        self.document.path = self.path_after
        self.document._set_takes(*self.after)

    def _undo(self):
        self.document.path = self.path_before
        self.document._set_takes(*self.before)
        self.document._restore(self.snapshot)


def _check_name(document: Document, name: str, ignore: int | None = None) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"take name must be a non-empty string; got {name!r}")
    name = name.strip()
    if any(t.name == name for i, t in enumerate(document.takes) if i != ignore):
        raise ValueError(f"a take named {name!r} already exists")
    return name


def _check_index(document: Document, index: int) -> int:
    n = len(document.takes)
    if not 0 <= int(index) < n:
        raise ValueError(f"take index must be in 0..{n - 1}; got {index}")
    return int(index)


class AddTake(_TakesCommand):
    """Append a take (a generation result or an import) and switch to it."""

    def __init__(self, document: Document, clip: Clip, name: str | None = None, generated=None):
        name = _check_name(document, name if name is not None else document.unique_take_name())
        take = Take(name, clip, generated)
        super().__init__(document, [*document.takes, take], len(document.takes))
        self.text = f"Add take {name!r}"


class RenameTake(_TakesCommand):
    def __init__(self, document: Document, index: int, name: str):
        index = _check_index(document, index)
        name = _check_name(document, name, ignore=index)
        takes = list(document.takes)
        old = takes[index]
        if name == old.name:
            raise ValueError(f"take {index} is already named {name!r}")
        takes[index] = Take(name, old.clip, old.generated)
        super().__init__(document, takes, document.current_take_index)
        self.text = f"Rename take {old.name!r} to {name!r}"


class DeleteTake(_TakesCommand):
    """Delete a take; deleting the current one switches to its neighbour. The last take stays."""

    def __init__(self, document: Document, index: int):
        index = _check_index(document, index)
        if len(document.takes) == 1:
            raise ValueError("cannot delete the only take")
        takes = list(document.takes)
        gone = takes.pop(index)
        cur = document.current_take_index
        cur = cur - 1 if index < cur else min(cur, len(takes) - 1)
        super().__init__(document, takes, cur)
        self.text = f"Delete take {gone.name!r}"


class SwitchTake(_TakesCommand):
    def __init__(self, document: Document, index: int):
        index = _check_index(document, index)
        super().__init__(document, list(document.takes), index)
        self.text = f"Switch to take {document.takes[index].name!r}"


class SetClip(_TakesCommand):
    """Replace the current take's clip (import or generation); ``generated`` (T, 4) marks the
    cells a generator made; ``source`` is the clip file it came from, if any."""

    def __init__(self, document: Document, clip: Clip, generated=None,
                 source: str | os.PathLike | None = None, text: str = "Set clip"):
        takes = list(document.takes)
        cur = document.current_take_index
        takes[cur] = Take(takes[cur].name, clip, generated)
        super().__init__(document, takes, cur)
        if source is not None:
            self.path_after = Path(source)
        self.text = text


# --- history ----------------------------------------------------------------------------
class UndoHistory:
    """QUndoStack's behaviour in pure Python: push (do + merge), undo, redo, a clean mark."""

    def __init__(self):
        self._commands: list[Command] = []
        self._index = 0  # commands [0, index) are done
        self._clean = 0  # index at the clean state; -1 when unreachable

    def push(self, command: Command) -> None:
        command.do()
        del self._commands[self._index:]
        if self._clean > self._index:
            self._clean = -1
        top = self._commands[-1] if self._commands else None
        if (top is not None and command.merge_id >= 0 and type(top) is type(command)
                and top.merge_with(command)):
            if self._clean == self._index:
                self._clean = -1
            return
        self._commands.append(command)
        self._index += 1

    def undo(self) -> None:
        if not self.can_undo:
            raise IndexError("nothing to undo")
        self._index -= 1
        self._commands[self._index].undo()

    def redo(self) -> None:
        if not self.can_redo:
            raise IndexError("nothing to redo")
        self._commands[self._index].do()
        self._index += 1

    @property
    def can_undo(self) -> bool:
        return self._index > 0

    @property
    def can_redo(self) -> bool:
        return self._index < len(self._commands)

    @property
    def undo_text(self) -> str:
        return self._commands[self._index - 1].text if self.can_undo else ""

    @property
    def redo_text(self) -> str:
        return self._commands[self._index].text if self.can_redo else ""

    def __len__(self) -> int:
        return len(self._commands)

    @property
    def index(self) -> int:
        return self._index

    def set_clean(self) -> None:
        self._clean = self._index

    @property
    def is_clean(self) -> bool:
        return self._clean == self._index

    def clear(self) -> None:
        self._commands.clear()
        self._index = self._clean = 0


__all__ = ["Command", "AddKeys", "DeleteKeys", "MoveKeys", "DuplicateKeys", "duplicate_offset",
           "SetInterval", "SetHandLocked", "SetWristPath", "AddTake", "RenameTake", "DeleteTake",
           "SwitchTake", "SetClip", "UndoHistory", "new_drag_id"]
