"""`hand-studio eval diffusion` and `hand-studio train evaluator`: the HandX Table 2 layout on the
corpus test split, with a ground-truth row, judged by the shared frozen evaluator."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from engine.evaluation import metrics as M

SHIPPED_EVALUATOR = "models/evaluator"


def test_prompts(entries: list[dict], max_tokens: int, count_tokens) -> list:
    """One Prompt per clip (None where nothing fits the text window): the level-1 caption with
    all three branches, else the action text."""
    from engine.motion.clip import Prompt
    fits = lambda c: any(c.values()) and all(count_tokens(v) <= max_tokens for v in c.values() if v)  # noqa: E731
    out = []
    for e in entries:
        level1 = [{k: t.get(k, "") for k in ("text", "left", "right")} for t in e.get("texts", []) if t.get("level") == 1]
        cands = level1 + [{"text": e.get("action", ""), "left": "", "right": ""}]
        ok = [c for c in cands if fits(c)]
        out.append(Prompt(**ok[0]) if ok else None)
    return out


def _token_counter():
    from engine.diffusion.text_encoder import shared_text_encoder
    tok = shared_text_encoder().tokenizer
    cache: dict[str, int] = {}

    def count(text: str) -> int:
        if text not in cache:
            cache[text] = len(tok(text)["input_ids"])
        return cache[text]
    return count


def embedding_row(ev, joints: np.ndarray, prompts: list[dict], ref_emb: np.ndarray | None) -> dict:
    """R-precision, FID, MM-Dist, diversity of one set of motions against its prompts."""
    m, t = ev.embed_motion(joints), ev.embed_prompts(prompts)
    rp = M.r_precision(t, m)
    row = {"R@1": rp[0], "R@2": rp[1], "R@3": rp[2], "MM-Dist": M.mm_dist(t, m), "Diversity": M.diversity(m)}
    row["FID"] = M.fid(ref_emb, m) if ref_emb is not None else 0.0
    row["KID"] = M.kid(ref_emb, m, subset_size=min(500, len(m))) if ref_emb is not None else 0.0
    return row


def evaluate_diffusion_iter(data: str | Path, model: str | Path | None = None, evaluator: str | Path | None = None,
                            n: int = 512, steps: int | None = None, mm_prompts: int = 32, mm_repeats: int = 5,
                            seed: int = 0) -> Iterator[dict]:
    """Generate one clip per test prompt (first ``n``), then score. Yields progress, then
    ``{"done": True, "rows": {...}, "table": markdown}``."""
    from engine.api import Studio
    from engine.data.corpus import Corpus
    from engine.evaluation.evaluator import load_evaluator
    from engine.resources import resource_path

    corpus = Corpus(data)
    entries = [e for e in corpus.index if e["split"] == "test"]
    prompts = test_prompts(entries, 32, _token_counter())
    keep = [i for i, p in enumerate(prompts) if p is not None][:n]
    if len(keep) < 32:
        raise ValueError(f"{data}: the test split has {len(keep)} usable prompts; R-precision needs at least 32")
    gt = corpus.arrays("test")["joints"][keep].astype(np.float32)  # (n, T, 2, 21, 3)
    prompts = [prompts[i] for i in keep]
    ev = load_evaluator(evaluator or resource_path(SHIPPED_EVALUATOR))
    studio = Studio.load(device="cpu", diffusion=model)
    t0 = time.perf_counter()
    gen = []
    for i, p in enumerate(prompts):
        gen.append(studio.generate(p, frames=gt.shape[1], seed=seed + i, steps=steps).joints)
        yield {"stage": "generate", "done": i + 1, "of": len(prompts)}
    gen = np.stack(gen)
    seconds = (time.perf_counter() - t0) / len(prompts)
    groups = []
    for i, p in enumerate(prompts[:mm_prompts]):
        groups.append(np.stack([studio.generate(p, frames=gt.shape[1], seed=1000 + r, steps=steps).joints
                                for r in range(mm_repeats)]))
        yield {"stage": "multimodality", "done": i + 1, "of": min(mm_prompts, len(prompts))}
    gt_emb = ev.embed_motion(gt)
    rows = {"Ground truth": embedding_row(ev, gt, prompts, None), "Diffusion": embedding_row(ev, gen, prompts, gt_emb)}
    rows["Ground truth"]["FID"] = M.fid(gt_emb[: len(gt_emb) // 2], gt_emb[len(gt_emb) // 2:])
    rows["Diffusion"]["MModality"] = M.multimodality(np.stack([ev.embed_motion(g) for g in groups]))
    c = M.contact_prf(gen, gt)
    rows["Diffusion"].update({"C-F1 intra": c["intra_f1"], "C-F1 inter": c["inter_f1"]})
    rows["Ground truth"].update({"C-F1 intra": 1.0, "C-F1 inter": 1.0})
    rows["Diffusion"]["s/clip"] = seconds
    yield {"done": True, "rows": rows, "table": table(rows), "n": len(prompts), "steps": steps}


def table(rows: dict[str, dict]) -> str:
    cols = ["R@1", "R@2", "R@3", "FID", "KID", "MM-Dist", "Diversity", "MModality", "C-F1 intra", "C-F1 inter"]
    lines = ["| Method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[c]:.3f}" if c in r else "-" for c in cols) + " |")
    return "\n".join(lines)


# --- CLI ------------------------------------------------------------------------------------------
def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="model", metavar="MODEL", required=True)
    d = sub.add_parser("diffusion", help="HandX Table 2 layout on the corpus test split")
    d.add_argument("--data", required=True, help="corpus folder")
    d.add_argument("--checkpoint", help="diffusion model folder (default: the shipped one)")
    d.add_argument("--evaluator", help="evaluator folder (default: the shipped one)")
    d.add_argument("--n", type=int, default=512, help="test prompts to generate (default 512)")
    d.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    d.add_argument("--json", help="also write the rows to this JSON file")


def run_eval(args: argparse.Namespace) -> int:
    import sys
    last = {}
    for item in evaluate_diffusion_iter(args.data, args.checkpoint, args.evaluator, args.n, args.steps):
        if item.get("done") is True:
            last = item
        elif item["done"] % 64 == 0 or item["done"] == item["of"]:
            print(f"{item['stage']}: {item['done']}/{item['of']}", file=sys.stderr, flush=True)
    print(f"{last['n']} test prompts, steps {last['steps'] or 'default'}")
    print(last["table"])
    if args.json:
        Path(args.json).write_text(json.dumps(last["rows"], indent=1))
    return 0


def add_train_evaluator_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="corpus folder")
    p.add_argument("--out", required=True, help="evaluator folder to write")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)


def run_train_evaluator(args: argparse.Namespace) -> int:
    from engine.data.corpus import Corpus
    from engine.evaluation.evaluator import EvalTrainConfig, EvaluatorConfig, train_evaluator_iter
    from engine.training.train_diffusion import corpus_captions
    corpus = Corpus(args.data)
    entries = [e for e in corpus.index if e["split"] == "train"]
    joints = corpus.arrays("train")["joints"].astype(np.float32)
    count = _token_counter()
    prompts = [corpus_captions(e, 32, count) for e in entries]
    tcfg = EvalTrainConfig(steps=args.steps, batch=args.batch, seed=args.seed, threads=args.threads)
    for item in train_evaluator_iter(joints, prompts, args.out, EvaluatorConfig(), tcfg):
        if item["step"] % 100 == 0 or "checkpoint" in item:
            print(f"step {item['step']}/{item['of']} loss {item['loss']:.4f} {item['samples_per_s']:.0f} samples/s",
                  flush=True)
    print(f"wrote {args.out}")
    return 0
