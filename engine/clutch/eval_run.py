"""`hand-studio eval clutch`: CLUTCH on the corpus test split, judged by the shared frozen
evaluator (the one `eval diffusion` uses), in the layout of CLUTCH Table 6.

Per test clip (the first ``n`` whose level-1 prompt fits the evaluator's text window, exactly the
clips `eval diffusion` uses):
- M2T: ``pipeline.caption(clip)``; BLEU-1 / BLEU-4 / ROUGE-L against all of the clip's
  whole-motion texts (levels 1-5); R-precision of the caption's evaluator embedding against the
  ground-truth motions' embeddings in shuffled pools of ``pool`` (32). The evaluator's text
  encoder takes at most 32 MiniLM tokens, so a longer caption is cut to its longest fitting word
  prefix for R-precision only (counted as ``captions_cut``).
- T2M: ``pipeline.generate(level-1 prompt, frames=T, seed=seed + i)``; R@1-3, FID, KID, MM-Dist and
  Diversity with ``engine.evaluation.metrics``, composed as ``engine.evaluation.run.embedding_row``.
- Ground truth: T2M = the real motions against their prompts (FID / KID between the two halves of
  the real set); M2T = the level-1 text as the caption (R-precision only).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator

import numpy as np

from engine.clutch.text_metrics import caption_scores
from engine.evaluation import metrics as M

SHIPPED_CLUTCH = "models/clutch"  # under resources/
SHIPPED_EVALUATOR = "models/evaluator"
TEXT_WINDOW = 32  # evaluator prompt window in MiniLM tokens, as in `eval diffusion`
T2M_COLS = ("R@1", "R@2", "R@3", "FID", "KID", "MM-Dist", "Diversity", "Speed", "s/clip")
M2T_COLS = ("R@1", "R@2", "R@3", "BLEU-1", "BLEU-4", "ROUGE-L", "s/caption")


@dataclass
class ClutchTestSet:
    """The evaluated clips, built once and shared by every LM variant."""

    ids: list[str]
    prompts: list  # Prompt per clip (level-1 text + branches): T2M input and T2M R-precision text
    gt_captions: list[str]  # level-1 whole-motion text: the ground-truth M2T row
    references: list[list[str]]  # whole-motion texts of levels 1-5: BLEU / ROUGE references
    clips: list  # Clip per clip (30 fps): M2T input
    joints: np.ndarray  # (n, T, 2, 21, 3) float32, ground-truth keypoints
    _emb: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def frames(self) -> int:
        return int(self.joints.shape[1])

    def motion_embedding(self, ev) -> np.ndarray:
        """(n, emb) evaluator embeddings of the ground-truth motions (cached per evaluator)."""
        if id(ev) not in self._emb:
            self._emb[id(ev)] = ev.embed_motion(self.joints)
        return self._emb[id(ev)]


def clutch_test_set(corpus, n: int = 256, pool: int = 32, split: str = "test") -> ClutchTestSet:
    """The first ``n`` clips of a corpus (folder or ``Corpus``) split whose level-1 prompt fits
    (``split`` "val" to choose settings, "test" to report them)."""
    from engine.data.corpus import Corpus
    from engine.evaluation.run import test_prompts, token_counter
    from engine.motion.clip import Clip

    if not isinstance(pool, int) or pool < 2:
        raise ValueError(f"pool must be an int >= 2; got {pool!r}")
    if not isinstance(n, int) or n < pool:
        raise ValueError(f"n must be an int >= pool ({pool}); got {n!r}")
    if split not in ("val", "test"):
        raise ValueError(f"split must be 'val' or 'test'; got {split!r}")
    corpus = corpus if isinstance(corpus, Corpus) else Corpus(corpus)
    positions = [i for i, e in enumerate(corpus.index) if e["split"] == split]
    entries = [corpus.index[i] for i in positions]
    prompts = test_prompts(entries, TEXT_WINDOW, token_counter())
    keep = [k for k, p in enumerate(prompts) if p is not None][:n]
    if len(keep) < pool:
        raise ValueError(f"{corpus.path}: the {split} split has {len(keep)} usable clips; R-precision in pools of "
                         f"{pool} needs at least {pool}")
    refs, gt_caps = [], []
    for k in keep:
        e = entries[k]
        texts = list(dict.fromkeys(t["text"].strip() for t in e["texts"] if t.get("text", "").strip()))
        if not texts:
            raise ValueError(f"{corpus.path}: {split} clip {e['id']} has no whole-motion text at any level")
        refs.append(texts)
        level1 = e["texts"][0].get("text", "").strip()
        gt_caps.append(level1 or prompts[k].text or texts[0])
    a = corpus.rows_arrays([positions[k] for k in keep])
    fps = float(corpus.meta["fps"])
    clips = [Clip(a["transl"][j], a["global_orient"][j], a["hand_pose"][j], a["betas"][j], fps=fps,
                  prompt=prompts[k]) for j, k in enumerate(keep)]
    return ClutchTestSet([entries[k]["id"] for k in keep], [prompts[k] for k in keep], gt_caps, refs, clips,
                         a["joints"].astype(np.float32))


# --- rows ------------------------------------------------------------------------------------
def t2m_row(ev, joints: np.ndarray, prompts: list, ref_emb: np.ndarray | None, pool: int = 32) -> dict:
    """The T2M row: R@1-3 (pools of ``pool``), MM-Dist, Diversity, FID, KID, as for the diffusion table."""
    from engine.evaluation.run import embedding_row
    return embedding_row(ev, joints, prompts, ref_emb, pool=pool)


def fit_window(text: str, count_tokens, max_tokens: int = TEXT_WINDOW) -> tuple[str, bool]:
    """-> (the longest word prefix of ``text`` within the evaluator's text window, whether it was
    cut). The evaluator's text encoder refuses longer texts; an LM caption can be 63 words."""
    if count_tokens(text) <= max_tokens:
        return text, False
    words = text.split()
    lo, hi = 0, len(words)  # words[:lo] fits, words[:hi + 1] does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_tokens(" ".join(words[:mid])) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo]), True


