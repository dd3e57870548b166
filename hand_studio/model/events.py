"""A minimal napari-style event system: ``obj.events.<name>.connect(callback)``.

Callbacks receive one :class:`Event` (``type``, ``source``, ``value``). No Qt, no threads:
emitting calls every callback in connection order, on the caller's thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Callback = Callable[["Event"], Any]


@dataclass(frozen=True)
class Event:
    """One emission: what happened (``type``), on what (``source``), the new ``value``."""

    type: str
    source: Any
    value: Any = None


class EventEmitter:
    """Named event with an ordered list of callbacks."""

    def __init__(self, source: Any, type: str):
        self.source = source
        self.type = type
        self._callbacks: list[Callback] = []
        self._blocked = 0

    def connect(self, callback: Callback) -> Callback:
        """Call ``callback(event)`` on every emit; connecting twice is a no-op. Returns callback."""
        if not callable(callback):
            raise TypeError(f"{self.type}: callback must be callable; got {type(callback).__name__}")
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callback | None = None) -> None:
        """Remove one callback, or all when ``callback`` is None. Unknown callbacks are an error."""
        if callback is None:
            self._callbacks.clear()
            return
        try:
            self._callbacks.remove(callback)
        except ValueError:
            raise ValueError(f"{self.type}: {callback!r} is not connected") from None

    @property
    def callbacks(self) -> tuple[Callback, ...]:
        return tuple(self._callbacks)

    def emit(self, value: Any = None) -> Event:
        event = Event(self.type, self.source, value)
        if self._blocked:
            return event
        for cb in list(self._callbacks):
            cb(event)
        return event

    __call__ = emit

    def blocker(self) -> "_Blocker":
        """``with emitter.blocker(): ...`` emits nothing inside the block."""
        return _Blocker(self)


class _Blocker:
    def __init__(self, emitter: EventEmitter):
        self._emitter = emitter

    def __enter__(self):
        self._emitter._blocked += 1

    def __exit__(self, *exc):
        self._emitter._blocked -= 1


class EmitterGroup:
    """``EmitterGroup(source, "frame", "clip")`` -> ``group.frame``, ``group.clip`` emitters."""

    def __init__(self, source: Any, *names: str):
        self._emitters: dict[str, EventEmitter] = {}
        for name in names:
            if not name.isidentifier() or hasattr(self, name):
                raise ValueError(f"event name must be a free identifier; got {name!r}")
            self._emitters[name] = EventEmitter(source, name)
            setattr(self, name, self._emitters[name])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._emitters)

    def disconnect(self, callback: Callback) -> None:
        """Remove ``callback`` from every emitter it is connected to."""
        for em in self._emitters.values():
            if callback in em.callbacks:
                em.disconnect(callback)
