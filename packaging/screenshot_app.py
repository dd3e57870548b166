"""Screenshot of the real main window for the README: the shipped diffusion model answers a prompt,
two keys are set, onion skin and wrist paths are on; the window is grabbed to a PNG.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python packaging/screenshot_app.py docs/app_generate.png
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main(out: str) -> int:
    import vispy.app

    vispy.app.use_app("pyside6")  # before any QApplication exists, as the app does
    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from engine.api import Studio
    from hand_studio._qt.main_window import MainWindow
    from hand_studio.app import APP_NAME, dark_palette
    from hand_studio.model.document import Document

    app = QApplication.instance() or QApplication([APP_NAME])
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    tmp = Path(tempfile.mkdtemp())
    studio = Studio.load(device="cpu", use_registry=False)
    w = MainWindow(studio, Document(), settings=QSettings(str(tmp / "s.ini"), QSettings.IniFormat),
                   recovery_dir=tmp / "recovery")
    w.resize(1500, 900)
    w.show()

    def wait(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    wait(500)
    p = w.prompt_panel
    p.text_edit.setPlainText("clap both hands twice")
    done = QEventLoop()
    p.sig_generation_finished.connect(lambda _name: done.quit())
    p.generate()
    done.exec()
    doc = w.document
    for f in (14, 40):  # keys at the clap and near the end, as an animator would set them
        doc.frame = f
        w.timeline.action_key.trigger()
    doc.frame = 14
    w.viewport.set_onion_skin_visible(True)
    w.viewport.set_wrist_paths_visible(True)
    w.viewport.set_camera_preset("front")  # refits the camera to the hands at this frame
    wait(800)
    w.grab().save(out)
    print(f"wrote {out}")
    w.close()
    app.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "docs/app_generate.png"))
