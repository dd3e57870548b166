"""``hand-studio`` subcommands that need no screen. Later issues add their commands to
``COMMANDS`` (a name -> (add_arguments, run) table); ``hand_studio.cli`` adds the app."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable

# Set before anything can import transformers: a hub lookup otherwise hangs 23-47 s here.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DESCRIPTION = """Hand Studio: author two-hand animation from text.

With no command, opens the app. On a machine without a screen use the subcommands."""


class CliError(Exception):
    """A user-facing error: printed to stderr as one line, exit code 2."""


def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda[:N]")
    p.add_argument("--hands", default="default", choices=("default", "mano"), help="hand backend")
    p.add_argument("--mano-dir", help="folder holding MANO_LEFT.pkl / MANO_RIGHT.pkl (for --hands mano)")


def _run_info(args: argparse.Namespace) -> int:
    from engine.api import Studio
    info = Studio.load(device=args.device, hand_backend=args.hands, mano_dir=args.mano_dir).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key == "rest_joints":
            print(f"{key:<{width}}  (16 joints per hand, metres; see --json)")
            for name, xyz in zip(info["joint_names"], value["right"]):
                print(f"{'':<{width}}    right {name:<8} {xyz[0]: .5f} {xyz[1]: .5f} {xyz[2]: .5f}")
            continue
        print(f"{key:<{width}}  {value}")
    return 0


def _add_generate(p: argparse.ArgumentParser) -> None:
    p.add_argument("text", help="what both hands do together")
    p.add_argument("--left", default="", help="what the left hand does")
    p.add_argument("--right", default="", help="what the right hand does")
    p.add_argument("--frames", type=int, default=60, help="number of frames at 30 fps (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="diffusion", help="diffusion or clutch")
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="output file; the format follows the extension")


def _run_generate(args: argparse.Namespace) -> int:
    from engine.api import Prompt, Studio
    studio = Studio.load(device=args.device)
    clip = studio.generate(Prompt(args.text, args.left, args.right), frames=args.frames, seed=args.seed,
                           model=args.model, steps=args.steps)
    path = clip.save(args.out)
    print(f"wrote {path} ({clip.num_frames} frames at {clip.fps:g} fps)")
    return 0


COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "info": ("versions, device, hand backend and the skeleton", _add_info, _run_info),
    "generate": ("text -> two-hand clip (needs a generation model)", _add_generate, _run_generate),
}


def build_parser(extra: dict[str, str] | None = None) -> argparse.ArgumentParser:
    """The parser with every engine command; ``extra`` names commands handled elsewhere (the app)."""
    import engine
    parser = argparse.ArgumentParser(prog="hand-studio", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hand-studio {engine.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add, _run) in COMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    for name, help_text in (extra or {}).items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.add_argument("clip", nargs="?", help="a clip to open")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run a parsed engine command; user errors become one stderr line and exit code 2."""
    from engine.api import ModelNotAvailable
    from engine.motion.clip import ClipError
    try:
        return COMMANDS[args.command][2](args)
    except (CliError, ClipError, ModelNotAvailable, ValueError, FileNotFoundError, ImportError) as e:
        print(f"hand-studio {args.command}: error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
