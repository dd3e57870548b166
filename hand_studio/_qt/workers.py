"""The one place that puts engine generators on threads (superqt's GeneratorWorker pattern).

``GeneratorWorker(make_generator)`` calls ``make_generator()`` on its own QThread (so loading a
model or validating input never blocks the UI) and iterates the generator there. Everything it
reports comes out as signals of the worker object, which lives on the GUI thread:

- ``sig_yielded(item)``: the newest item. Items are coalesced, not queued: while the UI has not
  taken the last one, newer ones replace it, and at most ``max_rate`` are delivered per second,
  so a slow viewport drops intermediate previews instead of falling behind. With ``max_hold_ms``
  the runner also pauses after each delivery, between two items, until the UI calls
  ``release()`` (it has drawn the item) or ``max_hold_ms`` has passed (see "Holding" below);
- ``sig_finished(item)``: the generator ran out; ``item`` is the last thing it yielded
  (never dropped);
- ``sig_errored(message)``: making or running the generator raised; the engine's message verbatim;
- ``sig_cancelled()``: ``cancel()`` was honoured.

``cancel()`` asks the runner to ``close()`` the generator at its next yield; threads are never
killed. ``wait()`` blocks until the thread is gone (the main window calls it when closing).
Exactly one of finished / errored / cancelled is emitted, after the thread has stopped.

An engine call that is not a generator (captioning, an importer) goes through ``single_call``:
one progress item, the call, then ``{"result": value}``; cancelling discards the result.

Starting a job first calls ``freeze_long_lived_heap()``: when the heap has grown since it was
last frozen (startup, a model or a big library loaded), it is moved out of the cyclic
collector's reach (``gc.freeze``). Otherwise a job that allocates many objects (an FBX export
builds thousands of records) makes a full collection due, and that walks every object of the
process (~310k with torch, Qt and the engine loaded: 160-210 ms on the 2-core machine) holding
the GIL, so the GUI thread froze for as long (issue 7).

Holding (``max_hold_ms``, issue 7 again): drawing one preview is a chain of work on other
threads of this process: the GUI thread poses and uploads the hands, then Qt composites the
whole window through OpenGL, and on Mesa llvmpipe that rasterisation runs on llvmpipe's own
threads while the GUI thread waits for them. A runner that keeps computing takes the CPU from
exactly those threads: on the 2-core machine with a training run beside the app, in a 54 ms
frozen frame the runner used 30 ms of CPU, the GUI and llvmpipe threads 20 ms, and the GUI thread
spent 21 ms runnable but not running (perf sched_switch, system wide). Lowering the runner's
priority cannot express "after the GUI": niceness stops at 19, and a process started with
``nice -n 19`` (the tests) already has every thread there. So the runner steps aside instead:
it stops between two items while the UI draws the one just delivered (the wait releases the GIL
too) and goes on when the UI releases it, or after ``max_hold_ms`` at the latest (a slow frame
delays the job by that much, no more); after ``UNRELEASED_HOLDS_TO_STOP`` holds in a row that
were never released it stops holding, so a consumer that never releases barely slows the job. The items themselves are computed exactly as before.
Measured with the prompt panel's previews (500 steps, 10 A/B runs under that load): delivery to
frame on screen, median 35 -> 24 ms, worst 83 -> 36 ms; the UI's longest freeze 36-85 -> 32-45 ms;
the job ~5 % longer.
"""
from __future__ import annotations

import gc
import os
import sys
import threading
import time
from typing import Callable, Iterator

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

# Previews per second. Any update of a window holding the GL viewport re-composites the whole
# window: ~20 ms on Mesa llvmpipe (1200x800, 2 busy cores), so 12/s keeps the UI thread ~75 % idle.
DEFAULT_MAX_RATE = 12.0


