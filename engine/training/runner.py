"""Training runs as separate processes, so a crash (or a runaway allocation) in training cannot take
the app down. A run is ``python -m engine.training.<script> ... --progress jsonl``; the script
prints one JSON event per line, which ``TrainingRun.poll()`` returns without blocking:

    {"event": "start", "device", "world_size", "windows", "train_config", ...}   (CLUTCH: + "stage")
    {"event": "step", "step", "of", "loss": {...}, "lr", "samples_per_s", "eta_s", "device"}
    {"event": "val", "step", "of", "val": {...}}          (every --val-every steps)
    {"event": "checkpoint", "step", "path", "train_state"}
    {"event": "done", "step", "of", "paused", "model"}  |  {"event": "error", "message", "type"}
    {"event": "exit", "returncode"}                        (added here, always last)

Pause = SIGTERM: the script finishes the step, checkpoints and exits 0; ``resume()`` starts it
again on the same run folder. Cancel = SIGKILL: the last checkpoint stays valid (atomic writes).
A run that starts over (``resume=False``: ``--no-resume``) moves the folder's old run to
``previous/<time>/`` before its ``start`` event (which names it, ``previous_run``); ``resume()``
keeps ``--no-resume`` until that event was seen, so it never continues the old run.

Kinds: ``diffusion`` (engine.training.train_diffusion) and the CLUTCH stages ``shift``,
``clutch-pt`` (pretrain), ``clutch-gr`` (geometric refinement), ``clutch-ift`` (instruction
fine-tuning), each one ``engine.training.train_clutch --stage S`` run in one process.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

# kind -> stage of engine.training.train_clutch (= its RUN_KINDS; kept here so the app never imports torch)
CLUTCH_STAGES = {"shift": "shift", "clutch-pt": "pretrain", "clutch-gr": "refine", "clutch-ift": "instruct"}
SCRIPTS = {"diffusion": "engine.training.train_diffusion",  # kinds that speak --progress jsonl
           **{kind: "engine.training.train_clutch" for kind in CLUTCH_STAGES}}


def state_folder(kind: str, out: str | os.PathLike) -> Path:
    """Where a ``kind`` run in ``out`` keeps its resumable state (``OUT/train_state`` for diffusion,
    ``OUT/<stage>/train_state`` for a CLUTCH stage): a run is there when this folder is."""
    if kind not in SCRIPTS:
        raise ValueError(f"training kind must be one of {sorted(SCRIPTS)}; got {kind!r}")
    return Path(out) / CLUTCH_STAGES.get(kind, "") / "train_state"


def build_command(kind: str, data: str | os.PathLike, out: str | os.PathLike, *, init_from=None, config=None,
                  steps: int | None = None, val_every: int | None = None, device: str | None = None,
                  resume: bool = True, nproc: int = 1, extra: list[str] | tuple[str, ...] = (),
                  python: str = sys.executable) -> list[str]:
    """The argv of a run. ``nproc`` > 1 launches it data-parallel under torch.distributed.run
    (diffusion only). ``init_from``: the model folder to fine-tune (``--from``); for CLUTCH kinds a
    SHIFT / LM model folder or a CLUTCH one (shift/ + lm/)."""
    if kind not in SCRIPTS:
        raise ValueError(f"training kind must be one of {sorted(SCRIPTS)}; got {kind!r}")
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1; got {nproc}")
    if kind in CLUTCH_STAGES:
        if nproc > 1:
            raise ValueError(f"nproc: the CLUTCH stages train in one process; got {nproc}")
        if val_every is not None:
            raise ValueError("val_every: the CLUTCH stages have no validation loss; leave it out")
    launcher = [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m"] \
        if nproc > 1 else [python, "-m"]
    argv = launcher + [SCRIPTS[kind], "--data", os.fspath(data), "--out", os.fspath(out), "--progress", "jsonl"]
    if kind in CLUTCH_STAGES:
        argv += ["--stage", CLUTCH_STAGES[kind]]
    for flag, value in (("--from", init_from), ("--config", config), ("--steps", steps),
                        ("--val-every", val_every), ("--device", device)):
        if value is not None:
            argv += [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
    if not resume:
        argv.append("--no-resume")
    return argv + list(extra)


class TrainingRun:
    """One training process and its event stream. Not thread-safe: poll from one thread (the GUI's
    timer). Events arrive through a reader thread, so ``poll()`` never blocks."""

    def __init__(self, argv: list[str], out: str | os.PathLike, env: dict | None = None,
                 cwd: str | os.PathLike | None = None):
        self.argv, self.out, self.env, self.cwd = list(argv), Path(out), env, cwd
        self.state = "idle"  # running | pausing | paused | cancelled | done | failed
        self.last: dict[str, dict] = {}  # the last event of each kind
        self.started = False  # a process of this run sent its start event (a start-over is done by then)
        self.proc: subprocess.Popen | None = None
        self._events: queue.Queue = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=40)
        self._start(self.argv)

    def _start(self, argv: list[str]) -> None:
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # its own session: a Ctrl-C meant for the app does not reach it; cancel() kills the group
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                     env=env, cwd=self.cwd, start_new_session=True)
        self.state, self._saw_end = "running", False
        proc, stderr_done = self.proc, threading.Event()
        threading.Thread(target=self._read_stdout, args=(proc, stderr_done), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(proc, stderr_done), daemon=True).start()

    def _read_stdout(self, proc: subprocess.Popen, stderr_done: threading.Event) -> None:
        for line in proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
                if not isinstance(ev, dict) or "event" not in ev:
                    raise ValueError
            except ValueError:
                ev = {"event": "log", "line": line}
            self._events.put(ev)
        rc = proc.wait()
        stderr_done.wait(5)
        self._events.put({"event": "exit", "returncode": rc, "_proc": proc})

    def _read_stderr(self, proc: subprocess.Popen, done: threading.Event) -> None:
        try:
            for line in proc.stderr:
                self._stderr.append(line.rstrip())
        finally:
            done.set()

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def stderr_tail(self) -> str:
        return "\n".join(self._stderr)

    def poll(self) -> list[dict]:
        """Events since the last call (never blocks). A process that died without a done/error event
        (killed, crashed hard) gets a synthesised error with its stderr tail, then ``exit``."""
        out = []
        while True:
            try:
                ev = self._events.get_nowait()
            except queue.Empty:
                return out
            if ev["event"] == "exit":
                if ev.pop("_proc") is not self.proc:
                    continue  # the end of a process replaced by resume()
                rc = ev["returncode"]
                if self.state == "cancelled":
                    pass
                elif self.state == "pausing" and rc == -signal.SIGTERM and not self._saw_end:
                    self.state = "paused"  # stopped while starting up, before any step: nothing to save
                elif not self._saw_end or rc != 0:
                    if not self._saw_end:
                        out.append({"event": "error", "type": "ProcessDied", "returncode": rc,
                                    "message": f"training process exited with code {rc}: "
                                               + (self.stderr_tail.splitlines() or ["(no output)"])[-1]})
                    self.state = "failed"
            elif ev["event"] == "start":
                self.started = True
            elif ev["event"] == "done":
                self._saw_end = True
                if self.state != "cancelled":
                    self.state = "paused" if ev.get("paused") else "done"
            elif ev["event"] == "error":
                self._saw_end = True
                self.state = "failed"
            self.last[ev["event"]] = ev
            out.append(ev)

    def wait(self, timeout: float | None = None) -> int:
        """Block until the process exits (tests, the CLI); the events stay queued for ``poll``."""
        return self.proc.wait(timeout)

    def pause(self) -> None:
        """Ask the run to checkpoint after the current step and exit (SIGTERM to the process group,
        so every rank of a torchrun job hears it). Poll until ``state == 'paused'``."""
        if self.running:
            self.state = "pausing"
            self._signal(signal.SIGTERM)

    def resume(self) -> None:
        """Start the run again on the same folder; it continues from its last checkpoint (step 0 if
        it has none). A start-over whose start event was not polled is started over again (until
        then the folder's state may still be the old run's): poll to ``exit`` first."""
        if self.running:
            raise RuntimeError("the run is still running; pause or cancel it first")
        argv = [a for a in self.argv if a != "--no-resume"] if self.started else list(self.argv)
        self._start(argv)

    def cancel(self) -> None:
        """Kill now (SIGKILL to the group). The last checkpoint stays valid; ``resume()`` works."""
        if self.running:
            self.state = "cancelled"
            self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


def start_run(kind: str, data, out, *, init_from=None, config=None, steps: int | None = None,
              val_every: int | None = None, device: str | None = None, resume: bool = True, nproc: int = 1,
              extra: list[str] | tuple[str, ...] = (), env: dict | None = None, cwd=None) -> TrainingRun:
    """Launch a training run in its own process; see ``build_command`` for the arguments."""
    argv = build_command(kind, data, out, init_from=init_from, config=config, steps=steps, val_every=val_every,
                         device=device, resume=resume, nproc=nproc, extra=extra)
    return TrainingRun(argv, out, env=env, cwd=cwd)
