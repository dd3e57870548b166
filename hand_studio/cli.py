"""The ``hand-studio`` console script: no command opens the app, every other command is the
engine's (so ``info``/``generate`` work on machines without a screen and never import Qt)."""
from __future__ import annotations

import os
import sys

APP_COMMAND = {"app": "open the app (the default when no command is given); optional clip or project"}


def main(argv: list[str] | None = None) -> int:
    from engine import cli as engine_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = engine_cli.build_parser(extra=APP_COMMAND)
    opens_app = not argv or (argv[0] not in engine_cli.COMMANDS and not argv[0].startswith("-")
                             and argv[0] != "app" and argv[0].lower().rstrip("/").endswith((".npz", ".handproj")))
    if opens_app:
        argv = ["app", *argv]
    args = parser.parse_args(argv)
    if args.command == "app":
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.environ.get("QT_QPA_PLATFORM")):
            print("hand-studio: error: no screen (DISPLAY is not set). Run the app under a desktop or "
                  "`xvfb-run -a hand-studio`, or use a headless command: `hand-studio --help`.",
                  file=sys.stderr)
            return 2
        from hand_studio.app import main as app_main
        return app_main([args.clip] if args.clip else [])
    return engine_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
