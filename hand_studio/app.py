"""Start the app: ``main(argv)`` builds the QApplication, loads the engine and opens the window.

VisPy must pick its Qt backend before any QApplication exists, so this module selects it
first and imports the widgets afterwards.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

APP_NAME = "Hand Studio"
ORGANISATION = "HandStudio"


def dark_palette():
    """A dark QPalette for the Fusion style."""
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    base, window, text = QColor(30, 31, 34), QColor(43, 45, 48), QColor(223, 225, 229)
    highlight, disabled = QColor(70, 130, 200), QColor(120, 122, 128)
    for role, color in ((QPalette.Window, window), (QPalette.WindowText, text), (QPalette.Base, base),
                        (QPalette.AlternateBase, window), (QPalette.ToolTipBase, window),
                        (QPalette.ToolTipText, text), (QPalette.Text, text), (QPalette.Button, window),
                        (QPalette.ButtonText, text), (QPalette.BrightText, QColor(255, 90, 90)),
                        (QPalette.Link, highlight), (QPalette.Highlight, highlight),
                        (QPalette.HighlightedText, QColor(255, 255, 255)),
                        (QPalette.PlaceholderText, disabled)):
        p.setColor(role, color)
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, disabled)
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hand-studio", description="Author two-hand animation.")
    p.add_argument("clip", nargs="?", type=Path, help="a clip (.npz) or project (.handproj) to open")
    p.add_argument("--device", default="auto", help="'auto' (CUDA if available), 'cpu' or 'cuda[:N]'")
    p.add_argument("--hand-backend", default="default", choices=("default", "mano"))
    p.add_argument("--mano-dir", default=None, help="folder with MANO_LEFT.pkl / MANO_RIGHT.pkl")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the app; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)

    import vispy.app

    vispy.app.use_app("pyside6")  # before any QApplication exists
    from PySide6.QtWidgets import QApplication, QMessageBox

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else APP_NAME])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APP_NAME)
    app.setStyle("Fusion")
    app.setPalette(dark_palette())

    from engine.api import Studio
    from hand_studio._qt.main_window import MainWindow

    try:
        studio = Studio.load(device=args.device, hand_backend=args.hand_backend, mano_dir=args.mano_dir)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"hand-studio: cannot load the engine: {e}", file=sys.stderr)
        QMessageBox.critical(None, APP_NAME, f"Cannot load the engine:\n{e}")
        return 1
    window = MainWindow(studio)
    window.show()
    if args.clip is None:
        window.recover_untitled()  # offer an untitled autosave left by a crash
    elif args.clip.suffix.lower() == ".handproj":
        window.open_project(args.clip)
    else:
        window.open_clip(args.clip)
    from hand_studio._qt.workers import freeze_long_lived_heap
    freeze_long_lived_heap(force=True)  # the startup heap: no full GC pass walks it during playback
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