def _lower_priority(niceness: int = 10) -> None:
    """Make the calling thread yield the CPU to the GUI thread (Linux: niceness is per thread;
    elsewhere, or without permission, nothing happens)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + niceness)
    except (AttributeError, OSError):
        pass


# Refreeze once the heap has grown by this many allocator blocks since the last freeze (~3.4
# blocks per tracked object here): what a full collection still walks stays below ~30k objects,
# ~15 ms on the loaded 2-core machine.
REFREEZE_BLOCKS = 100_000
_frozen_at_blocks: int | None = None  # sys.getallocatedblocks() at the last freeze

# A worker whose UI left this many holds in a row unreleased until the next delivery stops holding
# for the rest of its job (a consumer that never releases: the job runs at full speed again).
UNRELEASED_HOLDS_TO_STOP = 3


def freeze_long_lived_heap(force: bool = False) -> bool:
    """Collect the young generations (cheap), then move every object alive now into the
    permanent generation, which the cyclic collector never walks: full collections triggered
    later on any thread (GUI or worker) only walk what was created since. Does nothing unless
    ``force`` or the heap grew by ``REFREEZE_BLOCKS`` since the last freeze (the first call
    always freezes); True when it froze. Costs ~1 ms: a young collection and two list splices.

    Reference counting still frees frozen objects; only a reference cycle alive at a freeze that
    becomes garbage later is never collected. Freezing on growth, not on every job, keeps that to
    the objects alive when the heap reached a new size (the modules, the model, the window)."""
    global _frozen_at_blocks
    blocks = sys.getallocatedblocks()  # O(arenas): microseconds
    if not force and _frozen_at_blocks is not None and blocks - _frozen_at_blocks < REFREEZE_BLOCKS:
        _frozen_at_blocks = min(_frozen_at_blocks, blocks)  # frozen objects freed: count growth from here
        return False
    gc.collect(1)
    gc.freeze()
    _frozen_at_blocks = sys.getallocatedblocks()
    return True


class _Runner(QObject):
    """Lives on the worker thread; iterates the generator and hands items to the worker."""

    sig_item = Signal()
    """A new item is waiting in the worker's slot."""
    sig_done = Signal(str, object)
    """('finished', last item) · ('errored', message) · ('cancelled', None)."""

    def __init__(self, make_generator: Callable[[], Iterator], worker: "GeneratorWorker"):
        super().__init__()
        self._make = make_generator
        self._worker = worker

    @Slot()
    def run(self) -> None:
        _lower_priority()
        w = self._worker
        outcome, value = "finished", None
        gen = None
        try:
            if w._cancel.is_set():
                outcome = "cancelled"
            else:
                gen = self._make()
                for item in gen:
                    value = item
                    if w._cancel.is_set():
                        outcome = "cancelled"
                        break
                    if w._offer(item):
                        self.sig_item.emit()
                    w._wait_while_held()  # the UI is drawing a delivered item: step aside
        except Exception as e:  # noqa: BLE001 - shown to the user verbatim
            outcome, value = "errored", str(e) or type(e).__name__
        finally:
            if gen is not None and hasattr(gen, "close"):
                try:
                    gen.close()  # cancel: GeneratorExit inside the engine's loop
                except Exception:  # noqa: BLE001
                    pass
        if outcome == "cancelled":
            value = None
        self.thread().quit()  # from here: the GUI thread may be blocked in wait()
        self.sig_done.emit(outcome, value)