def m2t_rp(ev, captions: list[str], motion_emb: np.ndarray, pool: int = 32) -> dict:
    """R@1-3 of captions (whole-motion text only) against the motions they describe; captions
    longer than the evaluator's window are cut to it (``captions_cut`` counts them)."""
    from engine.evaluation.run import token_counter
    count = token_counter()
    fitted = [fit_window(c, count) for c in captions]
    rp = M.r_precision(ev.embed_prompts([t for t, _ in fitted]), motion_emb, pool=pool)
    return {"R@1": rp[0], "R@2": rp[1], "R@3": rp[2], "captions_cut": sum(c for _, c in fitted)}


def ground_truth_rows(test: ClutchTestSet, ev, pool: int = 32) -> dict:
    """{"t2m": real motions vs their prompts, "m2t": level-1 texts as captions}."""
    gt_emb = test.motion_embedding(ev)
    t2m = t2m_row(ev, test.joints, test.prompts, None, pool)
    half = len(gt_emb) // 2
    t2m["FID"] = M.fid(gt_emb[:half], gt_emb[half:])
    t2m["KID"] = M.kid(gt_emb[:half], gt_emb[half:], subset_size=min(500, half))
    t2m["Speed"] = 1.0
    return {"t2m": t2m, "m2t": m2t_rp(ev, test.gt_captions, gt_emb, pool)}


def _load_evaluator(evaluator):
    from engine.evaluation.evaluator import Evaluator, load_evaluator
    from engine.resources import resource_path
    if isinstance(evaluator, Evaluator):
        return evaluator
    folder = Path(evaluator) if evaluator is not None else resource_path(SHIPPED_EVALUATOR)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no evaluator here (expected config.json + evaluator.safetensors)")
    return load_evaluator(folder)


