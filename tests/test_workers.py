"""GeneratorWorker (hand_studio/_qt/workers.py), the one place engine generators go on threads:
results, cancel, and the preview hold (the runner stands still while the UI draws a delivered
item, until release() or max_hold_ms) that keeps generation from starving the GL threads."""
from __future__ import annotations

import threading
import time

import pytest

from hand_studio._qt.workers import UNRELEASED_HOLDS_TO_STOP, GeneratorWorker


def counting(n: int, produced: list, pause_s: float = 0.0):
    """A generator of 0..n-1 that records when it produced each item."""
    for i in range(n):
        if pause_s:
            time.sleep(pause_s)
        produced.append((i, time.monotonic()))
        yield i


def run(qtbot, worker: GeneratorWorker, timeout_ms: int = 10000):
    with qtbot.waitSignal(worker.sig_finished, timeout=timeout_ms) as blocker:
        worker.start()
    assert worker.wait(5000)
    return blocker.args[0]


def test_finishes_with_the_last_item_with_and_without_hold(qtbot):
    for hold in (0.0, 40.0):
        produced, seen = [], []
        w = GeneratorWorker(lambda p=produced: counting(50, p), max_rate=1000.0, max_hold_ms=hold)
        w.sig_yielded.connect(lambda item, w=w: (seen.append(item), w.release()))
        assert run(qtbot, w) == 49
        assert [i for i, _ in produced] == list(range(50)) and seen == sorted(seen) and w.delivered == len(seen) > 0
        assert w.offered == 50 and not w.held


def test_the_runner_waits_for_release(qtbot):
    """A delivered item holds the runner until the UI releases it: a UI that takes 300 ms to draw
    the first preview (and releases nothing meanwhile) sees at most one more item computed (the
    one already in flight) before its release."""
    produced, released_at = [], []
    w = GeneratorWorker(lambda: counting(10, produced, pause_s=0.02), max_rate=1000.0, max_hold_ms=5000.0)
    slow = [True]

    def release_late():
        released_at.append(time.monotonic())
        slow[0] = False
        w.release()

    def draw(item):
        assert w.held
        if slow[0]:
            if not released_at and len(slow) == 1:
                slow.append("timer")
                threading.Timer(0.3, release_late).start()
        else:
            w.release()
    w.sig_yielded.connect(draw)
    run(qtbot, w)
    assert released_at
    before = [i for i, t in produced if t < released_at[0]]
    assert before == [0, 1] or before == [0], before
    assert w.held_s > 0.2 and w.holds_timed_out == 0


def test_an_unreleased_hold_times_out_and_holding_stops(qtbot):
    """Nobody releases: each hold ends at max_hold_ms, and after UNRELEASED_HOLDS_TO_STOP of them
    the worker stops holding, so a UI that never draws cannot slow a job down for long."""
    produced = []
    w = GeneratorWorker(lambda: counting(40, produced, pause_s=0.002), max_rate=1000.0, max_hold_ms=50.0)
    w.sig_yielded.connect(lambda item: None)  # never released
    t0 = time.monotonic()
    run(qtbot, w)
    took = time.monotonic() - t0
    assert 1 <= w.holds_timed_out <= UNRELEASED_HOLDS_TO_STOP
    assert took < 2.0  # at most a few 50 ms holds, not one per item


def test_cancel_ends_a_hold_at_once(qtbot):
    produced = []
    w = GeneratorWorker(lambda: counting(1000, produced, pause_s=0.001), max_rate=1000.0, max_hold_ms=60000.0)
    first = []
    w.sig_yielded.connect(lambda item: first.append(item))  # held for a minute unless cancelled
    with qtbot.waitSignal(w.sig_yielded, timeout=5000):
        w.start()
    t0 = time.monotonic()
    with qtbot.waitSignal(w.sig_cancelled, timeout=5000):
        w.cancel()
    assert w.wait(5000) and time.monotonic() - t0 < 2.0
    assert len(produced) < 1000


def test_bad_generator_factory_is_refused():
    with pytest.raises(TypeError, match="make_generator must be callable"):
        GeneratorWorker(42)
