"""Playback benchmark: the real main window (default size, 1200x800) plays a 10 s two-hand clip.

Counts what the canvas really draws (its ``draw`` events, not timer ticks) and prints JSON:
  * ``realtime`` (plain) and ``realtime_all`` (every overlay on): the window's own Play for
    ``--seconds``: draws per second, how far the playhead got against the wall clock
    (``lag_frames``), clip frames never drawn (``dropped_frames``) and what the playback bar
    itself counted (``bar_dropped_frames``, ``bar_frames_advanced``);
  * ``max_<overlay>``: the playhead stepped one frame as soon as the previous frame was drawn,
    i.e. the highest frame rate drawing sustains, plain and with each overlay (onion skin as
    meshes or bones, wrist paths).
Also the GL renderer (GL_RENDERER), the machine and its load (other processes slow it down).
Target (issue 7): >= 60 fps on the software renderer (Mesa llvmpipe).

    python bench/playback.py [--seconds 4] [--frames 300]

Starts its own Xvfb when $DISPLAY is unset. Play is real time: the playback bar sets the frame
from the elapsed wall time and skips frames when drawing is slow, so ``lag_frames`` stays ~0 and
a slow machine shows up as ``dropped_frames`` instead.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time


def start_xvfb() -> tuple[subprocess.Popen, str]:
    """An Xvfb on a free display (GL: Mesa llvmpipe) -> (process, ":N")."""
    r, w = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
                            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        display = f.readline().strip()
    if not display:
        raise RuntimeError("Xvfb did not start")
    return proc, f":{display}"


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default), all its threads."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_1m_start": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each measurement")
    ap.add_argument("--frames", type=int, default=300, help="clip length (300 = 10 s at 30 fps)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", nargs="+", default=["realtime", "realtime_all", "plain", "onion_mesh",
                                                   "onion_skeleton", "wrist_paths", "all"],
                    help="realtime[_<overlay>]: the window's Play; <overlay>: as fast as drawing goes")
    args = ap.parse_args()
    if not os.environ.get("DISPLAY"):  # run ourselves again on a private Xvfb, then stop it
        xvfb, display = start_xvfb()
        try:
            env = dict(os.environ, DISPLAY=display, HS_BENCH_XVFB_PID=str(xvfb.pid))
            sys.exit(subprocess.call([sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env=env))
        finally:
            xvfb.terminate()
            xvfb.wait()
    print(json.dumps(run(args), indent=2))


def run(args) -> dict:
    import vispy
    import vispy.app
    vispy.app.use_app("pyside6")  # before any QApplication
    from PySide6 import __version__ as pyside_version
    from PySide6.QtCore import QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from engine.api import Studio
    from engine.data.synth import generate_clip
    from hand_studio._qt.main_window import MainWindow
    from hand_studio.model.document import Document

    clip, _ = generate_clip(args.seed, frames=args.frames)  # two hands, procedural actions
    studio = Studio.load(device="cpu")
    tmp = tempfile.mkdtemp(prefix="hs-bench-")
    settings = QSettings(os.path.join(tmp, "settings.ini"), QSettings.IniFormat)  # default geometry
    win = MainWindow(studio, Document(clip), settings=settings, autosave_interval_s=3600,
                     recovery_dir=os.path.join(tmp, "recovery"))
    win.show()
    vp, doc, canvas = win.viewport, win.document, win.viewport.canvas
    torch_threads = __import__("torch").get_num_threads()

    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.0005)

    pump(1.0)
    draws: list[tuple[float, int]] = []  # (time, frame on screen)
    renderer: dict = {}

    def on_draw(event) -> None:
        draws.append((time.perf_counter(), doc.frame))
        if not renderer:
            from vispy.gloo import gl
            renderer["renderer"] = gl.glGetParameter(gl.GL_RENDERER)
            renderer["version"] = gl.glGetParameter(gl.GL_VERSION)

    canvas.events.draw.connect(on_draw)
    canvas.update()
    pump(0.3)
    # pose every frame once: the pose cache then serves the loop, as after the first pass
    for f in range(doc.num_frames):
        vp.hands_visual.pose(f)

    overlays = {"plain": {}, "onion_mesh": {"onion": "mesh"}, "onion_skeleton": {"onion": "skeleton"},
                "wrist_paths": {"paths": True}, "all": {"onion": "mesh", "paths": True, "skeleton": True}}

    def set_overlays(onion=None, paths=False, skeleton=False) -> None:
        vp.set_onion_skin_visible(onion is not None)
        if onion is not None:
            vp.set_onion_skin_style(onion)
        vp.set_wrist_paths_visible(paths)
        vp.hands_visual.skeleton_visible = skeleton

    xvfb_pid = int(os.environ["HS_BENCH_XVFB_PID"]) if "HS_BENCH_XVFB_PID" in os.environ else None

    def cpu_now() -> tuple[float, float]:
        return cpu_seconds(), (cpu_seconds(xvfb_pid) if xvfb_pid else 0.0)

    def cpu_stats(c0, n_draws: int) -> dict:
        """CPU per drawn frame, this process (Python, torch, Mesa's threads) and the X server;
        1000 / total is the rate the drawing would sustain with a core to itself."""
        app_s, x_s = (b - a for a, b in zip(c0, cpu_now()))
        if not n_draws:
            return {}
        per = 1000 * (app_s + x_s) / n_draws
        return {"cpu_ms_per_draw": round(1000 * app_s / n_draws, 2),
                "xserver_cpu_ms_per_draw": round(1000 * x_s / n_draws, 2) if xvfb_pid else None,
                "fps_if_cpu_free": round(1000 / per, 1) if per > 0 else None}

    results = {}
    for mode in args.modes:
        if mode.removeprefix("realtime_") not in overlays and mode != "realtime":
            raise SystemExit(f"unknown mode {mode!r}; modes: realtime, realtime_<overlay>, "
                             f"<overlay> with overlay one of {sorted(overlays)}")
        set_overlays(**overlays.get(mode.removeprefix("realtime_"), {}))
        doc.frame = 0
        pump(0.3)
        draws.clear()
        t0, c0 = time.perf_counter(), cpu_now()
        if mode.startswith("realtime"):
            win.action_play.trigger()
            pump(args.seconds)
            win.playback.set_playing(False)
            results[mode] = {**realtime_stats(draws, t0, args.seconds, doc.fps, doc.num_frames),
                             "bar_dropped_frames": win.playback.dropped_frames,
                             "bar_frames_advanced": win.playback.frames_advanced,
                             **cpu_stats(c0, len(draws))}
            continue
        # as fast as drawing allows: the next frame as soon as one is drawn
        n0 = len(draws)
        state = {"last": n0}
        step = QTimer()
        step.setInterval(0)

        def advance() -> None:
            if len(draws) > state["last"]:
                state["last"] = len(draws)
                doc.step(1, loop=True)

        step.timeout.connect(advance)
        doc.step(1)
        step.start()
        pump(args.seconds)
        step.stop()
        elapsed = time.perf_counter() - t0
        gaps = [b[0] - a[0] for a, b in zip(draws, draws[1:])]
        results[f"max_{mode}"] = {"fps": round(len(draws) / elapsed, 1), "draws": len(draws),
                                  "worst_gap_ms": round(1000 * max(gaps), 1) if gaps else None,
                                  **cpu_stats(c0, len(draws))}
    info = {"renderer": renderer.get("renderer"), "gl_version": renderer.get("version"),
            "window": [win.width(), win.height()],
            "canvas": list(canvas.size), "clip": {"frames": doc.num_frames, "fps": doc.fps},
            "torch_threads": torch_threads, "vispy": vispy.__version__, "pyside6": pyside_version,
            **machine(), "loadavg_1m_end": round(os.getloadavg()[0], 2)}
    win.close()
    return {"info": info, **results}


def realtime_stats(draws, t0: float, seconds: float, fps: float, num_frames: int) -> dict:
    """What a viewer saw while playing: draws per second; frames the wall clock asked for
    against frames drawn (``dropped_frames``) and against where the playhead is (``lag_frames``)."""
    expected = int(seconds * fps)  # clip frames due in the interval
    frames = [f for _, f in draws]
    advanced = sum((b - a) % num_frames for a, b in zip(frames, frames[1:])) if frames else 0
    distinct_steps = sum(1 for a, b in zip(frames, frames[1:]) if a != b)
    gaps = [b[0] - a[0] for a, b in zip(draws, draws[1:])]
    return {"fps_drawn": round(len(draws) / seconds, 1), "draws": len(draws),
            "clip_fps": fps, "frames_due": expected, "frames_advanced": advanced,
            "frames_drawn": distinct_steps + (1 if frames else 0),
            "dropped_frames": max(0, advanced - distinct_steps),
            "lag_frames": max(0, expected - advanced),
            "worst_gap_ms": round(1000 * max(gaps), 1) if gaps else None}


if __name__ == "__main__":
    main()