def evaluate_clutch(pipeline, corpus, evaluator, n: int = 256, seed: int = 0,
                    pool: int = 32) -> Generator[dict, None, dict]:
    """Caption and generate every test clip, then score. Yields ``{"stage", "done", "of"}``;
    returns ``{"t2m", "m2t", "ground_truth", "samples", "n", "pool", "seed", "prompt_style",
    "m2t_failures"}`` (``m2t`` also has ``captions_cut``). ``corpus``: a folder, a ``Corpus`` or a ``ClutchTestSet`` (reused as is,
    first ``n`` clips); ``evaluator``: an ``Evaluator`` or its folder (None = the shipped one).
    A caption the model fails to finish is scored as an empty string and counted."""
    test = corpus if isinstance(corpus, ClutchTestSet) else clutch_test_set(corpus, n, pool)
    count = min(n, len(test))
    if count < pool:
        raise ValueError(f"R-precision in pools of {pool} needs at least {pool} clips; got {count}")
    ev = _load_evaluator(evaluator)
    T = test.frames
    if T > pipeline.max_frames:
        raise ValueError(f"test clips have {T} frames; this CLUTCH model handles at most {pipeline.max_frames}")

    captions, failures = [], 0
    t0 = time.perf_counter()
    for i, clip in enumerate(test.clips[:count]):
        try:
            captions.append(pipeline.caption(clip))
        except RuntimeError:  # no end of text within the cap, or an empty caption
            captions.append("")
            failures += 1
        yield {"stage": "caption", "done": i + 1, "of": count}
    s_caption = (time.perf_counter() - t0) / count

    gen = []
    t0 = time.perf_counter()
    for i, p in enumerate(test.prompts[:count]):
        gen.append(pipeline.generate(p, frames=T, seed=seed + i).joints)
        yield {"stage": "generate", "done": i + 1, "of": count}
    s_clip = (time.perf_counter() - t0) / count
    gen = np.stack(gen).astype(np.float32)  # (count, T, 2, 21, 3)

    gt_emb = test.motion_embedding(ev)[:count]
    refs = test.references[:count]
    m2t = {**m2t_rp(ev, captions, gt_emb, pool), **caption_scores(captions, refs), "s/caption": s_caption}
    t2m = {**t2m_row(ev, gen, test.prompts[:count], gt_emb, pool),
           "Speed": M.speed_ratio(gen, test.joints[:count]), "s/clip": s_clip}
    sub = test if count == len(test) else ClutchTestSet(
        test.ids[:count], test.prompts[:count], test.gt_captions[:count], refs, test.clips[:count], test.joints[:count])
    samples = [{"id": i, "caption": c, "reference": g} for i, c, g in zip(test.ids, captions, test.gt_captions)]
    return {"t2m": t2m, "m2t": m2t, "ground_truth": ground_truth_rows(sub, ev, pool), "samples": samples,
            "n": count, "pool": pool, "seed": seed, "m2t_failures": failures,
            "prompt_style": "instruct" if pipeline.instruct else "plain"}


def run_to_end(gen: Generator, on_progress=None):
    """Drive a generator like ``evaluate_clutch``; -> its return value."""
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_progress is not None:
            on_progress(item)


# --- tables ----------------------------------------------------------------------------------
def _cell(row: dict, col: str) -> str:
    if col not in row:
        return "-"
    return f"{row[col]:.4f}" if "KID" in col else f"{row[col]:.3f}"