class GeneratorWorker(QObject):
    """Runs one engine generator on a QThread; see the module docstring."""

    sig_yielded = Signal(object)
    """The newest item from the generator (intermediate ones may be dropped)."""
    sig_finished = Signal(object)
    """The generator is exhausted; the value is the last item it yielded."""
    sig_errored = Signal(str)
    """Making or running the generator raised; the exception's message."""
    sig_cancelled = Signal()
    """The generator was closed because ``cancel()`` was called."""

    def __init__(self, make_generator: Callable[[], Iterator], max_rate: float = DEFAULT_MAX_RATE,
                 parent: QObject | None = None, max_hold_ms: float = 0.0):
        super().__init__(parent)
        if not callable(make_generator):
            raise TypeError(f"make_generator must be callable; got {type(make_generator).__name__}")
        self._cancel = threading.Event()
        self._max_hold = max(0.0, float(max_hold_ms)) / 1000.0
        self._go = threading.Event()  # cleared while the UI draws a delivered item (a hold)
        self._go.set()
        self._hold_deadline = 0.0  # time.monotonic() at which a hold ends by itself
        self._unreleased = 0  # deliveries in a row whose hold the UI never released
        self._lock = threading.Lock()
        self._latest = None
        self._has_latest = False
        self._pending = False  # a delivery is scheduled on the GUI thread
        self._min_interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self._last_delivery = 0.0
        self._state = "idle"  # idle -> running -> done
        self._thread = QThread()
        self._thread.setObjectName("hand-studio-generator")
        self._runner = _Runner(make_generator, self)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.run)
        self._runner.sig_item.connect(self._on_item)  # queued: runner is on the other thread
        self._runner.sig_done.connect(self._on_runner_done)
        self._thread.finished.connect(self._on_thread_finished)  # queued; the GUI never blocks on it
        self._outcome: tuple[str, object] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._deliver)
        self.delivered = 0  # previews handed to the UI (tests, diagnostics)
        self.offered = 0  # items the generator yielded
        self.held_s = 0.0  # seconds the runner stood still for the UI (diagnostics)
        self.holds_timed_out = 0  # holds that ended at max_hold_ms, not by release() (diagnostics)

    # --- control (GUI thread) -----------------------------------------------------------------
    def start(self) -> "GeneratorWorker":
        if self._state != "idle":
            raise RuntimeError("a GeneratorWorker runs once")
        self._state = "running"
        freeze_long_lived_heap()  # before the job allocates; see the module docstring
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Close the generator at its next yield (or before it starts)."""
        self._cancel.set()
        self._go.set()

    def release(self) -> None:
        """The UI has drawn the last delivered item: a held runner goes on (no-op otherwise)."""
        self._go.set()

    @property
    def held(self) -> bool:
        """A delivered item is being drawn and the runner waits for ``release()``."""
        return not self._go.is_set()

    @property
    def is_running(self) -> bool:
        return self._state == "running"

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout_ms: int = 30000) -> bool:
        """Block until the worker thread has stopped; True if it did within ``timeout_ms``."""
        if self._state == "idle":
            return True
        return self._thread.wait(timeout_ms)

    # --- worker thread -> GUI thread -----------------------------------------------------------
    def _wait_while_held(self) -> None:
        """Runner thread, between two items: while the UI draws the last delivered one, wait
        (without the GIL) until ``release()``, a cancel, or the hold's deadline."""
        if self._go.is_set():
            return
        t0 = time.monotonic()
        remaining = self._hold_deadline - t0
        if remaining > 0 and not self._go.wait(remaining):
            self.holds_timed_out += 1
        self.held_s += time.monotonic() - t0

    def _offer(self, item) -> bool:
        """Runner thread: keep ``item`` as the newest; True when the GUI must be told."""
        with self._lock:
            self.offered += 1
            self._latest, self._has_latest = item, True
            if self._pending:
                return False
            self._pending = True
            return True

    @Slot()
    def _on_item(self) -> None:
        wait = self._last_delivery + self._min_interval - time.monotonic()
        if wait > 0:
            self._timer.start(max(1, int(wait * 1000)))
        else:
            self._deliver()

    @Slot()
    def _deliver(self) -> None:
        with self._lock:
            item, has = self._latest, self._has_latest
            self._latest, self._has_latest, self._pending = None, False, False
        if not has or self._state != "running" or self._cancel.is_set():
            return
        self._last_delivery = time.monotonic()
        self.delivered += 1
        if self._max_hold > 0:
            self._unreleased = 0 if self._go.is_set() else self._unreleased + 1
            if self._unreleased >= UNRELEASED_HOLDS_TO_STOP:  # nobody releases: stop holding
                self._max_hold = 0.0
                self._go.set()
            else:  # the deadline first: the runner reads it once it sees the hold
                self._hold_deadline = self._last_delivery + self._max_hold
                self._go.clear()
        self.sig_yielded.emit(item)

    @Slot(str, object)
    def _on_runner_done(self, outcome: str, value) -> None:
        self._outcome = (outcome, value)
        self._timer.stop()
        self._go.set()
        with self._lock:
            self._latest, self._has_latest, self._pending = None, False, False

    @Slot()
    def _on_thread_finished(self) -> None:
        self._thread.wait()  # returns at once: the thread is past its last instruction
        outcome, value = self._outcome or ("errored", "the worker thread stopped without a result")
        self._state = "done"
        if outcome == "finished":
            self.sig_finished.emit(value)
        elif outcome == "errored":
            self.sig_errored.emit(value)
        else:
            self.sig_cancelled.emit()


def single_call(fn: Callable, *args, text: str = "working…", **kwargs) -> Iterator[dict]:
    """One engine call as a generator: ``{"step": 0, "of": 1, "text"}``, then the call, then
    ``{"step": 1, "of": 1, "result": value}`` (the worker's finished item). It cannot be
    interrupted; a cancel during the call discards its result."""
    yield {"step": 0, "of": 1, "text": text}
    yield {"step": 1, "of": 1, "result": fn(*args, **kwargs)}


def start_worker(make_generator: Callable[[], Iterator], parent: QObject | None = None,
                 max_rate: float = DEFAULT_MAX_RATE, max_hold_ms: float = 0.0) -> GeneratorWorker:
    """Make a GeneratorWorker and start it (connect signals first when ordering matters:
    nothing is delivered before control returns to the event loop)."""
    return GeneratorWorker(make_generator, max_rate, parent, max_hold_ms).start()


__all__ = ["GeneratorWorker", "freeze_long_lived_heap", "single_call", "start_worker"]
