"""``hand-studio`` subcommands that need no screen. Later issues add their commands to
``COMMANDS`` (a name -> (add_arguments, run) table); ``hand_studio.cli`` adds the app."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Callable

from engine.diffusion import cli_commands as _diffusion_cli

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
    p.add_argument("--candidates", type=int, default=None, metavar="K",
                   help="clutch: draw K token streams and keep the one the model's own captioner matches "
                        "best to the text (default: the model's, 8; 1 = plain sampling, fastest)")
    p.add_argument("--no-close-pinches", dest="close_pinches", action="store_false",
                   help="diffusion: leave the thumb-fingertip pinches the prompt names as the model made them "
                        "(by default they are closed)")
    p.add_argument("--no-split-hands", dest="split_hands", action="store_false",
                   help="diffusion: sample both hands from all three texts together even when the prompt gives each "
                        "hand its own action at the same time (by default each hand then follows its own part, with "
                        "both parts, its own first, as the whole text)")
    p.add_argument("--no-joint-limits", dest="joint_limits", action="store_false",
                   help="diffusion: keep finger joints the model bends past their anatomical limits as they are "
                        "(by default they are eased back inside over a few frames)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="output file; the format follows the extension")


def _run_generate(args: argparse.Namespace) -> int:
    from engine.api import Prompt, Studio
    studio = Studio.load(device=args.device)
    prompt = Prompt(args.text, args.left, args.right)
    pinches, limits = [], None
    if args.model == "clutch":
        hands = args.text.strip() != ""  # with TEXT given, --left/--right would be ignored
        given = [o for o, on in (("--left", hands and args.left.strip()), ("--right", hands and args.right.strip()),
                                 ("--no-close-pinches", not args.close_pinches),
                                 ("--no-split-hands", not args.split_hands),
                                 ("--no-joint-limits", not args.joint_limits)) if on]
        if given:
            raise ValueError(f"--model clutch reads one text (TEXT, or --left/--right when TEXT is empty) and takes "
                             f"no {', '.join(given)}; those are for the diffusion model")
        clip = studio.generate(prompt, frames=args.frames, seed=args.seed, model=args.model, steps=args.steps,
                               candidates=args.candidates)
    else:
        if args.candidates is not None:
            raise ValueError("--candidates is for --model clutch; the diffusion model draws one sample per seed")
        item = {}
        for item in studio.generate_iter(prompt, frames=args.frames, seed=args.seed, model=args.model,
                                         steps=args.steps, close_pinches=args.close_pinches,
                                         split_hands=args.split_hands, joint_limits=args.joint_limits):
            pass
        clip, pinches, limits = item["clip"], item.get("pinches", []), item.get("limits")
    path = clip.save(args.out)
    print(f"wrote {path} ({clip.num_frames} frames at {clip.fps:g} fps)")
    windows = len({tuple(r.get("frames", ())) for r in pinches}) > 1  # a long take: say which window
    for r in pinches:
        where = f", frames {r['frames'][0]}-{r['frames'][1] - 1}" if windows and "frames" in r else ""
        print(f"pinch {r['hand']} thumb-{r['finger']}: {r['action']} (closest {r['gap_before_mm']:.1f} mm -> "
              f"{r['gap_after_mm']:.1f} mm{where})")
    if limits and limits["joint_frames"]:
        n = limits["joint_frames"]
        print(f"joint limits: {n} finger joint-frame{'s' if n != 1 else ''} past their limits "
              f"({100 * limits['share']:.1f} %, at most {limits['max_excess_deg']:.1f} deg) eased back inside")
    return 0


def _subparsers(p: argparse.ArgumentParser) -> argparse._SubParsersAction:
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))


def _add_train(p: argparse.ArgumentParser) -> None:
    from engine.evaluation import run as ev
    from engine.training import train_clutch
    _diffusion_cli.add_train_arguments(p)
    sub = _subparsers(p)
    for kind, what in (("clutch-pt", "CLUTCH stage 2: T5 pretraining on text-motion pairs"),
                       ("clutch-gr", "CLUTCH stage 3: geometric refinement (Gumbel-Softmax through SHIFT)"),
                       ("clutch-ift", "CLUTCH stage 4: instruction fine-tuning"),
                       ("shift", "CLUTCH stage 1: the SHIFT motion tokenizer")):
        train_clutch.add_arguments(sub.add_parser(kind, help=what, description=what), train_clutch.RUN_KINDS[kind])
    ev.add_train_evaluator_arguments(sub.add_parser(
        "evaluator", help="the shared text-motion evaluator (contrastive, frozen after training)"))
    train_clutch.add_arguments(sub.add_parser(
        "clutch", help="CLUTCH, any stage (--stage shift|pretrain|refine|instruct|all)"))


def _run_train(args: argparse.Namespace) -> int:
    if args.model == "evaluator":
        from engine.evaluation import run as ev
        return ev.run_train_evaluator(args)
    from engine.training import train_clutch
    if args.model == "clutch" or args.model in train_clutch.RUN_KINDS:
        return train_clutch.run(args)
    return _diffusion_cli.run_train(args)


def _add_eval(p: argparse.ArgumentParser) -> None:
    from engine.evaluation import run as ev
    ev.add_eval_arguments(p)
    t = _subparsers(p).add_parser("tokenizer", help="SHIFT vs the single-codebook and per-hand VQ-VAEs "
                                                    "(CLUTCH Table 4 layout) on the test split")
    t.add_argument("--data", required=True, help="corpus folder")
    t.add_argument("--run", required=True, help="train clutch run folder (OUT/shift, OUT/shift_pd, OUT/shift_standard)")
    from engine.clutch.eval_run import add_eval_clutch_arguments
    add_eval_clutch_arguments(_subparsers(p).add_parser(
        "clutch", help="CLUTCH text->motion and motion->text on the test split (Table 6 layout; BLEU, ROUGE-L)"))


def _run_eval(args: argparse.Namespace) -> int:
    if args.model == "clutch":
        from engine.clutch.eval_run import run_eval_clutch
        return run_eval_clutch(args)
    if args.model == "tokenizer":
        from engine.clutch.evaluate import format_table, tokenizer_metrics
        from engine.clutch.shift import load_shift
        from engine.hands import load_hands
        from engine.training.train_clutch import load_split
        data = load_split(args.data, "test")
        rows = {}
        for name, sub in (("SHIFT", "shift"), ("PD VQ-VAE", "shift_pd"), ("Std. VQ-VAE", "shift_standard")):
            folder = Path(args.run) / sub / "model"
            if not (folder / "config.json").is_file():
                print(f"note: {folder} not found; {name} row skipped", file=sys.stderr)
                continue
            model, _ = load_shift(folder)
            rows[name] = tokenizer_metrics(model, data.x, data.betas, load_hands("default"))
        if not rows:
            raise CliError(f"no tokenizer models under {args.run} (expected shift/, shift_pd/, shift_standard/)")
        print(format_table(rows))
        return 0
    from engine.evaluation import run as ev
    return ev.run_eval(args)


def _add_caption(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a clip (any format `import` reads)")
    p.add_argument("--candidates", type=int, default=None, metavar="K",
                   help="the greedy caption and K-1 sampled ones; the one that best explains the motion "
                        "is printed (default: the model's, 8; 1 = greedy, fastest)")
    p.add_argument("--device", default="auto")


def _run_caption(args: argparse.Namespace) -> int:
    from engine.api import Studio
    from engine.motion.clip import Clip
    clip = Clip.load(args.file)
    print(Studio.load(device=args.device).caption(clip, candidates=args.candidates))
    return 0


def _add_bench(p: argparse.ArgumentParser) -> None:
    _diffusion_cli.add_bench_arguments(p)
    ik = _subparsers(p).add_parser("ik", help="keypoints -> MANO fit of a 60-frame two-hand clip (time, joint error)")
    ik.add_argument("--frames", type=int, default=60, help="frames per clip, 1..1800 (default 60)")
    ik.add_argument("--repeats", type=int, default=10, help="timed fits after the cold one, 1..100 (default 10)")
    ik.add_argument("--noise-mm", type=float, default=0.0,
                    help="Gaussian noise added to the keypoints, 0..100 mm (default 0)")


def _run_bench(args: argparse.Namespace) -> int:
    if args.what == "ik":
        from engine.hands import load_hands
        from engine.hands.ik_bench import check_ik_bench_args, run_ik_bench
        check_ik_bench_args(args.frames, args.repeats, args.noise_mm)  # before loading the hands
        print(json.dumps(run_ik_bench(load_hands("default"), args.frames, args.repeats, args.noise_mm), indent=2))
        return 0
    return _diffusion_cli.run_bench(args)


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a clip (.npz, or any format `import` reads)")
    p.add_argument("output", help="OUT.fbx, OUT.bvh, OUT.glb or OUT.npz; the format follows the extension")
    p.add_argument("--hands", default="both", help="both (default), left or right")
    p.add_argument("--range", dest="frame_range", default=None, metavar="START:STOP",
                   help="frames to export, stop exclusive (e.g. 10:70)")
    p.add_argument("--fps", type=float, default=None, help="resample to this frame rate")
    p.add_argument("--bvh-layout", default="per_hand", choices=("per_hand", "one_root"),
                   help="BVH: one file per hand (NAME_left.bvh, NAME_right.bvh) or both wrists under one ROOT")
    p.add_argument("--no-mesh", action="store_true", help="FBX/glTF: skeletons only, no skinned meshes")


def _run_export(args: argparse.Namespace) -> int:
    from engine.export import ExportOptions, export_clip, parse_hands, parse_range
    from engine.motion.clip import Clip
    clip = Clip.load(args.input)
    options = ExportOptions(frame_range=parse_range(args.frame_range), fps=args.fps, hands=parse_hands(args.hands))
    written = export_clip(clip, args.output, options, bvh_layout=args.bvh_layout, with_mesh=not args.no_mesh)
    for path in written:
        print(f"wrote {path}")
    return 0


def _add_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="IN",
                   help="file(s) to import (.npz, .npy, .json, .bvh, .fbx); several single-hand files merge")
    p.add_argument("output", metavar="OUT.npz", help="the clip to write")
    p.add_argument("--format", default="auto", choices=("auto", "clip", "mano", "keypoints", "bvh", "fbx"))
    p.add_argument("--units", default="auto", choices=("auto", "m", "cm", "mm"),
                   help="length unit of keypoints / foreign skeletons (default: detected from the hand size)")
    p.add_argument("--order", default="auto", choices=("auto", "ours", "openpose", "mediapipe"),
                   help="keypoint order (default: detected from bone proportions)")
    p.add_argument("--fps", type=float, default=None, help="frame rate for files that do not give one")
    p.add_argument("--hands", default=None, choices=("left", "right"),
                   help="which hand single-hand MANO parameters belong to")


def _run_import(args: argparse.Namespace) -> int:
    from engine.data.importers import import_clips
    if not args.output.lower().endswith(".npz"):
        raise CliError(f"the output must be a .npz clip; got {args.output}")
    clip, notes = import_clips(args.inputs, format=args.format, units=args.units, order=args.order,
                               fps=args.fps, hands=args.hands)
    for note in notes:
        print(f"note: {note}")
    path = clip.save(args.output)
    print(f"wrote {path} ({clip.num_frames} frames at {clip.fps:g} fps)")
    return 0


def _add_data(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="generate a procedural corpus (deterministic per seed)")
    b.add_argument("--n", type=int, required=True, help="number of clips")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", required=True, help="corpus folder to create")
    b.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    b.add_argument("--frames", type=int, default=60, help="frames per clip at 30 fps (default 60)")
    b.add_argument("--program", default="mixed", choices=("mixed", "concurrent"),
                   help="what the clips do: mixed (1-3 actions of any kind; the default corpus) or concurrent "
                        "(two different one-hand actions, one per hand, at the same time: a training supplement)")
    b.add_argument("--force", action="store_true", help="replace an existing non-empty folder")
    s = sub.add_parser("stats", help="split counts, action/verb/event/caption-length distributions, HandX Table 1")
    s.add_argument("dir", help="corpus folder")
    s.add_argument("--json", action="store_true", help="print machine-readable JSON")
    s.add_argument("--markdown", action="store_true", help="print a Markdown report")
    m = sub.add_parser("sample", help="K clips as clip .npz files, each with a JSON sidecar (texts, actions, events)")
    m.add_argument("dir", help="corpus folder")
    m.add_argument("--n", type=int, default=8)
    m.add_argument("--out", required=True, help="folder for the clips")
    m.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    m.add_argument("--seed", type=int, default=0)
    v = sub.add_parser("preview", help="PNG sheet of a few clips' key frames with their captions (no GL)")
    v.add_argument("dir", help="corpus folder")
    v.add_argument("--out", required=True, help="sheet.png")
    v.add_argument("--n", type=int, default=6, help="clips (rows)")
    v.add_argument("--cols", type=int, default=5, help="key frames per clip")
    v.add_argument("--split", default="test", choices=("train", "val", "test", "all"))
    v.add_argument("--seed", type=int, default=0)
    i = sub.add_parser("import", help="a folder of mocap -> cleaned, auto-captioned corpus (same layout)")
    i.add_argument("src", help="folder with .npz/.npy/.json/.bvh/.fbx files (searched recursively)")
    i.add_argument("--out", required=True, help="corpus folder to create")
    i.add_argument("--fps", type=float, default=None, help="frame rate for files that do not give one")
    i.add_argument("--units", default="auto", choices=("auto", "m", "cm", "mm"))
    i.add_argument("--seed", type=int, default=0, help="split and caption wording seed")
    i.add_argument("--min-hand-intensity", type=float, default=None, help="deg/s per hand (HandX: 25)")
    i.add_argument("--min-avg-intensity", type=float, default=None, help="deg/s both hands (HandX: 30)")
    i.add_argument("--force", action="store_true", help="replace an existing non-empty folder")


def _print_progress(it, every_s: float = 3.0) -> dict:
    """Drain a progress generator, printing a line every few seconds and every error."""
    import time
    last_print, last = 0.0, {}
    for last in it:
        if "error" in last:
            print(f"skipped: {last['error']}", file=sys.stderr)
        now = time.monotonic()
        if now - last_print >= every_s or "path" in last:
            last_print = now
            extra = f", {last['clips']} clips" if "clips" in last else ""
            print(f"  {last['done']}/{last['of']}{extra} ({last['clips_per_s']:g} clips/s)", flush=True)
    return last


def _run_data(args: argparse.Namespace) -> int:
    cmd = args.data_command
    if cmd == "build":
        from engine.data.corpus_build import build_corpus_iter
        try:
            last = _print_progress(build_corpus_iter(args.n, args.seed, args.out, workers=args.workers,
                                                     frames=args.frames, force=args.force,
                                                     program=args.program))
        except FileExistsError as e:
            raise CliError(str(e)) from None
        print(f"wrote {last['path']} ({args.n} clips in {last['seconds']:.1f} s)")
        return 0
    if cmd == "import":
        from dataclasses import replace
        from engine.data.cleaning import CleaningConfig
        from engine.data.corpus_build import import_corpus_iter
        cfg = CleaningConfig()
        if args.min_hand_intensity is not None:
            cfg = replace(cfg, min_hand_intensity=args.min_hand_intensity)
        if args.min_avg_intensity is not None:
            cfg = replace(cfg, min_avg_intensity=args.min_avg_intensity)
        try:
            last = _print_progress(import_corpus_iter(args.src, args.out, fps=args.fps, units=args.units,
                                                      seed=args.seed, cfg=cfg, force=args.force))
        except FileExistsError as e:
            raise CliError(str(e)) from None
        print(f"wrote {last['path']} ({last['clips']} clips from {last['of']} source(s), {last['errors']} skipped)")
        return 0
    from engine.data.corpus import Corpus
    corpus = Corpus(args.dir)
    if cmd == "stats":
        from engine.data.corpus_stats import corpus_stats, stats_markdown, stats_text
        st = corpus_stats(corpus)
        print(json.dumps(st, indent=1) if args.json else stats_markdown(st) if args.markdown else stats_text(st))
        return 0
    split = None if args.split == "all" else args.split
    if cmd == "sample":
        from engine.data.corpus_build import sample_corpus
        written = sample_corpus(corpus, args.n, args.out, split=split, seed=args.seed)
        print(f"wrote {len(written)} clips (+ .json sidecars) to {args.out}")
        return 0
    if cmd == "preview":
        from engine.data.preview import corpus_preview
        path = corpus_preview(corpus, args.out, n=args.n, cols=args.cols, split=split, seed=args.seed)
        print(f"wrote {path}")
        return 0
    raise CliError(f"unknown data action {cmd!r}")


def _add_models(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="registered models (* = active)")
    ls.add_argument("--json", action="store_true", help="print machine-readable JSON")
    a = sub.add_parser("add", help="register a trained model folder")
    a.add_argument("name")
    a.add_argument("path", help="the model folder: a training run's OUT/model (diffusion: config.json; "
                                "CLUTCH: shift/ + lm/)")
    a.add_argument("--kind", choices=("diffusion", "clutch"), help="default: read from the folder")
    a.add_argument("--base", help="the model it was fine-tuned from")
    a.add_argument("--data", help="the corpus it was trained on")
    a.add_argument("--metrics", help="JSON file of metrics (e.g. from hand-studio eval --json)")
    sub.add_parser("use", help="generate with this model (in the app and the CLI)").add_argument("name")
    sub.add_parser("use-shipped", help="go back to the shipped model of a kind").add_argument(
        "kind", choices=("diffusion", "clutch"))
    sub.add_parser("remove", help="forget a model (its folder stays)").add_argument("name")


def _model_kind(path: Path) -> str:
    """diffusion (config.json) or clutch (shift/ + lm/); a run folder is pointed at its model/."""
    if (path / "config.json").is_file():
        return "diffusion"
    if all((path / sub / "config.json").is_file() for sub in ("shift", "lm")):
        return "clutch"
    if (path / "model").is_dir():
        raise CliError(f"{path} is a training run folder; register its model: {path / 'model'}")
    raise CliError(f"{path} is not a model folder (no config.json, nor shift/ and lm/)")


def _run_models(args: argparse.Namespace) -> int:
    from engine.registry import Registry
    reg, cmd = Registry(), args.models_command
    if cmd == "list":
        entries = reg.list()
        active = {k: e.name for k in ("diffusion", "clutch") if (e := reg.active(k)) is not None}
        if args.json:
            from dataclasses import asdict
            print(json.dumps({"models": [asdict(e) for e in entries], "active": active}, indent=2))
        elif not entries:
            print(f"no registered models ({reg.path}); the shipped ones are used")
        for e in [] if args.json else entries:
            mark = "*" if active.get(e.kind) == e.name else " "
            print(f"{mark} {e.name:<20} {e.kind:<9} {e.date:<25} {e.path}" + (f" (from {e.base})" if e.base else ""))
        return 0
    if cmd == "add":
        metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else None
        kind = args.kind or _model_kind(Path(args.path))
        e = reg.register(args.name, kind, args.path, base=args.base, data=args.data, metrics=metrics)
        print(f"registered {e.name} ({e.kind}) -> {e.path}")
    elif cmd == "use":
        e = reg.use(args.name)
        print(f"{e.kind} now generates with {e.name} ({e.path})")
    elif cmd == "use-shipped":
        reg.use_shipped(args.kind)
        print(f"{args.kind} now generates with the shipped model")
    elif cmd == "remove":
        e = reg.remove(args.name)
        print(f"removed {e.name} from the registry (the folder {e.path} is kept)")
    return 0


COMMANDS: dict[str, tuple[str, Callable, Callable]] = {
    "info": ("versions, device, hand backend and the skeleton", _add_info, _run_info),
    "generate": ("text -> two-hand clip (needs a generation model)", _add_generate, _run_generate),
    "export": ("clip -> FBX / BVH / glTF (.glb) / npz", _add_export, _run_export),
    "import": ("npz / MANO params / keypoints / BVH / FBX -> clip (.npz)", _add_import, _run_import),
    "train": ("train a model on a corpus (diffusion, CLUTCH stages, evaluator)", _add_train, _run_train),
    "eval": ("evaluate a model on the corpus test split (diffusion, tokenizer, clutch)", _add_eval, _run_eval),
    "caption": ("clip -> text (needs a captioning model)", _add_caption, _run_caption),
    "bench": ("benchmarks: ik, generate", _add_bench, _run_bench),
    "data": ("training corpora: build, stats, sample, preview, import", _add_data, _run_data),
    "models": ("your trained models: list, add, use, use-shipped, remove", _add_models, _run_models),
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