def markdown_table(rows: dict[str, dict], cols) -> str:
    """{name: {column: value}} -> a markdown table ("-" where a row has no value)."""
    lines = ["| Method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    lines += [f"| {name} | " + " | ".join(_cell(r, c) for c in cols) + " |" for name, r in rows.items()]
    return "\n".join(lines)


def table6(results: dict[str, dict]) -> str:
    """{variant: evaluate_clutch result} -> CLUTCH Table 6 layout with a ground-truth row (taken
    from the first result; all variants share the test set)."""
    cols = ("T2M R@3", "T2M KID", "M2T R@3", "M2T BLEU-1", "M2T BLEU-4", "M2T ROUGE-L")

    def flat(t2m: dict, m2t: dict) -> dict:
        out = {"T2M R@3": t2m["R@3"], "T2M KID": t2m["KID"], "M2T R@3": m2t["R@3"]}
        out.update({f"M2T {k}": m2t[k] for k in ("BLEU-1", "BLEU-4", "ROUGE-L") if k in m2t})
        return out
    rows = {}
    if results:
        gt = next(iter(results.values()))["ground_truth"]
        rows["Ground truth"] = flat(gt["t2m"], gt["m2t"])
    rows.update({name: flat(r["t2m"], r["m2t"]) for name, r in results.items()})
    return markdown_table(rows, cols)


def report(results: dict[str, dict]) -> str:
    """Table 6, then the full T2M and M2T tables."""
    gt = next(iter(results.values()))["ground_truth"] if results else None
    t2m = ({"Ground truth": gt["t2m"]} if gt else {}) | {k: r["t2m"] for k, r in results.items()}
    m2t = ({"Ground truth": gt["m2t"]} if gt else {}) | {k: r["m2t"] for k, r in results.items()}
    return "\n\n".join(["CLUTCH Table 6 layout", table6(results), "Text -> motion", markdown_table(t2m, T2M_COLS),
                        "Motion -> text", markdown_table(m2t, M2T_COLS)])


# --- CLI -------------------------------------------------------------------------------------
def add_eval_clutch_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `hand-studio eval clutch` (``--model`` is stored as ``clutch_model``: the eval
    subcommand itself lives in ``args.model``)."""
    p.add_argument("--data", required=True, help="corpus folder (its test split is evaluated)")
    p.add_argument("--split", choices=("val", "test"), default="test",
                   help="corpus split to evaluate (default test; val to choose settings)")
    p.add_argument("--model", dest="clutch_model", metavar="FOLDER",
                   help="CLUTCH model folder with shift/ and lm/ (default: the shipped one)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=LM_FOLDER",
                   help="an LM checkpoint (e.g. RUN/instruct/model) for the ablation table; repeat it; "
                        "needs --shift")
    p.add_argument("--shift", metavar="FOLDER", help="SHIFT tokenizer folder shared by the variants "
                                                     "(e.g. RUN/shift/model)")
    p.add_argument("--evaluator", metavar="FOLDER", help="evaluator folder (default: the shipped one)")
    p.add_argument("--n", type=int, default=256, help="test clips (default 256)")
    p.add_argument("--seed", type=int, default=0, help="clip i is generated with seed SEED + i")
    p.add_argument("--pool", type=int, default=32, help="R-precision pool size (default 32)")
    p.add_argument("--json", metavar="OUT", help="also write every row and caption to this JSON file")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--candidates", type=int, default=None, metavar="K",
                   help="text-to-motion draws K token streams per prompt and keeps the one the LM's "
                        "captioner scores highest (default: the pipeline's setting)")
    p.add_argument("--caption-candidates", type=int, default=None, metavar="K",
                   help="captions: the greedy one and K-1 sampled, the one that best explains the motion "
                        "kept (default: the pipeline's setting; 1 = greedy alone)")
    p.add_argument("--no-repeat-ngram", type=int, default=None, metavar="N",
                   help="captions never repeat an N-gram of word pieces (default 0: plain greedy, the "
                        "pipeline's setting)")


def _folder(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path}: not a {what} folder (no config.json)")
    return path


def _models(args: argparse.Namespace) -> dict[str, tuple[Path, Path]]:
    """{row name: (lm folder, shift folder)} from --model or --variant/--shift."""
    from engine.resources import resource_path
    if args.variant:
        if args.clutch_model:
            raise ValueError("give either --model or --variant NAME=LM_FOLDER (with --shift), not both")
        if not args.shift:
            raise ValueError("--variant needs --shift FOLDER (the SHIFT tokenizer the LMs were trained on)")
        shift = _folder(args.shift, "SHIFT tokenizer")
        out = {}
        for v in args.variant:
            name, sep, lm = v.partition("=")
            if not sep or not name.strip() or not lm.strip():
                raise ValueError(f"--variant must be NAME=LM_FOLDER; got {v!r}")
            if name.strip() in out:
                raise ValueError(f"--variant name {name.strip()!r} is given twice")
            out[name.strip()] = (_folder(lm.strip(), "CLUTCH language model"), shift)
        return out
    if args.shift:
        raise ValueError("--shift is for --variant NAME=LM_FOLDER; a --model folder holds its own shift/")
    folder = Path(args.clutch_model) if args.clutch_model else resource_path(SHIPPED_CLUTCH)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no CLUTCH model folder here" + (
            "" if args.clutch_model else " (none ships yet; pass --model FOLDER or --variant NAME=LM --shift FOLDER)"))
    return {"CLUTCH": (_folder(folder / "lm", "CLUTCH language model"), _folder(folder / "shift", "SHIFT tokenizer"))}


def run_eval_clutch(args: argparse.Namespace) -> int:
    """Evaluate every model / variant on one test set; print the tables; 0 on success."""
    from engine.clutch.pipeline import load_pipeline
    from engine.threads import torch_threads
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1; got {args.threads}")
    if args.candidates is not None and args.candidates < 1:
        raise ValueError(f"--candidates must be >= 1; got {args.candidates}")
    if args.caption_candidates is not None and args.caption_candidates < 1:
        raise ValueError(f"--caption-candidates must be >= 1; got {args.caption_candidates}")
    models = _models(args)
    ev = _load_evaluator(args.evaluator)
    results = {}
    with torch_threads(args.threads):
        test = clutch_test_set(args.data, args.n, args.pool, args.split)

        for name, (lm, shift) in models.items():
            pipe = load_pipeline(lm, shift)
            if args.no_repeat_ngram is not None:
                pipe.caption_no_repeat_ngram = args.no_repeat_ngram
            if args.candidates is not None:
                pipe.t2m_candidates = args.candidates
            if args.caption_candidates is not None:
                pipe.caption_candidates = args.caption_candidates

            def progress(item, name=name):
                if item["done"] % 64 == 0 or item["done"] == item["of"]:
                    print(f"{name} {item['stage']}: {item['done']}/{item['of']}", file=sys.stderr, flush=True)
            results[name] = run_to_end(evaluate_clutch(pipe, test, ev, args.n, args.seed, args.pool), progress)
            if results[name]["m2t_failures"]:
                print(f"note: {name}: {results[name]['m2t_failures']} captions did not finish (scored as empty)",
                      file=sys.stderr)
            if results[name]["m2t"]["captions_cut"]:
                print(f"note: {name}: {results[name]['m2t']['captions_cut']} captions were cut to the evaluator's "
                      f"{TEXT_WINDOW}-token window for R-precision (BLEU / ROUGE-L use them whole)", file=sys.stderr)
    first = next(iter(results.values()))
    styles = ", ".join(f"{k}: {r['prompt_style']}" for k, r in results.items())
    print(f"{first['n']} {args.split} clips, R-precision pools of {args.pool}, seed {args.seed}; prompt style {styles}")
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"n": first["n"], "pool": args.pool, "seed": args.seed,
                                               "ground_truth": first["ground_truth"], "rows": results}, indent=1))
    return 0


__all__ = ["ClutchTestSet", "clutch_test_set", "evaluate_clutch", "run_to_end", "t2m_row", "m2t_rp",
           "ground_truth_rows", "table6", "report", "markdown_table", "add_eval_clutch_arguments", "run_eval_clutch"]
